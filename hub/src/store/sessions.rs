//! Rows of hub sessions: `sessions`, `refresh_tokens`, `auth_codes`, `pending_logins`.
//!
//! The rules (expiry, rotation, reuse detection, PKCE) live in [`crate::sessions`]; this
//! module only reads and writes rows. Every single-use value is consumed by a compare-and-set
//! statement that affects at most one row, so of two racing requests exactly one wins, on
//! SQLite and on PostgreSQL alike. Tokens, codes and login ids are stored only as lowercase
//! hex SHA-256.

use sqlx::Row;

use super::{Store, StoreError, with_pool};

/// Table name of hub sessions.
pub const SESSIONS_TABLE: &str = "sessions";
/// Table name of refresh tokens (hashes).
pub const REFRESH_TOKENS_TABLE: &str = "refresh_tokens";
/// Table name of authorization codes (hashes).
pub const AUTH_CODES_TABLE: &str = "auth_codes";
/// Table name of logins waiting for the upstream IdP.
pub const PENDING_LOGINS_TABLE: &str = "pending_logins";

const SESSION_COLUMNS: &str = "id, subject, username, groups_json, client_id, created_at, last_used_at, \
     absolute_expires_at, upstream_grant_ciphertext, upstream_grant_nonce, upstream_checked_at, \
     revoked_at, revoked_reason";
const INSERT_SESSION_SQL: &str = "INSERT INTO sessions (id, subject, username, groups_json, client_id, \
     created_at, last_used_at, absolute_expires_at, upstream_grant_ciphertext, upstream_grant_nonce, \
     upstream_checked_at, revoked_at, revoked_reason) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const TOUCH_SESSION_SQL: &str = "UPDATE sessions SET last_used_at = $1 \
     WHERE id = $2 AND revoked_at IS NULL AND last_used_at < $1";
const REVOKE_SESSION_SQL: &str = "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 \
     WHERE id = $3 AND revoked_at IS NULL";
const UPDATE_IDENTITY_SQL: &str = "UPDATE sessions SET subject = $1, username = $2, groups_json = $3, \
     upstream_grant_ciphertext = $4, upstream_grant_nonce = $5, upstream_checked_at = $6 \
     WHERE id = $7 AND revoked_at IS NULL";
const INSERT_CODE_SQL: &str = "INSERT INTO auth_codes (code_hash, client_id, redirect_uri, code_challenge, \
     nonce, scope, session_id, created_at, expires_at, used_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const CONSUME_CODE_SQL: &str =
    "UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL";
const SELECT_CODE_SQL: &str = "SELECT code_hash, client_id, redirect_uri, code_challenge, nonce, scope, \
     session_id, created_at, expires_at, used_at FROM auth_codes WHERE code_hash = $1";
const INSERT_REFRESH_SQL: &str = "INSERT INTO refresh_tokens (token_hash, session_id, client_id, \
     created_at, used_at) VALUES ($1, $2, $3, $4, $5)";
const SELECT_REFRESH_SQL: &str = "SELECT token_hash, session_id, client_id, created_at, used_at \
     FROM refresh_tokens WHERE token_hash = $1";
const SPEND_REFRESH_SQL: &str =
    "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL";
const INSERT_LOGIN_SQL: &str =
    "INSERT INTO pending_logins (id_hash, created_at, expires_at, request) VALUES ($1, $2, $3, $4)";
const TAKE_LOGIN_SQL: &str = "DELETE FROM pending_logins WHERE id_hash = $1 \
     RETURNING id_hash, created_at, expires_at, request";
const PURGE_CODES_SQL: &str = "DELETE FROM auth_codes WHERE expires_at <= $1";
const PURGE_LOGINS_SQL: &str = "DELETE FROM pending_logins WHERE expires_at <= $1";
const PURGE_SESSIONS_SQL: &str =
    "DELETE FROM sessions WHERE absolute_expires_at <= $1 OR last_used_at <= $2";
