//! The smaller configuration sections owned by the HTTP, TLS and telemetry code.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::HumanDuration;

/// `tls`: either PEM files or a self-signed CA and certificate kept in a directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Generate (once) a CA and a server certificate in `self_signed_dir`.
    #[serde(default)]
    pub self_signed: bool,
    /// Where `self_signed` keeps `ca.crt`, `ca.key`, `server.crt`, `server.key`.
    #[serde(default)]
    pub self_signed_dir: Option<PathBuf>,
}

/// `metrics`: the Prometheus listener, plain HTTP on its own port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` is served.
    pub listen: SocketAddr,
}

/// `grpc`: the gRPC listener (spoke registration, control streams, Admin API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Where the gRPC server listens (default `0.0.0.0:8444`).
    #[serde(default = "GrpcConfig::default_listen")]
    pub listen: SocketAddr,
    /// Lifetime of agent client certificates (default `24h`); agents renew before expiry.
    #[serde(default = "GrpcConfig::default_agent_cert_lifetime")]
    pub agent_cert_lifetime: HumanDuration,
}

impl GrpcConfig {
    /// Default gRPC listen address.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8444);

    fn default_listen() -> SocketAddr {
        Self::DEFAULT_LISTEN
    }

    fn default_agent_cert_lifetime() -> HumanDuration {
        HumanDuration::from_secs(24 * 3600)
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: Self::default_listen(),
            agent_cert_lifetime: Self::default_agent_cert_lifetime(),
        }
    }
}

/// `tokens`: lifetimes of minted tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Lifetime of a cluster token (default `60s`).
    #[serde(default = "TokensConfig::default_cluster_token_lifetime")]
    pub cluster_token_lifetime: HumanDuration,
}

impl TokensConfig {
    fn default_cluster_token_lifetime() -> HumanDuration {
        HumanDuration::from_secs(60)
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            cluster_token_lifetime: Self::default_cluster_token_lifetime(),
        }
    }
}

/// `upstream`: the enterprise IdP; defined next to the code that uses it.
pub use crate::upstream::UpstreamConfig;

/// `telemetry`: logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector (`http://otel-collector:4317`); absent disables trace export.
    #[serde(default)]
    pub otlp_endpoint: Option<Url>,
    /// `text` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,tether_hub=debug`.
    #[serde(default = "TelemetryConfig::default_log_level")]
    pub log_level: String,
}

impl TelemetryConfig {
    fn default_log_level() -> String {
        "info".to_owned()
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            log_format: LogFormat::default(),
            log_level: Self::default_log_level(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
