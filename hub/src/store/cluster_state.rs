//! The registration side of `clusters` (state, certificate, heartbeat), the hub's CAs
//! (`hub_cas`, private keys sealed with the KEK) and the revoked sessions agents enforce.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::Row;
use tether_common::time::UnixTime;

use super::audit::insert_audit_query;
use super::clusters::CLUSTERS_TABLE;
use super::join_tokens::{insert_token_query, new_token_row};
use super::{AuditRecord, Store, StoreError, with_pool};
use crate::registry::{
    AgentReport, ClusterName, ClusterRecord, ClusterRow, ClusterState, JoinSecret, JoinTokenId,
    RegistryError,
};

/// Table name of the hub's CAs.
pub const HUB_CAS_TABLE: &str = "hub_cas";

// A removed cluster may be added again: it starts over as pending, with no certificate.
const ADD_PENDING_SQL: &str = "INSERT INTO clusters (name, labels, created_at, state) VALUES ($1, $2, $3, 'pending') \
     ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, created_at = excluded.created_at, \
     state = 'pending', cert_serial = NULL, cert_not_after = NULL, joined_at = NULL, removed_at = NULL, \
     agent_version = '', last_seen = NULL, proxy_url = '', proxy_ca_pem = '' \
     WHERE clusters.state = 'removed'";
const RECORD_COLUMNS: &str = "name, labels, created_at, state, cert_serial, cert_not_after, agent_version, \
     last_seen, proxy_url, proxy_ca_pem";
const MARK_REMOVED_SQL: &str = "UPDATE clusters SET state = 'removed', removed_at = $1, cert_serial = NULL \
     WHERE name = $2 AND state <> 'removed'";
const SPEND_CLUSTER_TOKENS_SQL: &str =
    "UPDATE join_tokens SET used_at = $1 WHERE cluster = $2 AND used_at IS NULL";
const HEARTBEAT_SQL: &str = "UPDATE clusters SET last_seen = $1, agent_version = $2, proxy_url = $3, \
     proxy_ca_pem = $4 WHERE name = $5 AND state = 'joined'";
const RENEW_SQL: &str = "UPDATE clusters SET cert_serial = $1, cert_not_after = $2, last_seen = $3 \
     WHERE name = $4 AND state = 'joined' AND cert_serial = $5";
const INSERT_CA_SQL: &str = "INSERT INTO hub_cas (name, cert_pem, key_ciphertext, key_nonce, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING";
const SELECT_CA_SQL: &str =
    "SELECT cert_pem, key_ciphertext, key_nonce FROM hub_cas WHERE name = $1";
const REVOKED_SESSIONS_SQL: &str = "SELECT id, absolute_expires_at, revoked_at FROM sessions \
     WHERE revoked_at IS NOT NULL AND revoked_at >= $1 AND absolute_expires_at > $2 ORDER BY revoked_at";

/// A CA as stored: certificate in clear, private key sealed with the KEK.
#[derive(Clone)]
pub struct StoredCa {
    /// The CA certificate (PEM).
    pub cert_pem: String,
    /// The sealed PKCS#8 private key.
    pub key_ciphertext: Vec<u8>,
    /// Its nonce.
    pub key_nonce: Vec<u8>,
}

impl std::fmt::Debug for StoredCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCa").finish_non_exhaustive()
    }
}

/// A revoked session that still matters (its tokens may not have expired yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSession {
    /// The session id (`sid` claim).
    pub sid: String,
    /// When its tokens stop mattering (the session's absolute expiry).
    pub until: UnixTime,
    /// When it was revoked.
    pub revoked_at: UnixTime,
}

