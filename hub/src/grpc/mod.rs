//! The hub's gRPC listener (tonic over TLS, `grpc.listen`).
//!
//! - [`registration`]: `Registration.Join`: a join token and a CSR for a client certificate.
//! - [`control`]: `Control.Connect`: the mTLS stream to each agent (config, JWKS,
//!   revocations, heartbeats, renewal); [`control::Connections`] tracks live streams.
//! - [`admin`]: the Admin API (`AddCluster`, `ListClusters`, `RemoveCluster`, `ArgoCdSecret`), for
//!   admin tokens only.
//! - [`pki`]: the gRPC CA, the cluster CA and the listener's certificate.
//! - [`server`]: the tonic router and server.
//! - [`error`]: [`GrpcError`] and its one conversion to `tonic::Status`.

pub mod admin;
pub mod control;
pub mod error;
pub mod pki;
pub mod registration;
pub mod revocations;
pub mod server;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tether_common::time::Clock;

pub use self::control::Connections;
pub use self::error::GrpcError;
pub use self::pki::Pki;
use crate::argocd::ArgoCdLink;
use crate::config::Issuer;
use crate::keys::KeyManager;
use crate::store::Store;

/// Gauge of agents with a live control stream.
pub const METRIC_AGENTS_CONNECTED: &str = "tether_hub_agents_connected";
/// Counter of JWKS messages pushed to agents.
pub const METRIC_JWKS_PUSHES: &str = "tether_hub_jwks_pushes_total";
/// Counter of joins, labelled `outcome` = `ok` | `invalid` | `denied` | `error`.
pub const METRIC_JOINS: &str = "tether_hub_joins_total";

/// Default lifetime of a join token.
pub const DEFAULT_JOIN_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Longest lifetime of a join token.
pub const MAX_JOIN_TOKEN_TTL: Duration = Duration::from_secs(86_400);
/// How often each control stream looks for newly revoked sessions.
pub const REVOCATION_POLL: Duration = Duration::from_secs(1);

/// What every gRPC service shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GrpcState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    keys: KeyManager,
    pki: Pki,
    issuer: Issuer,
    hub_url: String,
    connections: Connections,
    revocations: tokio::sync::watch::Receiver<revocations::RevokedSet>,
    clock: Arc<dyn Clock>,
    argocd: Arc<ArgoCdLink>,
}

impl GrpcState {
    /// The shared state; `hub_url` is what agents dial (`https://<issuer host>:<grpc port>`).
    /// Starts the revocation feed every control stream reads.
    pub async fn new(
        store: Store,
        keys: KeyManager,
        pki: Pki,
        issuer: Issuer,
        hub_url: String,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (revocations, _feed) = revocations::spawn(store.clone(), Arc::clone(&clock)).await;
        Self {
            inner: Arc::new(Inner {
                store,
                keys,
                pki,
                issuer,
                hub_url,
                connections: Connections::default(),
                revocations,
                clock,
                argocd: Arc::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The key manager.
    pub fn keys(&self) -> &KeyManager {
        &self.inner.keys
    }

    /// The CAs.
    pub fn pki(&self) -> &Pki {
        &self.inner.pki
    }

    /// The OIDC issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    /// The URL agents dial.
    pub fn hub_url(&self) -> &str {
        &self.inner.hub_url
    }

    /// The live control streams.
    pub fn connections(&self) -> &Connections {
        &self.inner.connections
    }

    /// The revoked sessions that still matter, as the feed last read them.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<revocations::RevokedSet> {
        self.inner.revocations.clone()
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The link to the ArgoCD reconciler: poked when clusters change.
    pub fn argocd(&self) -> &Arc<ArgoCdLink> {
        &self.inner.argocd
    }
}

/// `https://<host of issuer>:<port>`: the gRPC URL agents dial.
pub fn hub_url(issuer: &Issuer, port: u16) -> String {
    let host = issuer.url().host_str().unwrap_or("localhost");
    format!("https://{host}:{port}")
}

/// The hosts the listener's certificate names: localhost, 127.0.0.1, ::1 and the issuer's.
pub fn listener_hosts(issuer: &Issuer) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = issuer.url().host_str() {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}
