//! Rows of the device authorization grant (RFC 8628): `device_codes` and the user-code
//! failure counter `device_code_failures`.
//!
//! The rules (expiry, polling interval, who may approve) live in [`crate::oidc::device`];
//! this module only reads and writes rows. Every state change (approve, deny, consume) is a
//! compare-and-set on `status` that affects at most one row, so of two racing requests
//! exactly one wins, on SQLite and on PostgreSQL alike. Device codes and user codes are
//! stored only as lowercase hex SHA-256.

use sqlx::Row;

use super::{Store, StoreError, with_pool};

/// Table name of device codes.
pub const DEVICE_CODES_TABLE: &str = "device_codes";
/// Length of a window of `device_code_failures` (windows start at multiples of it).
pub const USER_CODE_FAILURE_WINDOW_SECS: i64 = 60;

const DEVICE_COLUMNS: &str = "id, device_code_hash, user_code_hash, client_id, scope, created_at, \
     expires_at, interval_secs, last_polled_at, status, session_id, decided_at, used_at";
const INSERT_SQL: &str = "INSERT INTO device_codes (id, device_code_hash, user_code_hash, client_id, \
     scope, created_at, expires_at, interval_secs, last_polled_at, status, session_id, decided_at, \
     used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 'pending', NULL, NULL, NULL)";
const POLL_SQL: &str = "UPDATE device_codes SET last_polled_at = $1 \
     WHERE id = $2 AND (last_polled_at IS NULL OR last_polled_at + interval_secs <= $1)";
const SLOW_DOWN_SQL: &str = "UPDATE device_codes SET last_polled_at = $1, \
     interval_secs = interval_secs + $2 WHERE id = $3";
const APPROVE_SQL: &str = "UPDATE device_codes SET status = 'approved', session_id = $1, decided_at = $2 \
     WHERE id = $3 AND status = 'pending' AND expires_at > $2";
const DENY_SQL: &str = "UPDATE device_codes SET status = 'denied', decided_at = $1 \
     WHERE id = $2 AND status = 'pending'";
const CONSUME_SQL: &str = "UPDATE device_codes SET status = 'consumed', used_at = $1 \
     WHERE id = $2 AND status = 'approved'";
const PURGE_SQL: &str = "DELETE FROM device_codes WHERE expires_at <= $1";
const COUNT_FAILURE_SQL: &str = "INSERT INTO device_code_failures (window_start, failures) VALUES ($1, 1) \
     ON CONFLICT (window_start) DO UPDATE SET failures = device_code_failures.failures + 1";
const FAILURES_SQL: &str = "SELECT failures FROM device_code_failures WHERE window_start = $1";
const PURGE_FAILURES_SQL: &str = "DELETE FROM device_code_failures WHERE window_start < $1";

/// Where a device code is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCodeStatus {
    /// Waiting for the user to enter the user code and log in.
    Pending,
    /// The user logged in; the row names the session. Not yet redeemed.
    Approved,
    /// The user (or the upstream IdP) refused.
    Denied,
    /// Redeemed for tokens (single use).
    Consumed,
}

impl DeviceCodeStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Consumed => "consumed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            "consumed" => Some(Self::Consumed),
            _ => None,
        }
    }
}

/// One row of `device_codes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodeRow {
    /// A random id (not a secret): names the device authorization in pending logins and
    /// audit records.
    pub id: String,
    /// Lowercase hex SHA-256 of the device code.
    pub device_code_hash: String,
    /// Lowercase hex SHA-256 of the normalised user code (8 letters, no dash).
    pub user_code_hash: String,
    /// The client that asked for it (and alone may redeem it).
    pub client_id: String,
    /// The granted scope.
    pub scope: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it can no longer be approved or redeemed.
    pub expires_at: i64,
    /// The minimum polling interval in seconds (grows by 5 on every `slow_down`).
    pub interval_secs: i64,
    /// The last poll at the token endpoint.
    pub last_polled_at: Option<i64>,
    /// Where it is in its life.
    pub status: DeviceCodeStatus,
    /// The session the user's login created (approved and consumed codes).
    pub session_id: Option<String>,
    /// When it was approved or denied.
    pub decided_at: Option<i64>,
    /// When it was redeemed.
    pub used_at: Option<i64>,
}

