//! The fixtures' error type: every message names the part and says what to do.

use std::fmt;
use std::path::PathBuf;

/// Result alias for the fixtures.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while starting or talking to a fixture.
#[derive(thiserror::Error)]
pub enum Error {
    /// A third-party part is not installed where the stamp says it is.
    #[error("{part} not found at {}: run scripts/test-deps.sh", path.display())]
    MissingPart {
        /// The part (e.g. `kube-apiserver`).
        part: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A binary of this workspace has not been built.
    #[error("{name} not built at {}: run `cargo build --workspace --bins` first", path.display())]
    MissingWorkspaceBin {
        /// Binary name (e.g. `tether-hub`).
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The requested port is taken before the part was started.
    #[error("{part}: port {port} on 127.0.0.1 is already in use")]
    PortInUse {
        /// The part that wanted the port.
        part: String,
        /// The port.
        port: u16,
    },
    /// The part reported "address already in use" in its log.
    #[error("{part}: address already in use; log {}:\n{tail}", log.display())]
    AddressInUse {
        /// The part.
        part: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// The part exited before it became ready.
    #[error("{part} exited early ({status}); log {}:\n{tail}", log.display())]
    EarlyExit {
        /// The part.
        part: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// The part did not become ready in time.
    #[error("{part} not ready after {waited:?} ({probe}); log {}:\n{tail}", log.display())]
    NotReady {
        /// The part.
        part: String,
        /// How long we waited.
        waited: std::time::Duration,
        /// What was probed.
        probe: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP request failed.
    #[error("{context}: {source}")]
    Http {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// Generating test PKI failed.
    #[error("{context}: {source}")]
    Pki {
        /// What was being generated.
        context: String,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// Anything else, described.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// Wraps an HTTP error with what was being done.
    pub fn http(context: impl Into<String>) -> impl FnOnce(reqwest::Error) -> Error {
        let context = context.into();
        move |source| Error::Http { context, source }
    }

    /// Wraps a PKI error with what was being generated.
    pub fn pki(context: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Error {
        let context = context.into();
        move |source| Error::Pki { context, source }
    }
}

// `expect()` prints `Debug`: make it the readable message (with log tails on their own lines).
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
