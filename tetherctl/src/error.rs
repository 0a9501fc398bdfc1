//! The CLI's error type: one variant per thing the user can act on, each with its exit code.
//!
//! gRPC statuses become [`Error`]s in one place, [`Error::from_status`]; HTTP answers of the
//! hub in one place too, [`crate::hub::client`]. `main` prints the message (and its causes)
//! after `tetherctl: ` and exits with [`Error::exit_code`].

use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;

use tonic::Code;

/// Exit code for a failed command (the hub refused, could not be reached, ...).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error: bad flags, arguments, environment or files (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// Everything `tetherctl` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line argument or environment variable is invalid.
    #[error("{what} {value:?} is invalid: {reason}")]
    InvalidArgument {
        /// What was given (`cluster name`, `label`, `--ttl`, ...).
        what: &'static str,
        /// The value as given (never a secret).
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A required setting is missing; the message says how to give it.
    #[error("{0}")]
    Missing(&'static str),
    /// Two settings that exclude each other were both given.
    #[error("{0}")]
    Conflict(&'static str),
    /// A file named on the command line or in the environment could not be read.
    #[error("cannot read {what} {}", path.display())]
    ReadFile {
        /// What the file is for (`--token-file`, `--ca-file`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is unusable (no certificate, empty token, ...).
    #[error("{what} {} is unusable: {reason}", path.display())]
    BadFile {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// The admin token cannot be sent (empty, or not a valid header value).
    #[error("the admin token is unusable: {0}")]
    BadToken(&'static str),
    /// The hub could not be reached: connection or TLS handshake failed, or it answered
    /// `UNAVAILABLE`.
    #[error("cannot reach the hub at {url}")]
    Unavailable {
        /// The hub URL.
        url: String,
        /// What went wrong underneath.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The hub did not answer in time.
    #[error("the hub at {url} did not answer within {}s", timeout.as_secs())]
    Timeout {
        /// The hub URL.
        url: String,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// The hub refused the admin token (`UNAUTHENTICATED`).
    #[error("the admin token was refused: mint a new one with `tether-hub admin-token`")]
    Unauthenticated,
    /// The admin token is valid but may not do this (`PERMISSION_DENIED`).
    #[error("the admin token is not allowed to do this: {0}")]
    PermissionDenied(String),
    /// The hub rejected the request (`NOT_FOUND`, `ALREADY_EXISTS`, `INVALID_ARGUMENT`,
    /// `FAILED_PRECONDITION`): its message is meant for the user.
    #[error("{0}")]
    Rejected(String),
    /// Any other gRPC status.
    #[error("the hub answered {code:?}: {message}")]
    Hub {
        /// The gRPC status code.
        code: Code,
        /// The hub's message.
        message: String,
    },
    /// Writing to stdout or stderr failed.
    #[error("cannot write output")]
    Output(#[source] std::io::Error),
    /// The TLS handshake with the hub failed (usually: its CA is not trusted).
    #[error(
        "cannot establish TLS with the hub at {url}; if the hub uses a private CA, pass \
         --hub-ca FILE (or set TETHER_HUB_CA_DATA to the base64 of its PEM)"
    )]
    Tls {
        /// The URL that was requested.
        url: String,
        /// The TLS error underneath.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The hub answered with an HTTP status and no OAuth error body.
    #[error("the hub answered {status} for {url}")]
    HubStatus {
        /// The URL that was requested.
        url: String,
        /// The status, with its reason phrase (`502 Bad Gateway`).
        status: String,
    },
    /// The hub answered with an RFC 6749 error this command has no better message for.
    #[error(
        "the hub at {url} refused the request: {code}{}",
        description_suffix(description)
    )]
    OAuth {
        /// The endpoint.
        url: String,
        /// The OAuth error code (`invalid_request`, `unauthorized_client`, ...).
        code: String,
        /// The hub's `error_description`, if any.
        description: Option<String>,
    },
    /// The hub's answer is not what the protocol says (bad JSON, missing field, ...).
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse {
        /// The URL that was requested.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// There is no cached session for this hub.
    #[error("you are not logged in to the Tether hub at {hub}. Run: tetherctl login --hub {hub}")]
    NotLoggedIn {
        /// The hub URL.
        hub: String,
    },
    /// The hub says the session is over (expired, revoked, logged out): log in again.
    #[error("your Tether session at {hub} has ended ({reason}). Run: tetherctl login --hub {hub}")]
    SessionEnded {
        /// The hub URL.
        hub: String,
        /// The hub's explanation.
        reason: String,
    },
    /// The hub does not know the cluster, or will not give this identity a token for it.
    #[error("the hub at {hub} will not issue a token for cluster {cluster:?}: {reason}")]
    ClusterRefused {
        /// The hub URL.
        hub: String,
        /// The requested cluster.
        cluster: String,
        /// The hub's explanation.
        reason: String,
    },
    /// The hub refused the workload token of machine mode (`credential --token-file`).
    #[error("the hub at {hub} refused the workload token from {} ({reason})", path.display())]
    WorkloadTokenRefused {
        /// The hub URL.
        hub: String,
        /// The token file.
        path: PathBuf,
        /// The hub's explanation.
        reason: String,
    },
    /// The login did not complete (refused at the IdP or hub, wrong state, expired code).
    #[error("login failed: {0}")]
    Login(String),
    /// The login was not completed in time.
    #[error("login timed out after {}: the login was not completed in the browser (raise --timeout to wait longer)", humantime::format_duration(*.0))]
    LoginTimeout(Duration),
    /// The session cache (or its lock) cannot be used.
    #[error("cannot use the session cache {}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The session file is unreadable (corrupt, or from an incompatible version).
    #[error("the session cache {} is unreadable ({reason}); run `tetherctl login` again", path.display())]
    CorruptCache {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Another `tetherctl` held the session lock for too long.
    #[error(
        "another tetherctl has held the session lock {} for {}s; if none is running, delete the file",
        path.display(),
        waited.as_secs()
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long this process waited.
        waited: Duration,
    },
    /// The kubeconfig cannot be read, parsed or written.
    #[error("cannot update the kubeconfig {}: {reason}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// Maps a gRPC status from the hub at `url` to an error the user can act on.
    pub fn from_status(status: tonic::Status, url: &str) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied(message),
            Code::NotFound
            | Code::AlreadyExists
            | Code::InvalidArgument
            | Code::FailedPrecondition => Self::Rejected(message),
            Code::Unavailable => Self::Unavailable {
                url: url.to_owned(),
                source: message.into(),
            },
            code => Self::Hub { code, message },
        }
    }

    /// The process exit code: [`EXIT_USAGE`] for usage errors, [`EXIT_FAILURE`] otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidArgument { .. }
            | Self::Missing(_)
            | Self::Conflict(_)
            | Self::ReadFile { .. }
            | Self::BadFile { .. }
            | Self::BadToken(_) => EXIT_USAGE,
            Self::Unavailable { .. }
            | Self::Timeout { .. }
            | Self::Unauthenticated
            | Self::PermissionDenied(_)
            | Self::Rejected(_)
            | Self::Hub { .. }
            | Self::Output(_)
            | Self::Tls { .. }
            | Self::HubStatus { .. }
            | Self::OAuth { .. }
            | Self::BadResponse { .. }
            | Self::NotLoggedIn { .. }
            | Self::SessionEnded { .. }
            | Self::ClusterRefused { .. }
            | Self::WorkloadTokenRefused { .. }
            | Self::Login(_)
            | Self::LoginTimeout(_)
            | Self::Cache { .. }
            | Self::CorruptCache { .. }
            | Self::LockTimeout { .. }
            | Self::Kubeconfig { .. } => EXIT_FAILURE,
        }
    }

    /// The message followed by its causes, `: `-separated (what `main` prints).
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // tonic and hyper repeat their inner message; print each distinct cause once.
            if !text.is_empty() && !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            source = cause.source();
        }
        out
    }

    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidArgument {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// ` (description)` or nothing.
fn description_suffix(description: &Option<String>) -> String {
    description
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|d| format!(" ({d})"))
        .unwrap_or_default()
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
