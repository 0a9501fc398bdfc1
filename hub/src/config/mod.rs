//! The hub's configuration: one YAML document parsed once into typed structs.
//!
//! [`Config::from_yaml`] takes the text, so tests build configuration without files or
//! environment; [`Config::load`] reads a file. Every error names the field path
//! (`keys.rotation_interval: invalid duration "5 parsecs"`), and the command line exits
//! with [`EXIT_CONFIG`] (64, `EX_USAGE`).

mod dev;
mod duration;
mod issuer;
mod sections;
mod validate;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::dev::{DEV_CONFIG_FILE, DevOptions, default_dev_data_dir};
pub use self::duration::HumanDuration;
pub use self::issuer::Issuer;
pub use self::sections::{
    GrpcConfig, LogFormat, MetricsConfig, TelemetryConfig, TlsConfig, TokensConfig, UpstreamConfig,
};
use crate::argocd::ArgoCdConfig;
use crate::clients::ClientConfig;
use crate::hub_cluster::HubClusterConfig;
use crate::keys::KeysConfig;
use crate::machine::MachineConfig;
use crate::policy::AccessConfig;
use crate::sessions::SessionsConfig;
use crate::store::StoreConfig;

/// The exit code for unusable configuration (`EX_USAGE` in `sysexits.h`).
pub const EXIT_CONFIG: u8 = 64;

/// A commented example configuration that parses and validates; `tether-hub config example`.
pub const EXAMPLE: &str = include_str!("example.yaml");

/// The whole hub configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The public URL of the hub: the `iss` of every token it signs.
    pub issuer: Issuer,
    /// Accept an `http://` issuer (tests and demos only: tokens would travel in clear).
    #[serde(default)]
    pub dangerous_allow_http_issuer: bool,
    /// Where the HTTPS server listens.
    pub listen: SocketAddr,
    /// The HTTPS server's certificate.
    pub tls: TlsConfig,
    /// The Prometheus listener.
    pub metrics: MetricsConfig,
    /// The gRPC listener (spokes and the Admin API).
    #[serde(default)]
    pub grpc: GrpcConfig,
    /// The database.
    pub storage: StoreConfig,
    /// Signing keys and their rotation.
    pub keys: KeysConfig,
    /// Lifetimes of the tokens the hub mints.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// The upstream IdP; absent means browser login is disabled.
    #[serde(default)]
    pub upstream: Option<UpstreamConfig>,
    /// Logs, traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Hub sessions: idle timeout, absolute lifetime, code and token lifetimes.
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// The OAuth clients (besides the built-in `tetherctl`).
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// The Kubernetes cluster the hub runs on (TokenReview, ArgoCD Secrets); absent
    /// disables both.
    #[serde(default)]
    pub hub_cluster: Option<HubClusterConfig>,
    /// Which clusters people may get tokens for, by group; absent lets every signed-in
    /// user reach every registered cluster (spoke RBAC still decides).
    #[serde(default)]
    pub access: Option<AccessConfig>,
    /// ArgoCD cluster Secrets written for every joined spoke; needs `hub_cluster`.
    #[serde(default)]
    pub argocd: Option<ArgoCdConfig>,
    /// Machine tokens: workloads (ArgoCD, CI) exchange their own JWT for cluster tokens;
    /// absent disables the machine path.
    #[serde(default)]
    pub machine: Option<MachineConfig>,
}

impl Config {
    /// Parses and validates configuration text.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config = parse_yaml::<Self>(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// Applies command-line overrides, then validates again.
    pub fn apply_overrides(&mut self, overrides: &Overrides) -> Result<(), ConfigError> {
        if let Some(listen) = overrides.listen {
            self.listen = listen;
        }
        if let Some(listen) = overrides.metrics_listen {
            self.metrics.listen = listen;
        }
        if let Some(listen) = overrides.grpc_listen {
            self.grpc.listen = listen;
        }
        self.validate()
    }
}

/// Command-line flags that override the file (`--listen`, `--metrics-listen`,
/// `--grpc-listen`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replaces `listen`.
    pub listen: Option<SocketAddr>,
    /// Replaces `metrics.listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Replaces `grpc.listen`.
    pub grpc_listen: Option<SocketAddr>,
}

/// Why configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not describe a configuration; `path` is the field (`keys.publish_lead`).
    #[error("{path}: {message}")]
    Parse {
        /// Dotted field path, or `.` for the document itself.
        path: String,
        /// What is wrong, with the line and column when known.
        message: String,
    },
    /// The configuration parsed but makes no sense (`issuer: must be https`).
    #[error("{field}: {reason}")]
    Invalid {
        /// Dotted field path.
        field: String,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// Dev mode could not prepare its data directory.
    #[error("dev data directory {}: {reason}", path.display())]
    DevDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl ConfigError {
    /// A semantic error on `field`.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Parse { path, .. } => Some(path),
            Self::Invalid { field, .. } => Some(field),
            Self::Read { .. } | Self::DevDir { .. } => None,
        }
    }
}

/// Deserializes YAML text into `T`, recording the field path of the first error.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let options = serde_saphyr::options! { with_snippet: false };
    let mut failed_at = None;
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|err| {
            failed_at = Some(err.path().to_string());
            err.into_inner()
        })
    })
    .map_err(|err| ConfigError::Parse {
        path: failed_at.unwrap_or_else(|| ".".to_owned()),
        message: one_line(&err.to_string()),
    })
}

/// Folds a possibly multi-line parser message onto one line for logs and terminals.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
