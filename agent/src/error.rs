//! The agent's error type. Messages are written for the operator running `join` or reading
//! the agent's logs: each says what went wrong and, where it can, what to do.

use std::path::PathBuf;

/// `Result` with the agent's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `join` and `run`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--ca-hash` is not `sha256:` followed by 64 hex digits.
    #[error(
        "--ca-hash must be `sha256:` followed by 64 hex digits (as printed by `tetherctl cluster add`)"
    )]
    InvalidPin,
    /// `--hub` is not an `https://host[:port]` URL.
    #[error("--hub {0:?} is not an https:// URL with a host")]
    InvalidHubUrl(String),
    /// `--cluster` is not a DNS-1123 label.
    #[error(
        "--cluster {0:?} is not a valid cluster name (lowercase letters, digits and '-', at most 63)"
    )]
    InvalidClusterName(String),
    /// No certificate the hub presented has the pinned public key.
    #[error(
        "the hub's certificate does not match --ca-hash: you may be talking to something else; \
         check the command from `tetherctl cluster add`"
    )]
    PinMismatch,
    /// The hub could not be reached (TCP or TLS).
    #[error("cannot reach the hub at {url}: {source}")]
    HubUnreachable {
        /// The URL dialled.
        url: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The hub refused the join; the message says what to do.
    #[error("the hub refused to join this cluster: {0}")]
    JoinRefused(String),
    /// The hub's answer to `Join` is not usable.
    #[error("the hub's join response is not usable: {0}")]
    BadJoinResponse(String),
    /// A gRPC call failed for a reason that is not a refusal.
    #[error("gRPC call to the hub failed: {0}")]
    Grpc(#[source] Box<tonic::Status>),
    /// A gRPC channel could not be set up.
    #[error("gRPC transport: {0}")]
    Transport(#[source] tonic::transport::Error),
    /// Generating the key or the CSR failed.
    #[error("generating the key or CSR: {0}")]
    Csr(#[source] rcgen::Error),
    /// A TLS configuration could not be built (bad certificate or key).
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// A PEM or DER object could not be parsed.
    #[error("invalid {what}: {detail}")]
    InvalidPem {
        /// Which object.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The kubeconfig may not create what the agent needs in the spoke.
    #[error(
        "no rights in the spoke: the kubeconfig must be allowed to create namespaces, cluster roles \
         and secrets ({0})"
    )]
    SpokeForbidden(String),
    /// The hub accepted the join but installing into the spoke failed afterwards.
    #[error(
        "joined the hub, but installing into the spoke failed: {source}. Fix that, then run \
         `tetherctl cluster remove {cluster}` and `tetherctl cluster add {cluster}` and join again \
         with the new command"
    )]
    InstallAfterJoin {
        /// The cluster name.
        cluster: String,
        /// What failed.
        source: Box<Error>,
    },
    /// The spoke's API server could not be reached or configured.
    #[error("cannot talk to the spoke's Kubernetes API: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// No usable Kubernetes configuration (kubeconfig or in-cluster).
    #[error("no Kubernetes configuration: {0}")]
    KubeConfig(String),
    /// The stored identity is missing or incomplete.
    #[error("agent identity: {0}")]
    Identity(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// JSON could not be encoded or decoded.
    #[error("JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// YAML could not be encoded.
    #[error("YAML: {0}")]
    Yaml(String),
    /// The hub closed the control stream or sent something unusable.
    #[error("control stream: {0}")]
    Control(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Self::Kube(Box::new(e))
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        Self::Grpc(Box::new(s))
    }
}

impl From<rcgen::Error> for Error {
    fn from(e: rcgen::Error) -> Self {
        Self::Csr(e)
    }
}

impl From<rustls::Error> for Error {
    fn from(e: rustls::Error) -> Self {
        Self::Tls(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}