const DUE_FOR_UPSTREAM_CHECK_SQL: &str = "SELECT id, upstream_checked_at FROM sessions \
     WHERE revoked_at IS NULL AND upstream_checked_at <= $1 AND absolute_expires_at > $2 \
     AND last_used_at > $3 ORDER BY upstream_checked_at, id LIMIT $4";
const CLAIM_UPSTREAM_CHECK_SQL: &str = "UPDATE sessions SET upstream_checked_at = $1 \
     WHERE id = $2 AND upstream_checked_at = $3 AND revoked_at IS NULL";

/// One row of `sessions`. The upstream grant is only ever here encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The session id (`sid`).
    pub id: String,
    /// The stable upstream subject.
    pub subject: String,
    /// The username.
    pub username: String,
    /// The groups (stored as a JSON array).
    pub groups: Vec<String>,
    /// The OAuth client the session was created for.
    pub client_id: String,
    /// Creation time (unix seconds).
    pub created_at: i64,
    /// Last refresh or code redemption.
    pub last_used_at: i64,
    /// When the session ends whatever its use.
    pub absolute_expires_at: i64,
    /// AES-256-GCM ciphertext of the upstream grant (AAD bound to the session id).
    pub upstream_grant_ciphertext: Vec<u8>,
    /// Its 96-bit nonce.
    pub upstream_grant_nonce: Vec<u8>,
    /// When the upstream grant was last validated.
    pub upstream_checked_at: i64,
    /// When the session was revoked.
    pub revoked_at: Option<i64>,
    /// Why (`logout`, `refresh_token_reuse`, ...).
    pub revoked_reason: Option<String>,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("username", &self.username)
            .field("groups", &self.groups)
            .field("client_id", &self.client_id)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("absolute_expires_at", &self.absolute_expires_at)
            .field(
                "upstream_grant_ciphertext",
                &format_args!("<{} bytes>", self.upstream_grant_ciphertext.len()),
            )
            .field("upstream_checked_at", &self.upstream_checked_at)
            .field("revoked_at", &self.revoked_at)
            .field("revoked_reason", &self.revoked_reason)
            .finish()
    }
}

/// One row of `refresh_tokens`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRow {
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: String,
    /// The session it extends.
    pub session_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it was spent (rotated away); a second use is a replay.
    pub used_at: Option<i64>,
}

/// One row of `auth_codes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCodeRow {
    /// Lowercase hex SHA-256 of the code.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request (exact string).
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The OIDC nonce of the authorization request.
    pub nonce: Option<String>,
    /// The granted scope.
    pub scope: String,
    /// The session it belongs to.
    pub session_id: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it stops being redeemable.
    pub expires_at: i64,
    /// When it was redeemed.
    pub used_at: Option<i64>,
}

/// What consuming an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// First use: the code is now spent (whatever the caller decides next).
    First(AuthCodeRow),
    /// The code had already been spent: a replay.
    Reused(AuthCodeRow),
}

/// One row of `pending_logins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLoginRow {
    /// Lowercase hex SHA-256 of the login id (the cookie value).
    pub id_hash: String,
    /// When the login started.
    pub created_at: i64,
    /// When it can no longer complete.
    pub expires_at: i64,
    /// JSON: the client's authorize request and the upstream login state.
    pub request: String,
}

/// A live session whose upstream grant is due for a check
/// ([`Store::sessions_due_for_upstream_check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueSession {
    /// The session id.
    pub id: String,
    /// Its `upstream_checked_at`: the value a claim compares with.
    pub upstream_checked_at: i64,
}

/// How many rows [`Store::purge_sessions`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Expired authorization codes.
    pub codes: u64,
    /// Expired pending logins.
    pub logins: u64,
    /// Dead sessions (their codes and refresh tokens go with them).
    pub sessions: u64,
}

macro_rules! session_from_row {
    ($row:expr) => {{
        let row = $row;
        Ok::<_, sqlx::Error>(RawSession {
            id: row.try_get("id")?,
            subject: row.try_get("subject")?,
            username: row.try_get("username")?,
            groups_json: row.try_get("groups_json")?,
            client_id: row.try_get("client_id")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
            absolute_expires_at: row.try_get("absolute_expires_at")?,
            upstream_grant_ciphertext: row.try_get("upstream_grant_ciphertext")?,
            upstream_grant_nonce: row.try_get("upstream_grant_nonce")?,
            upstream_checked_at: row.try_get("upstream_checked_at")?,
            revoked_at: row.try_get("revoked_at")?,
            revoked_reason: row.try_get("revoked_reason")?,
        })
    }};
}

