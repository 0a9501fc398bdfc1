//! Signing-key rows and the key epoch.
//!
//! Every change to the key table goes through [`Store::apply_key_changes`]: one transaction
//! that first advances `key_epoch.generation` by compare-and-set, then applies the changes
//! and writes their audit records. If the generation moved since the caller read it, another
//! hub replica changed the keys first: nothing is written and the caller reloads. This makes
//! a rotation happen exactly once however many replicas race for it, on SQLite and on
//! PostgreSQL alike.

use std::fmt;

use sqlx::Row;

use super::audit::insert_audit_query;
use super::{AuditRecord, Store, StoreError, with_pool};

/// Table name of the signing keys.
pub const SIGNING_KEYS_TABLE: &str = "signing_keys";
/// Table name of the single-row key epoch.
pub const KEY_EPOCH_TABLE: &str = "key_epoch";

// One statement, so the generation and the rows come from the same snapshot on both backends.
const SELECT_LIVE_SQL: &str = "SELECT e.generation, k.kid, k.alg, k.state, k.created_at, k.activated_at, \
     k.deactivated_at, k.retire_after, k.public_jwk, k.private_key_ciphertext, k.nonce \
     FROM key_epoch e LEFT JOIN signing_keys k ON k.state <> 'retired' \
     WHERE e.id = 1 ORDER BY k.created_at, k.kid";
const SELECT_ALL_SQL: &str = "SELECT e.generation, k.kid, k.alg, k.state, k.created_at, k.activated_at, \
     k.deactivated_at, k.retire_after, k.public_jwk, k.private_key_ciphertext, k.nonce \
     FROM key_epoch e LEFT JOIN signing_keys k ON 1 = 1 \
     WHERE e.id = 1 ORDER BY k.created_at, k.kid";
const CAS_EPOCH_SQL: &str =
    "UPDATE key_epoch SET generation = generation + 1 WHERE id = 1 AND generation = $1";
const INSERT_KEY_SQL: &str = "INSERT INTO signing_keys (kid, alg, state, created_at, activated_at, \
     deactivated_at, retire_after, public_jwk, private_key_ciphertext, nonce) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const ACTIVATE_SQL: &str =
    "UPDATE signing_keys SET state = 'current', activated_at = $1 WHERE kid = $2 AND state = $3";
const DEMOTE_SQL: &str = "UPDATE signing_keys SET state = 'previous', deactivated_at = $1, retire_after = $2 \
     WHERE kid = $3 AND state = $4";
const RETIRE_SQL: &str = "UPDATE signing_keys SET state = 'retired', \
     deactivated_at = COALESCE(deactivated_at, $1), private_key_ciphertext = $2, nonce = $3 \
     WHERE kid = $4 AND state = $5";

/// Lifecycle state of a signing key: `next -> current -> previous -> retired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Published in the JWKS, not signing yet.
    Next,
    /// The one key that signs.
    Current,
    /// Published until every token it signed has expired (`retire_after`).
    Previous,
    /// Gone from the JWKS; its private key is wiped.
    Retired,
}

impl KeyStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "current" => Some(Self::Current),
            "previous" => Some(Self::Previous),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }

    /// True if keys in this state belong in the JWKS.
    pub fn is_published(self) -> bool {
        !matches!(self, Self::Retired)
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `signing_keys`. The private key is only ever here encrypted; `Debug` shows
/// its length, not its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// Key id (the JWS `kid`).
    pub kid: String,
    /// JWS algorithm, `ES256` or `RS256`.
    pub alg: String,
    /// Lifecycle state.
    pub status: KeyStatus,
    /// When the key was generated (unix seconds); it is published from then on.
    pub created_at: i64,
    /// When it became `current`.
    pub activated_at: Option<i64>,
    /// When it stopped signing (became `previous` or was retired in an emergency).
    pub deactivated_at: Option<i64>,
    /// When a `previous` key may be retired.
    pub retire_after: Option<i64>,
    /// The public key as JWK JSON.
    pub public_jwk: String,
    /// AES-256-GCM ciphertext of the PKCS#8 private key (empty once retired).
    pub private_key_ciphertext: Vec<u8>,
    /// The 96-bit AEAD nonce (empty once retired).
    pub nonce: Vec<u8>,
}