impl Store {
    /// In ONE transaction: adds `name` as a pending cluster (or re-adds a removed one), creates
    /// its join token valid for `ttl`, and appends `audit`. [`RegistryError::AlreadyExists`]
    /// (nothing written) if the cluster exists and is not removed.
    pub async fn add_cluster_with_token(
        &self,
        name: &ClusterName,
        labels: &BTreeMap<String, String>,
        ttl: Duration,
        now: UnixTime,
        audit: &AuditRecord,
    ) -> Result<(ClusterRow, JoinTokenId, JoinSecret, UnixTime), RegistryError> {
        let labels_json = serde_json::to_string(labels).map_err(|e| StoreError::Corrupt {
            table: CLUSTERS_TABLE,
            reason: format!("cannot encode labels: {e}"),
        })?;
        let details = audit.checked_details()?;
        let (token, secret) = new_token_row(name, ttl, now)?;
        let added = with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let added = sqlx::query(ADD_PENDING_SQL)
                .bind(name.as_str())
                .bind(labels_json.as_str())
                .bind(now.as_secs())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?
                .rows_affected();
            if added != 1 {
                tx.rollback().await.map_err(StoreError::from)?;
                false
            } else {
                sqlx::query(SPEND_CLUSTER_TOKENS_SQL)
                    .bind(now.as_secs())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                insert_token_query!(token).execute(&mut *tx).await.map_err(StoreError::from)?;
                insert_audit_query!(audit, details).execute(&mut *tx).await.map_err(StoreError::from)?;
                tx.commit().await.map_err(StoreError::from)?;
                true
            }
        });
        if !added {
            return Err(RegistryError::AlreadyExists(name.clone()));
        }
        let row = ClusterRow {
            name: name.clone(),
            labels: labels.clone(),
            created_at: now,
        };
        Ok((row, token.id, secret, token.expires_at))
    }

    /// The cluster `name` with its registration state, whatever that state.
    pub async fn cluster_record(
        &self,
        name: &ClusterName,
    ) -> Result<Option<ClusterRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM clusters WHERE name = $1");
        let raw = with_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name.as_str())
            .fetch_optional(pool)
            .await?
            .map(|row| raw_record(&row))
            .transpose()?);
        raw.map(RawRecord::into_record).transpose()
    }

    /// Every cluster (removed ones included) with its registration state, by name.
    pub async fn list_cluster_records(&self) -> Result<Vec<ClusterRecord>, StoreError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM clusters ORDER BY name");
        let raw = with_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await?
            .iter()
            .map(raw_record)
            .collect::<Result<Vec<_>, _>>()?);
        raw.into_iter().map(RawRecord::into_record).collect()
    }

    /// In ONE transaction: marks `name` removed (its certificate serial is forgotten, so
    /// its identity no longer connects), spends its unused join tokens, appends `audit`.
    pub async fn mark_cluster_removed(
        &self,
        name: &ClusterName,
        now: UnixTime,
        audit: &AuditRecord,
    ) -> Result<(), RegistryError> {
        let details = audit.checked_details()?;
        let removed = with_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::from)?;
            let removed = sqlx::query(MARK_REMOVED_SQL)
                .bind(now.as_secs())
                .bind(name.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?
                .rows_affected();
            if removed != 1 {
                tx.rollback().await.map_err(StoreError::from)?;
                false
            } else {
                sqlx::query(SPEND_CLUSTER_TOKENS_SQL)
                    .bind(now.as_secs())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                insert_audit_query!(audit, details).execute(&mut *tx).await.map_err(StoreError::from)?;
                tx.commit().await.map_err(StoreError::from)?;
                true
            }
        });
        if removed {
            Ok(())
        } else {
            Err(RegistryError::NotFound(name.clone()))
        }
    }

    /// Records a heartbeat of joined cluster `name`; false if it is not joined.
    pub async fn record_heartbeat(
        &self,
        name: &ClusterName,
        report: &AgentReport,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let updated = with_pool!(self, pool => sqlx::query(HEARTBEAT_SQL)
            .bind(now.as_secs())
            .bind(report.agent_version.as_str())
            .bind(report.proxy_url.as_str())
            .bind(report.proxy_ca_pem.as_str())
            .bind(name.as_str())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(updated == 1)
    }

    /// Replaces the certificate of joined cluster `name` if its current serial is
    /// `old_serial` (compare-and-set); false otherwise.
    pub async fn renew_cluster_cert(
        &self,
        name: &ClusterName,
        old_serial: &str,
        serial: &str,
        not_after: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let updated = with_pool!(self, pool => sqlx::query(RENEW_SQL)
            .bind(serial)
            .bind(not_after.as_secs())
            .bind(now.as_secs())
            .bind(name.as_str())
            .bind(old_serial)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(updated == 1)
    }

    /// Stores CA `name` unless one exists; returns the one stored (the first writer wins
    /// across replicas).
    pub async fn insert_or_load_ca(
        &self,
        name: &str,
        ca: &StoredCa,
        now: UnixTime,
    ) -> Result<StoredCa, StoreError> {
        with_pool!(self, pool => sqlx::query(INSERT_CA_SQL)
            .bind(name)
            .bind(ca.cert_pem.as_str())
            .bind(ca.key_ciphertext.as_slice())
            .bind(ca.key_nonce.as_slice())
            .bind(now.as_secs())
            .execute(pool)
            .await
            .map(drop))?;
        self.ca(name).await?.ok_or_else(|| StoreError::Corrupt {
            table: HUB_CAS_TABLE,
            reason: format!("CA {name} vanished after insert"),
        })
    }

    /// CA `name`, if generated.
    pub async fn ca(&self, name: &str) -> Result<Option<StoredCa>, StoreError> {
        let ca = with_pool!(self, pool => sqlx::query(SELECT_CA_SQL)
            .bind(name)
            .fetch_optional(pool)
            .await?
            .map(|row| -> Result<StoredCa, sqlx::Error> {
                Ok(StoredCa {
                    cert_pem: row.try_get("cert_pem")?,
                    key_ciphertext: row.try_get("key_ciphertext")?,
                    key_nonce: row.try_get("key_nonce")?,
                })
            })
            .transpose()?);
        Ok(ca)
    }

    /// Sessions revoked at or after `since` whose tokens may still be alive at `now`,
    /// oldest revocation first.
    pub async fn revoked_sessions(
        &self,
        since: UnixTime,
        now: UnixTime,
    ) -> Result<Vec<RevokedSession>, StoreError> {
        let rows = with_pool!(self, pool => sqlx::query(REVOKED_SESSIONS_SQL)
            .bind(since.as_secs())
            .bind(now.as_secs())
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| -> Result<RevokedSession, sqlx::Error> {
                Ok(RevokedSession {
                    sid: row.try_get("id")?,
                    until: UnixTime::from_secs(row.try_get("absolute_expires_at")?),
                    revoked_at: UnixTime::from_secs(row.try_get("revoked_at")?),
                })
            })
            .collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }
}

struct RawRecord {
    name: String,
    labels: String,
    created_at: i64,
    state: String,
    cert_serial: Option<String>,
    cert_not_after: Option<i64>,
    agent_version: String,
    last_seen: Option<i64>,
    proxy_url: String,
    proxy_ca_pem: String,
}

fn raw_record<R>(row: &R) -> Result<RawRecord, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(RawRecord {
        name: row.try_get("name")?,
        labels: row.try_get("labels")?,
        created_at: row.try_get("created_at")?,
        state: row.try_get("state")?,
        cert_serial: row.try_get("cert_serial")?,
        cert_not_after: row.try_get("cert_not_after")?,
        agent_version: row.try_get("agent_version")?,
        last_seen: row.try_get("last_seen")?,
        proxy_url: row.try_get("proxy_url")?,
        proxy_ca_pem: row.try_get("proxy_ca_pem")?,
    })
}

impl RawRecord {
    fn into_record(self) -> Result<ClusterRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: CLUSTERS_TABLE,
            reason,
        };
        let name = ClusterName::parse(&self.name).map_err(|e| corrupt(e.to_string()))?;
        let labels = serde_json::from_str(&self.labels)
            .map_err(|e| corrupt(format!("cluster {name}: labels are not a JSON object: {e}")))?;
        let state = ClusterState::parse(&self.state)
            .ok_or_else(|| corrupt(format!("cluster {name}: unknown state {:?}", self.state)))?;
        Ok(ClusterRecord {
            row: ClusterRow {
                name,
                labels,
                created_at: UnixTime::from_secs(self.created_at),
            },
            state,
            cert_serial: self.cert_serial,
            cert_not_after: self.cert_not_after.map(UnixTime::from_secs),
            agent_version: self.agent_version,
            last_seen: self.last_seen.map(UnixTime::from_secs),
            proxy_url: self.proxy_url,
            proxy_ca_pem: self.proxy_ca_pem,
        })
    }
}
