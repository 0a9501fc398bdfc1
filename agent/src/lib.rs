//! Tether agent: joins a spoke cluster to the hub and keeps it in sync with the hub.
//!
//! Modules:
//! - [`error`]: the crate's [`Error`] and [`Result`]; every message says what to do next.
//! - [`tls`]: rustls client configs and the connector that dials the hub for tonic.
//! - [`identity`]: the agent's hub-signed identity (key, certificate, CAs, hub URL) and
//!   where it is kept: a directory of files or the `tether-agent-identity` Secret.
//! - [`join`]: `tether-agent join` — pin check, CSR, `Registration.Join`, and the manifests
//!   installed into the spoke through the Kubernetes API.
//! - [`run`]: `tether-agent run` — the `Control.Connect` loop: heartbeats, JWKS and
//!   revocations published on `watch` channels, certificate renewal, reconnect backoff,
//!   and the `status.json` the e2e tests read.
//! - [`proxy`]: the impersonating proxy in front of the spoke's kube-apiserver.
//! - [`metrics_server`]: `--metrics-listen`, the Prometheus endpoint.
//! - [`log_fields`]: the log lines' fields, as `tracing-subscriber` writes them, faster.
//! - [`log_writer`]: standard error for the logs, batched on the proxy's worker threads.

pub mod error;
pub mod identity;
pub mod join;
pub mod log_fields;
pub mod log_writer;
pub mod metrics_server;
pub mod proxy;
pub mod run;
pub mod tls;

pub use error::{Error, Result};

/// The agent's version, reported to the hub.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod test_support;