impl fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("deactivated_at", &self.deactivated_at)
            .field("retire_after", &self.retire_after)
            .field(
                "private_key_ciphertext_len",
                &self.private_key_ciphertext.len(),
            )
            .finish_non_exhaustive()
    }
}

/// The key table at one generation of the key epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySnapshot {
    /// `key_epoch.generation` when the rows were read: pass it back to
    /// [`Store::apply_key_changes`].
    pub generation: i64,
    /// The rows, oldest first.
    pub keys: Vec<KeyRow>,
}

/// One change to the key table, applied inside [`Store::apply_key_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Insert a new key (`next`, or `current` at bootstrap).
    Insert(KeyRow),
    /// `next` -> `current` at `at`.
    Activate {
        /// The key.
        kid: String,
        /// Activation time.
        at: i64,
    },
    /// `current` -> `previous` at `at`, published until `retire_after`.
    Demote {
        /// The key.
        kid: String,
        /// Deactivation time.
        at: i64,
        /// When it may be retired.
        retire_after: i64,
    },
    /// `from` (`previous`, or `current` in an emergency) -> `retired`; wipes the private key.
    Retire {
        /// The key.
        kid: String,
        /// The state the key must be in.
        from: KeyStatus,
        /// Retirement time.
        at: i64,
    },
}

impl Store {
    /// The published keys (`next`, `current`, `previous`) and the current generation.
    pub async fn load_keys(&self) -> Result<KeySnapshot, StoreError> {
        self.select_keys(SELECT_LIVE_SQL).await
    }

    /// Every key, retired ones included (admin listing, tests).
    pub async fn load_all_keys(&self) -> Result<KeySnapshot, StoreError> {
        self.select_keys(SELECT_ALL_SQL).await
    }