macro_rules! code_from_row {
    ($row:expr) => {{
        let row = $row;
        Ok::<_, sqlx::Error>(AuthCodeRow {
            code_hash: row.try_get("code_hash")?,
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            code_challenge: row.try_get("code_challenge")?,
            nonce: row.try_get("nonce")?,
            scope: row.try_get("scope")?,
            session_id: row.try_get("session_id")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
        })
    }};
}

impl Store {
    /// Inserts a new session.
    pub async fn insert_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        let groups = encode_groups(&session.groups)?;
        with_pool!(self, pool => sqlx::query(INSERT_SESSION_SQL)
            .bind(session.id.as_str())
            .bind(session.subject.as_str())
            .bind(session.username.as_str())
            .bind(groups.as_str())
            .bind(session.client_id.as_str())
            .bind(session.created_at)
            .bind(session.last_used_at)
            .bind(session.absolute_expires_at)
            .bind(session.upstream_grant_ciphertext.as_slice())
            .bind(session.upstream_grant_nonce.as_slice())
            .bind(session.upstream_checked_at)
            .bind(session.revoked_at)
            .bind(session.revoked_reason.as_deref())
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The session `id`, revoked or not.
    pub async fn session_row(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let raw = with_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|row| session_from_row!(row))
            .transpose()?);
        raw.map(RawSession::into_row).transpose()
    }

    /// Moves `last_used_at` forward to `now` for a live session; false if revoked or absent.
    pub async fn touch_session(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => sqlx::query(TOUCH_SESSION_SQL)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Revokes a session; false if it was already revoked or does not exist.
    pub async fn revoke_session(
        &self,
        id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => sqlx::query(REVOKE_SESSION_SQL)
            .bind(now)
            .bind(reason)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Replaces the identity and encrypted upstream grant of a live session and sets
    /// `upstream_checked_at`; false if revoked or absent.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_session_identity(
        &self,
        id: &str,
        subject: &str,
        username: &str,
        groups: &[String],
        grant_ciphertext: &[u8],
        grant_nonce: &[u8],
        checked_at: i64,
    ) -> Result<bool, StoreError> {
        let groups = encode_groups(groups)?;
        let n = with_pool!(self, pool => sqlx::query(UPDATE_IDENTITY_SQL)
            .bind(subject)
            .bind(username)
            .bind(groups.as_str())
            .bind(grant_ciphertext)
            .bind(grant_nonce)
            .bind(checked_at)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Inserts an authorization code.
    pub async fn insert_auth_code(&self, code: &AuthCodeRow) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query(INSERT_CODE_SQL)
            .bind(code.code_hash.as_str())
            .bind(code.client_id.as_str())
            .bind(code.redirect_uri.as_str())
            .bind(code.code_challenge.as_str())
            .bind(code.nonce.as_deref())
            .bind(code.scope.as_str())
            .bind(code.session_id.as_str())
            .bind(code.created_at)
            .bind(code.expires_at)
            .bind(code.used_at)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Spends the code `code_hash` (compare-and-set on `used_at IS NULL`) and returns it:
    /// [`CodeUse::First`] for exactly one caller, [`CodeUse::Reused`] for every later one,
    /// `None` if there is no such code.
    pub async fn consume_auth_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<Option<CodeUse>, StoreError> {
        let found = with_pool!(self, pool => {
            let spent = sqlx::query(CONSUME_CODE_SQL)
                .bind(now)
                .bind(code_hash)
                .execute(pool)
                .await?
                .rows_affected();
            sqlx::query(SELECT_CODE_SQL)
                .bind(code_hash)
                .fetch_optional(pool)
                .await?
                .map(|row| code_from_row!(row))
                .transpose()?
                .map(|code| if spent == 1 { CodeUse::First(code) } else { CodeUse::Reused(code) })
        });
        Ok(found)
    }

    /// Inserts a refresh token.
    pub async fn insert_refresh_token(&self, token: &RefreshTokenRow) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query(INSERT_REFRESH_SQL)
            .bind(token.token_hash.as_str())
            .bind(token.session_id.as_str())
            .bind(token.client_id.as_str())
            .bind(token.created_at)
            .bind(token.used_at)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The refresh token `token_hash`, spent or not.
    pub async fn refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRow>, StoreError> {
        let found = with_pool!(self, pool => sqlx::query(SELECT_REFRESH_SQL)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
            .map(|row| -> Result<RefreshTokenRow, sqlx::Error> {
                Ok(RefreshTokenRow {
                    token_hash: row.try_get("token_hash")?,
                    session_id: row.try_get("session_id")?,
                    client_id: row.try_get("client_id")?,
                    created_at: row.try_get("created_at")?,
                    used_at: row.try_get("used_at")?,
                })
            })
            .transpose()?);
        Ok(found)
    }

    /// In ONE transaction: spends `old_hash` (compare-and-set on `used_at IS NULL`), inserts
    /// `new` and moves the session's `last_used_at` to `now`. Returns false (and writes
    /// nothing) if the old token was already spent: exactly one of racing callers wins.
    pub async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new: &RefreshTokenRow,
        now: i64,
    ) -> Result<bool, StoreError> {
        let rotated = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let spent = sqlx::query(SPEND_REFRESH_SQL)
                .bind(now)
                .bind(old_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if spent != 1 {
                tx.rollback().await?;
                false
            } else {
                sqlx::query(INSERT_REFRESH_SQL)
                    .bind(new.token_hash.as_str())
                    .bind(new.session_id.as_str())
                    .bind(new.client_id.as_str())
                    .bind(new.created_at)
                    .bind(new.used_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(TOUCH_SESSION_SQL)
                    .bind(now)
                    .bind(new.session_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                true
            }
        });
        Ok(rotated)
    }

    /// Inserts a pending login.
    pub async fn insert_pending_login(&self, login: &PendingLoginRow) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query(INSERT_LOGIN_SQL)
            .bind(login.id_hash.as_str())
            .bind(login.created_at)
            .bind(login.expires_at)
            .bind(login.request.as_str())
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Deletes and returns the pending login `id_hash` (expired or not): exactly one caller
    /// gets it.
    pub async fn take_pending_login(
        &self,
        id_hash: &str,
    ) -> Result<Option<PendingLoginRow>, StoreError> {
        let found = with_pool!(self, pool => sqlx::query(TAKE_LOGIN_SQL)
            .bind(id_hash)
            .fetch_optional(pool)
            .await?
            .map(|row| -> Result<PendingLoginRow, sqlx::Error> {
                Ok(PendingLoginRow {
                    id_hash: row.try_get("id_hash")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    request: row.try_get("request")?,
                })
            })
            .transpose()?);
        Ok(found)
    }

    /// Deletes codes and pending logins that expired by `now`, and sessions whose absolute
    /// expiry is at or before `absolute_before` or that were last used at or before
    /// `idle_before` (with their codes and refresh tokens).
    pub async fn purge_sessions(
        &self,
        now: i64,
        absolute_before: i64,
        idle_before: i64,
    ) -> Result<PurgeCounts, StoreError> {
        let counts = with_pool!(self, pool => {
            let codes = sqlx::query(PURGE_CODES_SQL).bind(now).execute(pool).await?.rows_affected();
            let logins = sqlx::query(PURGE_LOGINS_SQL).bind(now).execute(pool).await?.rows_affected();
            let sessions = sqlx::query(PURGE_SESSIONS_SQL)
                .bind(absolute_before)
                .bind(idle_before)
                .execute(pool)
                .await?
                .rows_affected();
            PurgeCounts { codes, logins, sessions }
        });
        Ok(counts)
    }

    /// Live sessions (not revoked, `absolute_expires_at > now`, `last_used_at >
    /// idle_after`) whose upstream grant was last checked at or before `checked_before`,
    /// oldest check first, at most `limit`.
    pub async fn sessions_due_for_upstream_check(
        &self,
        checked_before: i64,
        now: i64,
        idle_after: i64,
        limit: u32,
    ) -> Result<Vec<DueSession>, StoreError> {
        let due = with_pool!(self, pool => sqlx::query(DUE_FOR_UPSTREAM_CHECK_SQL)
            .bind(checked_before)
            .bind(now)
            .bind(idle_after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| -> Result<DueSession, sqlx::Error> {
                Ok(DueSession {
                    id: row.try_get("id")?,
                    upstream_checked_at: row.try_get("upstream_checked_at")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?);
        Ok(due)
    }

    /// Claims the upstream check of live session `id` (compare-and-set): moves
    /// `upstream_checked_at` from `expected` to `claimed`. True for exactly one of racing
    /// callers (requests or replicas); false if another moved it first, or the session is
    /// revoked or absent.
    pub async fn claim_upstream_check(
        &self,
        id: &str,
        expected: i64,
        claimed: i64,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => sqlx::query(CLAIM_UPSTREAM_CHECK_SQL)
            .bind(claimed)
            .bind(id)
            .bind(expected)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Every value of the text and blob columns of the session tables, for tests that check
    /// no plaintext secret is stored.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn dump_session_tables(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let queries = [
            "SELECT id AS a, subject AS b, username AS c, groups_json AS d, client_id AS e, \
             upstream_grant_ciphertext AS f, upstream_grant_nonce AS g, \
             COALESCE(revoked_reason, '') AS h FROM sessions",
            "SELECT token_hash AS a, session_id AS b, client_id AS c FROM refresh_tokens",
            "SELECT code_hash AS a, client_id AS b, redirect_uri AS c, code_challenge AS d, \
             COALESCE(nonce, '') AS e, scope AS f, session_id AS g FROM auth_codes",
            "SELECT id_hash AS a, request AS b FROM pending_logins",
            "SELECT kind AS a, actor AS b, COALESCE(subject, '') AS c, COALESCE(reason, '') AS d, \
             details AS e FROM audit_log",
        ];
        let mut values = Vec::new();
        for sql in queries {
            with_pool!(self, pool => {
                for row in sqlx::query(sql).fetch_all(pool).await? {
                    for i in 0..row.len() {
                        let value: Vec<u8> = match row.try_get::<String, _>(i) {
                            Ok(text) => text.into_bytes(),
                            Err(_) => row.try_get::<Vec<u8>, _>(i)?,
                        };
                        values.push(value);
                    }
                }
            });
        }
        Ok(values)
    }
}

struct RawSession {
    id: String,
    subject: String,
    username: String,
    groups_json: String,
    client_id: String,
    created_at: i64,
    last_used_at: i64,
    absolute_expires_at: i64,
    upstream_grant_ciphertext: Vec<u8>,
    upstream_grant_nonce: Vec<u8>,
    upstream_checked_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
}

impl RawSession {
    fn into_row(self) -> Result<SessionRow, StoreError> {
        let groups = serde_json::from_str(&self.groups_json).map_err(|e| StoreError::Corrupt {
            table: SESSIONS_TABLE,
            reason: format!(
                "session {}: groups are not a JSON array of strings: {e}",
                self.id
            ),
        })?;
        Ok(SessionRow {
            id: self.id,
            subject: self.subject,
            username: self.username,
            groups,
            client_id: self.client_id,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            absolute_expires_at: self.absolute_expires_at,
            upstream_grant_ciphertext: self.upstream_grant_ciphertext,
            upstream_grant_nonce: self.upstream_grant_nonce,
            upstream_checked_at: self.upstream_checked_at,
            revoked_at: self.revoked_at,
            revoked_reason: self.revoked_reason,
        })
    }
}

fn encode_groups(groups: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(groups).map_err(|e| StoreError::Corrupt {
        table: SESSIONS_TABLE,
        reason: format!("cannot encode groups: {e}"),
    })
}
