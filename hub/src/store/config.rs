//! Storage configuration: the `storage:` section of the hub's config file.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// Default number of pooled connections to the database.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// Default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tether-hub.db";

const SQLITE_MEMORY: &str = "sqlite::memory:";
const SQLITE_PREFIX: &str = "sqlite://";
const POSTGRES_PREFIXES: [&str; 2] = ["postgres://", "postgresql://"];

/// How the hub reaches its database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://USER:PASSWORD@HOST:PORT/DB`.
    #[serde(default = "default_url")]
    pub url: DatabaseUrl,
    /// Upper bound of the connection pool (forced to 1 for `sqlite::memory:`).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

impl StoreConfig {
    /// A config for `url` with the default pool size.
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self::new(default_url())
    }
}

fn default_url() -> DatabaseUrl {
    DatabaseUrl(DEFAULT_DATABASE_URL.to_owned())
}

fn default_max_connections() -> u32 {
    DEFAULT_MAX_CONNECTIONS
}

/// Which database engine a [`DatabaseUrl`] (and so a [`super::Store`]) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (a file, or memory for tests).
    Sqlite,
    /// PostgreSQL, for several hub replicas.
    Postgres,
}

impl Backend {
    /// `"sqlite"` or `"postgres"` (for logs and metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an SQLite database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    /// A file (created with its parent directory if missing).
    File(PathBuf),
    /// A private in-memory database (tests).
    Memory,
}

/// A validated database URL. `Debug`, `Display` and `Serialize` hide the password (so a
/// dumped config never carries it); `Deserialize` validates.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Parses and validates a URL (`sqlite://PATH`, `sqlite::memory:`, `postgres://...`).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: redact(url),
            reason: reason.to_owned(),
        };
        if url == SQLITE_MEMORY {
            return Ok(Self(url.to_owned()));
        }
        if let Some(path) = url.strip_prefix(SQLITE_PREFIX) {
            if path.is_empty() {
                return Err(invalid(
                    "sqlite:// needs a file path, e.g. sqlite:///var/lib/tether/hub.db",
                ));
            }
            if path.contains('?') {
                return Err(invalid(
                    "sqlite URLs take no query parameters; the hub sets WAL, foreign keys and the busy timeout itself",
                ));
            }
            return Ok(Self(url.to_owned()));
        }
        if POSTGRES_PREFIXES.iter().any(|p| url.starts_with(p)) {
            let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
            if parsed.host_str().is_none_or(str::is_empty) && !has_socket_host(&parsed) {
                return Err(invalid("postgres URL needs a host"));
            }
            return Ok(Self(url.to_owned()));
        }
        Err(invalid(
            "expected sqlite://PATH, sqlite::memory: or postgres://USER:PASSWORD@HOST/DB",
        ))
    }

    /// The engine this URL points at.
    pub fn backend(&self) -> Backend {
        if self.0.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// The SQLite location, or `None` for PostgreSQL.
    pub fn sqlite_location(&self) -> Option<SqliteLocation> {
        if self.0 == SQLITE_MEMORY {
            return Some(SqliteLocation::Memory);
        }
        self.0
            .strip_prefix(SQLITE_PREFIX)
            .map(|p| SqliteLocation::File(PathBuf::from(p)))
    }

    /// The full URL, password included. Call sites are where the secret leaves: keep them few.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// `postgres://user@/db?host=/run/postgresql` has no URL host but a socket directory.
fn has_socket_host(url: &url::Url) -> bool {
    url.query_pairs().any(|(k, _)| k == "host")
}

/// The URL with any password replaced by `***` (never fails: unparsable input is elided).
fn redact(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_owned();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Setting a password fails only for URLs that cannot have one.
                let _ = parsed.set_password(Some("***"));
            }
            let query: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        "***".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !query.is_empty() {
                parsed.query_pairs_mut().clear().extend_pairs(query);
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable database URL>".to_owned(),
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = StoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&redact(&self.0))
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", redact(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}