    async fn select_keys(&self, sql: &'static str) -> Result<KeySnapshot, StoreError> {
        let raws = with_pool!(self, pool => {
            sqlx::query(sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(RawKey {
                        generation: row.try_get("generation")?,
                        kid: row.try_get("kid")?,
                        alg: row.try_get("alg")?,
                        state: row.try_get("state")?,
                        created_at: row.try_get("created_at")?,
                        activated_at: row.try_get("activated_at")?,
                        deactivated_at: row.try_get("deactivated_at")?,
                        retire_after: row.try_get("retire_after")?,
                        public_jwk: row.try_get("public_jwk")?,
                        private_key_ciphertext: row.try_get("private_key_ciphertext")?,
                        nonce: row.try_get("nonce")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        let generation = raws
            .first()
            .map(|r| r.generation)
            .ok_or_else(|| StoreError::Corrupt {
                table: KEY_EPOCH_TABLE,
                reason: "the key epoch row is missing".to_owned(),
            })?;
        let keys = raws
            .into_iter()
            .filter_map(RawKey::into_row)
            .collect::<Result<_, _>>()?;
        Ok(KeySnapshot { generation, keys })
    }

    /// Applies `changes` and appends `audit` in ONE transaction, if and only if the key epoch
    /// is still at `seen_generation`. Returns the new generation, or `None` when another
    /// writer got there first (nothing was written; reload and decide again).
    pub async fn apply_key_changes(
        &self,
        seen_generation: i64,
        changes: &[KeyChange],
        audit: &[AuditRecord],
    ) -> Result<Option<i64>, StoreError> {
        let details = audit
            .iter()
            .map(AuditRecord::checked_details)
            .collect::<Result<Vec<_>, _>>()?;
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let cas = sqlx::query(CAS_EPOCH_SQL).bind(seen_generation).execute(&mut *tx).await?;
            if cas.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            for change in changes {
                let (kid, expected, result) = match change {
                    KeyChange::Insert(row) => {
                        let result = sqlx::query(INSERT_KEY_SQL)
                            .bind(row.kid.as_str())
                            .bind(row.alg.as_str())
                            .bind(row.status.as_str())
                            .bind(row.created_at)
                            .bind(row.activated_at)
                            .bind(row.deactivated_at)
                            .bind(row.retire_after)
                            .bind(row.public_jwk.as_str())
                            .bind(row.private_key_ciphertext.as_slice())
                            .bind(row.nonce.as_slice())
                            .execute(&mut *tx)
                            .await?;
                        (&row.kid, None, result)
                    }
                    KeyChange::Activate { kid, at } => {
                        let result = sqlx::query(ACTIVATE_SQL)
                            .bind(*at)
                            .bind(kid.as_str())
                            .bind(KeyStatus::Next.as_str())
                            .execute(&mut *tx)
                            .await?;
                        (kid, Some(KeyStatus::Next), result)
                    }
                    KeyChange::Demote { kid, at, retire_after } => {
                        let result = sqlx::query(DEMOTE_SQL)
                            .bind(*at)
                            .bind(*retire_after)
                            .bind(kid.as_str())
                            .bind(KeyStatus::Current.as_str())
                            .execute(&mut *tx)
                            .await?;
                        (kid, Some(KeyStatus::Current), result)
                    }
                    KeyChange::Retire { kid, from, at } => {
                        let result = sqlx::query(RETIRE_SQL)
                            .bind(*at)
                            .bind(Vec::<u8>::new())
                            .bind(Vec::<u8>::new())
                            .bind(kid.as_str())
                            .bind(from.as_str())
                            .execute(&mut *tx)
                            .await?;
                        (kid, Some(*from), result)
                    }
                };
                if result.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Err(StoreError::Corrupt {
                        table: SIGNING_KEYS_TABLE,
                        reason: match expected {
                            Some(state) => format!("key {kid} is not in state {state}"),
                            None => format!("key {kid} was not inserted"),
                        },
                    });
                }
            }
            for (record, details) in audit.iter().zip(details) {
                insert_audit_query!(record, details).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(Some(seen_generation + 1))
        })
    }
}

struct RawKey {
    generation: i64,
    kid: Option<String>,
    alg: Option<String>,
    state: Option<String>,
    created_at: Option<i64>,
    activated_at: Option<i64>,
    deactivated_at: Option<i64>,
    retire_after: Option<i64>,
    public_jwk: Option<String>,
    private_key_ciphertext: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
}

impl RawKey {
    /// `None` for the all-NULL row of an empty key table (the LEFT JOIN).
    fn into_row(self) -> Option<Result<KeyRow, StoreError>> {
        let kid = self.kid?;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: SIGNING_KEYS_TABLE,
            reason,
        };
        let missing = |column: &str| corrupt(format!("key {kid}: {column} is NULL"));
        let row = (|| {
            let state = self.state.ok_or_else(|| missing("state"))?;
            let status = KeyStatus::parse(&state)
                .ok_or_else(|| corrupt(format!("key {kid}: unknown state {state:?}")))?;
            Ok(KeyRow {
                alg: self.alg.ok_or_else(|| missing("alg"))?,
                status,
                created_at: self.created_at.ok_or_else(|| missing("created_at"))?,
                activated_at: self.activated_at,
                deactivated_at: self.deactivated_at,
                retire_after: self.retire_after,
                public_jwk: self.public_jwk.ok_or_else(|| missing("public_jwk"))?,
                private_key_ciphertext: self
                    .private_key_ciphertext
                    .ok_or_else(|| missing("private_key_ciphertext"))?,
                nonce: self.nonce.ok_or_else(|| missing("nonce"))?,
                kid: kid.clone(),
            })
        })();
        Some(row)
    }
}
