//! The audit log: one row per security-relevant event (login, token issued, key rotation...).
//!
//! Records never carry tokens or secrets: name the subject, the client, the key id, the
//! outcome and the reason. As a last line of defence, [`Store::append_audit`] refuses a
//! record in which any string looks like a JWT.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, with_pool};

/// Table name of the audit log.
pub const AUDIT_TABLE: &str = "audit_log";

pub(crate) const INSERT_AUDIT_SQL: &str = "INSERT INTO audit_log (at, kind, actor, subject, outcome, reason, details) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const SELECT_AUDIT_SQL: &str = "SELECT id, at, kind, actor, subject, outcome, reason, details \
     FROM audit_log ORDER BY id DESC LIMIT $1";
const SELECT_AUDIT_BY_KIND_SQL: &str = "SELECT id, at, kind, actor, subject, outcome, reason, details \
     FROM audit_log WHERE kind = $1 ORDER BY id DESC LIMIT $2";

/// Whether the audited action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// The action was performed.
    Success,
    /// The action failed (an error, not a decision).
    Failure,
    /// A policy or credential check refused the action.
    Denied,
}

impl AuditOutcome {
    /// The stored form: `success`, `failure` or `denied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

/// An audit event to write. Build with [`AuditRecord::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// When it happened (unix seconds).
    pub at: i64,
    /// What happened, e.g. `key.rotation` (modules keep their kinds as constants).
    pub kind: String,
    /// Who did it: a subject, a client id, `system`, `admin:<name>`.
    pub actor: String,
    /// What it was done to (a key id, a cluster, a session id), if anything.
    pub subject: Option<String>,
    /// The outcome.
    pub outcome: AuditOutcome,
    /// Why (for failures and denials, or the trigger of a system action).
    pub reason: Option<String>,
    /// Extra structured, non-secret details (a JSON object).
    pub details: serde_json::Value,
}

impl AuditRecord {
    /// A record with no subject, reason or details.
    pub fn new(
        at: i64,
        kind: impl Into<String>,
        actor: impl Into<String>,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            at,
            kind: kind.into(),
            actor: actor.into(),
            subject: None,
            outcome,
            reason: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets the details (must not contain tokens or secrets).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Checks the record and returns its details as JSON text, ready to bind.
    pub(crate) fn checked_details(&self) -> Result<String, StoreError> {
        let strings = [
            Some(&self.kind),
            Some(&self.actor),
            self.subject.as_ref(),
            self.reason.as_ref(),
        ];
        if strings.into_iter().flatten().any(|s| looks_like_jwt(s)) || value_has_jwt(&self.details)
        {
            return Err(StoreError::AuditContainsToken {
                kind: self.kind.clone(),
            });
        }
        serde_json::to_string(&self.details).map_err(StoreError::AuditDetails)
    }
}

/// An audit record as stored, with its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAuditRecord {
    /// Increasing sequence number (insertion order).
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// Binds an [`AuditRecord`] (and its checked details text) to [`INSERT_AUDIT_SQL`].
macro_rules! insert_audit_query {
    ($record:expr, $details:expr) => {
        sqlx::query($crate::store::audit::INSERT_AUDIT_SQL)
            .bind($record.at)
            .bind($record.kind.as_str())
            .bind($record.actor.as_str())
            .bind($record.subject.as_deref())
            .bind($record.outcome.as_str())
            .bind($record.reason.as_deref())
            .bind($details)
    };
}
pub(crate) use insert_audit_query;

impl Store {
    /// Appends one record to the audit log.
    pub async fn append_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let details = record.checked_details()?;
        with_pool!(self, pool => insert_audit_query!(record, details).execute(pool).await.map(drop))?;
        Ok(())
    }

    /// The newest `limit` records, newest first, optionally of one `kind` only.
    pub async fn recent_audit(
        &self,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let limit = i64::from(limit);
        let rows = with_pool!(self, pool => {
            let query = match kind {
                Some(kind) => sqlx::query(SELECT_AUDIT_BY_KIND_SQL).bind(kind).bind(limit),
                None => sqlx::query(SELECT_AUDIT_SQL).bind(limit),
            };
            query
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(RawAudit {
                        id: row.try_get("id")?,
                        at: row.try_get("at")?,
                        kind: row.try_get("kind")?,
                        actor: row.try_get("actor")?,
                        subject: row.try_get("subject")?,
                        outcome: row.try_get("outcome")?,
                        reason: row.try_get("reason")?,
                        details: row.try_get("details")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        rows.into_iter().map(RawAudit::into_record).collect()
    }
}

struct RawAudit {
    id: i64,
    at: i64,
    kind: String,
    actor: String,
    subject: Option<String>,
    outcome: String,
    reason: Option<String>,
    details: String,
}

impl RawAudit {
    fn into_record(self) -> Result<StoredAuditRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: AUDIT_TABLE,
            reason,
        };
        let outcome = AuditOutcome::parse(&self.outcome).ok_or_else(|| {
            corrupt(format!(
                "record {}: unknown outcome {:?}",
                self.id, self.outcome
            ))
        })?;
        let details = serde_json::from_str(&self.details)
            .map_err(|e| corrupt(format!("record {}: details are not JSON: {e}", self.id)))?;
        Ok(StoredAuditRecord {
            id: self.id,
            record: AuditRecord {
                at: self.at,
                kind: self.kind,
                actor: self.actor,
                subject: self.subject,
                outcome,
                reason: self.reason,
                details,
            },
        })
    }
}

fn value_has_jwt(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => looks_like_jwt(s),
        serde_json::Value::Array(items) => items.iter().any(value_has_jwt),
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(k, v)| looks_like_jwt(k) || value_has_jwt(v)),
        _ => false,
    }
}

/// True if `s` contains something shaped like a compact JWS: `eyJ<b64url>.<b64url>.`.
pub(crate) fn looks_like_jwt(s: &str) -> bool {
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    s.match_indices("eyJ").any(|(start, _)| {
        let rest = &s.as_bytes()[start..];
        let header = rest.iter().take_while(|&&b| is_b64(b)).count();
        if header < 8 || rest.get(header) != Some(&b'.') {
            return false;
        }
        let rest = &rest[header + 1..];
        let payload = rest.iter().take_while(|&&b| is_b64(b)).count();
        payload >= 2 && rest.get(payload) == Some(&b'.')
    })
}
