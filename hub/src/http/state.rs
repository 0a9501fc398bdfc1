//! [`AppState`]: what the handlers share. Cheap to clone; readers never lock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::watch;

use crate::config::Issuer;
use crate::oidc::Provider;

/// The published JWKS, serialized once per key-set change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedJwks {
    /// The JSON document served at the JWKS route.
    pub body: Bytes,
}

/// Whether a dependency is ready; the message is shown to callers of `/readyz`.
pub type ProbeResult = Result<(), String>;

/// A readiness check of something the hub depends on (the store).
pub trait Probe: Send + Sync + 'static {
    /// Checks once; must be quick.
    fn check(&self) -> Pin<Box<dyn Future<Output = ProbeResult> + Send + '_>>;
}

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: Issuer,
    signing_alg: String,
    jwks: watch::Receiver<Option<Arc<PublishedJwks>>>,
    jwks_max_age: Duration,
    store: Arc<dyn Probe>,
    provider: watch::Receiver<Option<Arc<Provider>>>,
}

impl AppState {
    /// Builds the state.
    ///
    /// `jwks` carries `None` until the key manager has loaded keys (`/readyz` answers 503
    /// until then); `jwks_max_age` is the JWKS `Cache-Control: max-age`.
    pub fn new(
        issuer: Issuer,
        signing_alg: impl Into<String>,
        jwks: watch::Receiver<Option<Arc<PublishedJwks>>>,
        jwks_max_age: Duration,
        store: Arc<dyn Probe>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer,
                signing_alg: signing_alg.into(),
                jwks,
                jwks_max_age,
                store,
                provider: watch::channel(None).1,
            }),
        }
    }

    /// The same state with the OIDC endpoints' backends published on `provider`: `None`
    /// until the store, keys, sessions and clients are up (the endpoints answer
    /// `temporarily_unavailable` meanwhile).
    pub fn with_provider(self, provider: watch::Receiver<Option<Arc<Provider>>>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                issuer: inner.issuer.clone(),
                signing_alg: inner.signing_alg.clone(),
                jwks: inner.jwks.clone(),
                jwks_max_age: inner.jwks_max_age,
                store: Arc::clone(&inner.store),
                provider,
            }),
        }
    }

    /// The OIDC endpoints' backends, once started.
    pub fn provider(&self) -> Option<Arc<Provider>> {
        self.inner.provider.borrow().clone()
    }

    /// The hub's issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    /// The JWS algorithm the hub signs with (`ES256`).
    pub fn signing_alg(&self) -> &str {
        &self.inner.signing_alg
    }

    /// The JWKS currently published, if keys are loaded.
    pub fn jwks(&self) -> Option<Arc<PublishedJwks>> {
        self.inner.jwks.borrow().clone()
    }

    /// The JWKS `Cache-Control: max-age`.
    pub fn jwks_max_age(&self) -> Duration {
        self.inner.jwks_max_age
    }

    /// The store's readiness probe.
    pub fn store_probe(&self) -> &dyn Probe {
        self.inner.store.as_ref()
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("issuer", &self.inner.issuer)
            .field("signing_alg", &self.inner.signing_alg)
            .field("keys_loaded", &self.inner.jwks.borrow().is_some())
            .field("jwks_max_age", &self.inner.jwks_max_age)
            .field("provider_started", &self.inner.provider.borrow().is_some())
            .finish_non_exhaustive()
    }
}
