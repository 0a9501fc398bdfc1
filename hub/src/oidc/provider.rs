//! [`Provider`]: what the OIDC endpoints need besides the [`AppState`](crate::http::AppState)
//! basics — keys, sessions, clients, the upstream IdP, the store and the clock.
//!
//! The upstream IdP is behind [`LoginUpstream`], a small trait that [`Upstream`]
//! implements, so handler tests run against an in-process fake.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tether_common::time::{Clock, UnixTime};
use tether_common::token::{KeySet, Verifier, VerifyOptions};
use url::Url;

use super::error::OAuthError;
use crate::clients::Clients;
use crate::config::Issuer;
use crate::keys::KeyManager;
use crate::machine::Machine;
use crate::policy::PeopleAccess;
use crate::sessions::Sessions;
use crate::store::{AuditRecord, Store};
use crate::upstream::{PendingLogin, Upstream, UpstreamError, UpstreamGrant, UpstreamLogin};

/// A boxed future, for the object-safe [`LoginUpstream`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The upstream IdP as the OIDC endpoints use it.
pub trait LoginUpstream: Send + Sync + 'static {
    /// The IdP's authorization URL for a new login, and what to keep until the callback.
    fn begin(&self) -> (Url, PendingLogin);
    /// Redeems the IdP's `code` for the user's identity and the upstream grant.
    fn complete<'a>(
        &'a self,
        code: &'a str,
        pending: &'a PendingLogin,
    ) -> BoxFuture<'a, Result<UpstreamLogin, UpstreamError>>;
    /// Checks that the account behind `grant` is still active and re-reads its groups.
    fn revalidate<'a>(
        &'a self,
        grant: &'a UpstreamGrant,
    ) -> BoxFuture<'a, Result<UpstreamLogin, UpstreamError>>;
    /// How often a session is re-checked upstream (on refresh).
    fn recheck_interval(&self) -> Duration;
}

impl LoginUpstream for Upstream {
    fn begin(&self) -> (Url, PendingLogin) {
        Upstream::begin(self)
    }

    fn complete<'a>(
        &'a self,
        code: &'a str,
        pending: &'a PendingLogin,
    ) -> BoxFuture<'a, Result<UpstreamLogin, UpstreamError>> {
        Box::pin(Upstream::complete(self, code, pending))
    }

    fn revalidate<'a>(
        &'a self,
        grant: &'a UpstreamGrant,
    ) -> BoxFuture<'a, Result<UpstreamLogin, UpstreamError>> {
        Box::pin(Upstream::revalidate(self, grant))
    }

    fn recheck_interval(&self) -> Duration {
        self.config().recheck_interval
    }
}

/// Token lifetimes the endpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Hub access tokens.
    pub access_token: Duration,
    /// ID tokens.
    pub id_token: Duration,
    /// Cluster tokens from token exchange.
    pub cluster_token: Duration,
    /// How long a browser login may take (the `tether_login` cookie's Max-Age).
    pub login: Duration,
}

/// The OIDC endpoints' backends. Built once the store and keys are up.
pub struct Provider {
    issuer: Issuer,
    keys: KeyManager,
    sessions: Sessions,
    clients: Clients,
    upstream: Option<Arc<dyn LoginUpstream>>,
    store: Store,
    clock: Arc<dyn Clock>,
    lifetimes: Lifetimes,
    access: PeopleAccess,
    /// The machine path (`machine` section), set once at start-up.
    machine: OnceLock<Arc<Machine>>,
}

impl Provider {
    /// Assembles the provider; `upstream` is `None` when login is disabled.
    #[expect(clippy::too_many_arguments, reason = "one argument per backend")]
    pub fn new(
        issuer: Issuer,
        keys: KeyManager,
        sessions: Sessions,
        clients: Clients,
        upstream: Option<Arc<dyn LoginUpstream>>,
        store: Store,
        clock: Arc<dyn Clock>,
        lifetimes: Lifetimes,
    ) -> Self {
        Self {
            issuer,
            keys,
            sessions,
            clients,
            upstream,
            store,
            clock,
            lifetimes,
            access: PeopleAccess::open(),
            machine: OnceLock::new(),
        }
    }

    /// The same provider applying the people policy `access` (the `access` section;
    /// [`Provider::new`] starts with [`PeopleAccess::open`], as without the section).
    pub fn with_access(self, access: PeopleAccess) -> Self {
        Self { access, ..self }
    }

    /// Which clusters people may get tokens for.
    pub fn access(&self) -> &PeopleAccess {
        &self.access
    }

    /// Enables machine tokens (the `machine` section). Set once, at start-up (or by a
    /// test); returns false, changing nothing, if already set.
    pub fn set_machine(&self, machine: Arc<Machine>) -> bool {
        self.machine.set(machine).is_ok()
    }

    /// The machine path, if enabled.
    pub fn machine(&self) -> Option<&Machine> {
        self.machine.get().map(Arc::as_ref)
    }

    /// The hub's issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyManager {
        &self.keys
    }

    /// Sessions, codes and refresh tokens.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Registered OAuth clients.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// The upstream IdP, if login is enabled.
    pub fn upstream(&self) -> Option<&dyn LoginUpstream> {
        self.upstream.as_deref()
    }

    /// The store (audit log, cluster registry).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The time now.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Token lifetimes.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Signs `claims` with the current key, counted under `kind`.
    pub fn sign<C: serde::Serialize>(
        &self,
        claims: &C,
        kind: &'static str,
    ) -> Result<String, OAuthError> {
        self.keys.sign(claims, kind).map_err(OAuthError::internal)
    }

    /// A verifier of the hub's own tokens for `audience`, over the keys published now.
    pub fn verifier(&self, audience: &str) -> Verifier {
        let state = self.keys.current();
        Verifier::new(
            KeySet::from_jwks(&state.jwks),
            VerifyOptions::new(self.issuer.as_str(), audience),
        )
    }

    /// Like [`Provider::verifier`], but accepting tokens up to `leeway` past their `exp`
    /// (for `id_token_hint` at logout).
    pub fn verifier_with_leeway(&self, audience: &str, leeway: Duration) -> Verifier {
        let state = self.keys.current();
        let mut options = VerifyOptions::new(self.issuer.as_str(), audience);
        options.leeway = leeway;
        Verifier::new(KeySet::from_jwks(&state.jwks), options)
    }

    /// Appends an audit record; a failure is logged, not answered (the action is done).
    pub async fn audit(&self, record: AuditRecord) {
        if let Err(err) = self.store.append_audit(&record).await {
            tracing::error!(error = %err, kind = %record.kind, "cannot write the audit record");
        }
    }
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("login_enabled", &self.upstream.is_some())
            .field("lifetimes", &self.lifetimes)
            .finish_non_exhaustive()
    }
}
