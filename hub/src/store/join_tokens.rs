//! Join tokens (`join_tokens`) and the join itself: spend the token and mark the cluster
//! joined in ONE transaction, so a refused or racing join writes nothing.

use std::time::Duration;

use sqlx::Row;
use tether_common::time::UnixTime;

use super::audit::insert_audit_query;
use super::{AuditRecord, Store, StoreError, with_pool};
use crate::registry::{ClusterName, JoinSecret, JoinTokenId, JoinTokenRow};

/// Table name of the join tokens.
pub const JOIN_TOKENS_TABLE: &str = "join_tokens";

pub(crate) const INSERT_TOKEN_SQL: &str = "INSERT INTO join_tokens (id, secret_hash, cluster, created_at, expires_at, used_at) \
     VALUES ($1, $2, $3, $4, $5, NULL)";
const SELECT_TOKEN_SQL: &str = "SELECT id, secret_hash, cluster, created_at, expires_at, used_at \
     FROM join_tokens WHERE id = $1";
const SPEND_TOKEN_SQL: &str = "UPDATE join_tokens SET used_at = $1 \
     WHERE id = $2 AND cluster = $3 AND used_at IS NULL AND expires_at > $1";
const MARK_JOINED_SQL: &str = "UPDATE clusters SET state = 'joined', cert_serial = $1, cert_not_after = $2, \
     joined_at = $3, last_seen = $3, agent_version = $4 WHERE name = $5 AND state = 'pending'";

/// Binds a [`JoinTokenRow`] to the insert, ready to execute on a pool or a transaction.
macro_rules! insert_token_query {
    ($row:expr) => {
        sqlx::query($crate::store::join_tokens::INSERT_TOKEN_SQL)
            .bind($row.id.as_str())
            .bind($row.secret_hash.as_str())
            .bind($row.cluster.as_str())
            .bind($row.created_at.as_secs())
            .bind($row.expires_at.as_secs())
    };
}
pub(crate) use insert_token_query;

/// What [`Store::complete_join`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The token was spent and the cluster is joined.
    Joined,
    /// The token was already used, expired, or belongs to another cluster (nothing written).
    TokenUnusable,
    /// The cluster is not pending (already joined, removed or absent; nothing written).
    ClusterNotPending,
}

/// The certificate a join issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// Serial, lowercase hex.
    pub serial: String,
    /// End of validity.
    pub not_after: UnixTime,
}

impl Store {
    /// Creates a join token for `cluster`, valid for `ttl` from `now`. Only the hash of
    /// the secret is stored; the secret is returned once.
    pub async fn create_join_token(
        &self,
        cluster: &ClusterName,
        ttl: Duration,
        now: UnixTime,
    ) -> Result<(JoinTokenId, JoinSecret, UnixTime), StoreError> {
        let (row, secret) = new_token_row(cluster, ttl, now)?;
        with_pool!(self, pool => insert_token_query!(row).execute(pool).await.map(drop))?;
        Ok((row.id, secret, row.expires_at))
    }

    /// The token `id`, used or not.
    pub async fn join_token(&self, id: &JoinTokenId) -> Result<Option<JoinTokenRow>, StoreError> {
        let raw = with_pool!(self, pool => sqlx::query(SELECT_TOKEN_SQL)
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
            .map(|row| -> Result<RawToken, sqlx::Error> {
                Ok(RawToken {
                    id: row.try_get("id")?,
                    secret_hash: row.try_get("secret_hash")?,
                    cluster: row.try_get("cluster")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                })
            })
            .transpose()?);
        raw.map(RawToken::into_row).transpose()
    }

    /// Spends token `id` for `cluster` at `now` (compare-and-set): true for exactly one of
    /// racing callers, false if it was used, expired, or is for another cluster.
    pub async fn redeem_join_token(
        &self,
        id: &JoinTokenId,
        cluster: &ClusterName,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let spent = with_pool!(self, pool => sqlx::query(SPEND_TOKEN_SQL)
            .bind(now.as_secs())
            .bind(id.as_str())
            .bind(cluster.as_str())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(spent == 1)
    }

    /// In ONE transaction: spends token `id` (as [`Store::redeem_join_token`]), moves
    /// `cluster` from `pending` to `joined` with the issued certificate, and appends
    /// `audit`. Anything refused rolls back: nothing is written.
    pub async fn complete_join(
        &self,
        id: &JoinTokenId,
        cluster: &ClusterName,
        cert: &IssuedCert,
        agent_version: &str,
        now: UnixTime,
        audit: &AuditRecord,
    ) -> Result<JoinOutcome, StoreError> {
        let details = audit.checked_details()?;
        let outcome = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let spent = sqlx::query(SPEND_TOKEN_SQL)
                .bind(now.as_secs())
                .bind(id.as_str())
                .bind(cluster.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if spent != 1 {
                tx.rollback().await?;
                JoinOutcome::TokenUnusable
            } else {
                let joined = sqlx::query(MARK_JOINED_SQL)
                    .bind(cert.serial.as_str())
                    .bind(cert.not_after.as_secs())
                    .bind(now.as_secs())
                    .bind(agent_version)
                    .bind(cluster.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if joined != 1 {
                    tx.rollback().await?;
                    JoinOutcome::ClusterNotPending
                } else {
                    insert_audit_query!(audit, details).execute(&mut *tx).await?;
                    tx.commit().await?;
                    JoinOutcome::Joined
                }
            }
        });
        Ok(outcome)
    }
}

/// A fresh token row for `cluster` and its secret.
pub(crate) fn new_token_row(
    cluster: &ClusterName,
    ttl: Duration,
    now: UnixTime,
) -> Result<(JoinTokenRow, JoinSecret), StoreError> {
    let random = |_| StoreError::Corrupt {
        table: JOIN_TOKENS_TABLE,
        reason: "the system random generator failed".to_owned(),
    };
    let id = JoinTokenId::generate().map_err(random)?;
    let secret = JoinSecret::generate().map_err(random)?;
    let row = JoinTokenRow {
        id,
        secret_hash: secret.hash(),
        cluster: cluster.clone(),
        created_at: now,
        expires_at: now.saturating_add(ttl),
        used_at: None,
    };
    Ok((row, secret))
}

struct RawToken {
    id: String,
    secret_hash: String,
    cluster: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
}

impl RawToken {
    fn into_row(self) -> Result<JoinTokenRow, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: JOIN_TOKENS_TABLE,
            reason,
        };
        let id = JoinTokenId::parse(&self.id).ok_or_else(|| corrupt("bad token id".to_owned()))?;
        let cluster = ClusterName::parse(&self.cluster).map_err(|e| corrupt(e.to_string()))?;
        Ok(JoinTokenRow {
            id,
            secret_hash: self.secret_hash,
            cluster,
            created_at: UnixTime::from_secs(self.created_at),
            expires_at: UnixTime::from_secs(self.expires_at),
            used_at: self.used_at.map(UnixTime::from_secs),
        })
    }
}