/// What [`Store::record_device_poll`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePoll {
    /// The poll respects the interval; `last_polled_at` is now `now`.
    InTime,
    /// Too fast: the interval grew to this many seconds (RFC 8628 §3.5 `slow_down`).
    SlowDown(i64),
}

macro_rules! device_from_row {
    ($row:expr) => {{
        let row = $row;
        Ok::<_, sqlx::Error>(RawDeviceCode {
            id: row.try_get("id")?,
            device_code_hash: row.try_get("device_code_hash")?,
            user_code_hash: row.try_get("user_code_hash")?,
            client_id: row.try_get("client_id")?,
            scope: row.try_get("scope")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            interval_secs: row.try_get("interval_secs")?,
            last_polled_at: row.try_get("last_polled_at")?,
            status: row.try_get("status")?,
            session_id: row.try_get("session_id")?,
            decided_at: row.try_get("decided_at")?,
            used_at: row.try_get("used_at")?,
        })
    }};
}

impl Store {
    /// Inserts a new, pending device code (`last_polled_at`, `session_id`, `decided_at` and
    /// `used_at` are ignored). Returns false, writing nothing, if the device code or user
    /// code hash is already taken (the caller draws new codes).
    pub async fn insert_device_code(&self, row: &DeviceCodeRow) -> Result<bool, StoreError> {
        let result = with_pool!(self, pool => sqlx::query(INSERT_SQL)
            .bind(row.id.as_str())
            .bind(row.device_code_hash.as_str())
            .bind(row.user_code_hash.as_str())
            .bind(row.client_id.as_str())
            .bind(row.scope.as_str())
            .bind(row.created_at)
            .bind(row.expires_at)
            .bind(row.interval_secs)
            .execute(pool)
            .await
            .map(drop));
        match result {
            Ok(()) => Ok(true),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// The device code whose device code hashes to `device_code_hash`.
    pub async fn device_code_by_device_hash(
        &self,
        device_code_hash: &str,
    ) -> Result<Option<DeviceCodeRow>, StoreError> {
        self.select_device_code("device_code_hash", device_code_hash)
            .await
    }

    /// The device code whose user code hashes to `user_code_hash`.
    pub async fn device_code_by_user_hash(
        &self,
        user_code_hash: &str,
    ) -> Result<Option<DeviceCodeRow>, StoreError> {
        self.select_device_code("user_code_hash", user_code_hash)
            .await
    }

    /// The device code `id`.
    pub async fn device_code(&self, id: &str) -> Result<Option<DeviceCodeRow>, StoreError> {
        self.select_device_code("id", id).await
    }

    /// `column` is one of three constants above, never user input.
    async fn select_device_code(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<DeviceCodeRow>, StoreError> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM device_codes WHERE {column} = $1");
        let raw = with_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(pool)
            .await?
            .map(|row| device_from_row!(row))
            .transpose()?);
        raw.map(RawDeviceCode::into_row).transpose()
    }

    /// Records a poll of `id` at `now`. If the previous poll was less than the interval
    /// ago, the interval grows by `slow_down_secs` (and the poll still counts as the last
    /// one, so the client must wait the new interval from now).
    pub async fn record_device_poll(
        &self,
        id: &str,
        now: i64,
        slow_down_secs: i64,
    ) -> Result<DevicePoll, StoreError> {
        let in_time = with_pool!(self, pool => sqlx::query(POLL_SQL)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        if in_time == 1 {
            return Ok(DevicePoll::InTime);
        }
        with_pool!(self, pool => sqlx::query(SLOW_DOWN_SQL)
            .bind(now)
            .bind(slow_down_secs)
            .bind(id)
            .execute(pool)
            .await
            .map(drop))?;
        let interval = self
            .device_code(id)
            .await?
            .map_or(slow_down_secs, |row| row.interval_secs);
        Ok(DevicePoll::SlowDown(interval))
    }

    /// Approves the pending, unexpired device code `id` for `session_id` at `now`; false if
    /// it is no longer pending or has expired (nothing written).
    pub async fn approve_device_code(
        &self,
        id: &str,
        session_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => sqlx::query(APPROVE_SQL)
            .bind(session_id)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Denies the pending device code `id`; false if it is no longer pending.
    pub async fn deny_device_code(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => sqlx::query(DENY_SQL)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Spends the approved device code `id`: true for exactly one of racing callers.
    pub async fn consume_device_code(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => sqlx::query(CONSUME_SQL)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Counts one wrong user code in the window starting at `window_start`; returns the
    /// window's count.
    pub async fn count_user_code_failure(&self, window_start: i64) -> Result<i64, StoreError> {
        with_pool!(self, pool => sqlx::query(COUNT_FAILURE_SQL)
            .bind(window_start)
            .execute(pool)
            .await
            .map(drop))?;
        self.user_code_failures(window_start).await
    }

    /// Wrong user codes counted in the window starting at `window_start`.
    pub async fn user_code_failures(&self, window_start: i64) -> Result<i64, StoreError> {
        let count = with_pool!(self, pool => sqlx::query(FAILURES_SQL)
            .bind(window_start)
            .fetch_optional(pool)
            .await?
            .map(|row| row.try_get::<i64, _>("failures"))
            .transpose()?);
        Ok(count.unwrap_or(0))
    }

    /// Deletes device codes that expired by `now` (whatever their status) and failure
    /// windows that ended before `now`; returns the device codes deleted.
    pub async fn purge_device_codes(&self, now: i64) -> Result<u64, StoreError> {
        let windows_before = now.saturating_sub(USER_CODE_FAILURE_WINDOW_SECS);
        let purged = with_pool!(self, pool => {
            let codes = sqlx::query(PURGE_SQL).bind(now).execute(pool).await?.rows_affected();
            sqlx::query(PURGE_FAILURES_SQL).bind(windows_before).execute(pool).await?;
            codes
        });
        Ok(purged)
    }

    /// Every value of the text columns of `device_codes` and `pending_logins`, for tests that
    /// check no plaintext code is stored.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn dump_device_codes(&self) -> Result<Vec<String>, StoreError> {
        let queries = [
            "SELECT id AS a, device_code_hash AS b, user_code_hash AS c, client_id AS d, \
             scope AS e, status AS f, COALESCE(session_id, '') AS g FROM device_codes",
            "SELECT id_hash AS a, request AS b FROM pending_logins",
        ];
        let mut values = Vec::new();
        for sql in queries {
            with_pool!(self, pool => {
                for row in sqlx::query(sql).fetch_all(pool).await? {
                    for i in 0..row.len() {
                        values.push(row.try_get::<String, _>(i)?);
                    }
                }
            });
        }
        Ok(values)
    }
}

struct RawDeviceCode {
    id: String,
    device_code_hash: String,
    user_code_hash: String,
    client_id: String,
    scope: String,
    created_at: i64,
    expires_at: i64,
    interval_secs: i64,
    last_polled_at: Option<i64>,
    status: String,
    session_id: Option<String>,
    decided_at: Option<i64>,
    used_at: Option<i64>,
}

impl RawDeviceCode {
    fn into_row(self) -> Result<DeviceCodeRow, StoreError> {
        let status = DeviceCodeStatus::parse(&self.status).ok_or_else(|| StoreError::Corrupt {
            table: DEVICE_CODES_TABLE,
            reason: format!("device code {}: unknown status {:?}", self.id, self.status),
        })?;
        Ok(DeviceCodeRow {
            id: self.id,
            device_code_hash: self.device_code_hash,
            user_code_hash: self.user_code_hash,
            client_id: self.client_id,
            scope: self.scope,
            created_at: self.created_at,
            expires_at: self.expires_at,
            interval_secs: self.interval_secs,
            last_polled_at: self.last_polled_at,
            status,
            session_id: self.session_id,
            decided_at: self.decided_at,
            used_at: self.used_at,
        })
    }
}
