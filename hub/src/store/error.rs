//! Errors of the storage layer.

/// Why a storage operation failed. Messages never contain a database password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configured database URL is not one the hub understands.
    #[error("invalid storage url {url}: {reason}")]
    InvalidUrl {
        /// The URL with its password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory for the SQLite file could not be created.
    #[error("cannot create the directory {path} for the SQLite database")]
    CreateDir {
        /// The directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to the database failed.
    #[error("cannot connect to the {backend} database {url}")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The URL with its password redacted.
        url: String,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    /// A row holds a value the hub does not understand (e.g. an unknown key state).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Details of an audit record could not be encoded as JSON.
    #[error("cannot encode audit details")]
    AuditDetails(#[source] serde_json::Error),
    /// An audit record looks like it carries a token; it was refused, not written.
    #[error("refusing to write an audit record of kind {kind}: a field looks like a bearer token")]
    AuditContainsToken {
        /// The record's kind.
        kind: String,
    },
}
