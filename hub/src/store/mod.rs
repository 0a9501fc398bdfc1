//! The hub's storage: sqlx over SQLite (embedded default) or PostgreSQL (several replicas).
//!
//! Both backends run the same schema (`hub/migrations/{sqlite,postgres}/`) and the same
//! conformance suite (`store::conformance`, behind the `test-support` feature). Queries are runtime `sqlx::query` strings with `$n`
//! placeholders, written once and run against whichever pool the [`Store`] holds.
//!
//! - [`config`]: [`StoreConfig`] and [`DatabaseUrl`].
//! - [`audit`]: the audit log writer ([`Store::append_audit`]).
//! - [`signing_keys`]: signing-key rows and the compare-and-set key epoch.
//! - [`sessions`]: hub sessions, refresh tokens, authorization codes, pending logins.
//! - [`clusters`]: the spoke registry (types in [`crate::registry`]).
//! - [`cluster_state`]: registration state of clusters, the hub's CAs, revoked sessions.
//! - [`join_tokens`]: join tokens and the join transaction.
//! - [`device_codes`]: RFC 8628 device codes and the wrong-user-code counter.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub mod audit;
pub mod cluster_state;
pub mod clusters;
pub mod config;
pub mod device_codes;
mod error;
pub mod join_tokens;
pub mod sessions;
pub mod signing_keys;

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
#[cfg(test)]
pub(crate) mod tests;

pub use audit::{AuditOutcome, AuditRecord, StoredAuditRecord};
pub use cluster_state::{RevokedSession, StoredCa};
pub use config::{Backend, DatabaseUrl, SqliteLocation, StoreConfig};
pub use device_codes::{DeviceCodeRow, DeviceCodeStatus, DevicePoll};
pub use error::StoreError;
pub use join_tokens::{IssuedCert, JoinOutcome};
pub use sessions::{
    AuthCodeRow, CodeUse, PendingLoginRow, PurgeCounts, RefreshTokenRow, SessionRow,
};
pub use signing_keys::{KeyChange, KeyRow, KeySnapshot, KeyStatus};

/// How long an SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `connect` and queries wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Runs `$body` with `$pool` bound to the concrete pool of `$store` (an `SqlitePool` or a
/// `PgPool`), so a query is written once and type-checked for both backends.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pools {
            $crate::store::Pools::Sqlite($pool) => $body,
            $crate::store::Pools::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// A handle on the database: cheap to clone (a connection pool inside).
#[derive(Clone)]
pub struct Store {
    pools: Pools,
}

#[derive(Clone)]
pub(crate) enum Pools {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Connects (creating an SQLite file and its directory if missing) and migrates.
    ///
    /// SQLite runs in WAL mode with foreign keys on, a busy timeout and `secure_delete`
    /// (so wiped key material is overwritten in the file, not just unlinked).
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let store = Self::connect_without_migrations(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating (for `tether-hub migrate` and tests of migration itself).
    pub async fn connect_without_migrations(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = &config.url;
        let max = config.max_connections.max(1);
        let connect_err = |source| StoreError::Connect {
            backend: url.backend().as_str(),
            url: url.to_string(),
            source,
        };
        let pools = match url.sqlite_location() {
            Some(location) => {
                let (options, max) = match location {
                    SqliteLocation::Memory => (SqliteConnectOptions::new().in_memory(true), 1),
                    SqliteLocation::File(path) => {
                        create_parent_dir(&path)?;
                        let options = SqliteConnectOptions::new()
                            .filename(&path)
                            .create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal);
                        (options, max)
                    }
                };
                let options = options
                    .foreign_keys(true)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .pragma("secure_delete", "ON");
                // An in-memory database lives as long as its single connection: never let
                // the pool close it.
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .min_connections(if max == 1 { 1 } else { 0 })
                    .idle_timeout(if max == 1 {
                        None
                    } else {
                        Some(Duration::from_secs(600))
                    })
                    .max_lifetime(if max == 1 {
                        None
                    } else {
                        Some(Duration::from_secs(1800))
                    })
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                Pools::Sqlite(pool)
            }
            None => {
                let options = PgConnectOptions::from_str(url.expose()).map_err(connect_err)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_err)?;
                Pools::Postgres(pool)
            }
        };
        tracing::info!(backend = %url.backend(), url = %url, "connected to the database");
        Ok(Self { pools })
    }

    /// Applies pending migrations (idempotent; PostgreSQL replicas serialize on a lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Pools::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
        .map_err(StoreError::Migrate)
    }

    /// Readiness check: one round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        match self.pools {
            Pools::Sqlite(_) => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every pooled connection (waits for checked-out ones to come back).
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await);
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

fn create_parent_dir(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}
