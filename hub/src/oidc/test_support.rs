//! Fixtures for OIDC endpoint tests: a hub on in-memory SQLite with real keys, sessions
//! and clients, a fake upstream IdP, a manual clock, and helpers that drive the router
//! with `oneshot` through a whole login.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use tether_common::secret::Secret;
use tether_common::time::{Clock, ManualClock};
use tower::ServiceExt;
use url::Url;

use super::provider::{BoxFuture, Lifetimes, LoginUpstream, Provider};
use crate::clients::{ClientConfig, ClientKind, Clients, hash_secret};
use crate::config::Issuer;
use crate::http::AppState;
use crate::keys::Kek;
use crate::keys::conformance::{manager, test_clock, test_config};
use crate::registry::ClusterName;
use crate::sessions::{Sessions, SessionsConfig, s256_challenge};
use crate::store::{Store, StoredAuditRecord};
use crate::upstream::{Identity, PendingLogin, UpstreamError, UpstreamGrant, UpstreamLogin};

/// The test hub's issuer (as in `http::test_support`).
pub const ISSUER: &str = "https://hub.test";
/// A confidential client (may use the device grant).
pub const WEB: &str = "webapp";
/// Its secret.
pub const WEB_SECRET: &str = "web-secret";
/// Its redirect URI.
pub const WEB_REDIRECT: &str = "https://app.test/cb";
/// Its post-logout redirect URI.
pub const WEB_LOGOUT: &str = "https://app.test/bye";
/// A public (non-native) client (may not use the device grant).
pub const SPA: &str = "spa";
/// Its redirect URI.
pub const SPA_REDIRECT: &str = "https://spa.test/cb";
/// The built-in native client.
pub const CLI: &str = "tetherctl";
/// A loopback redirect URI of `tetherctl` on some port.
pub const CLI_REDIRECT: &str = "http://127.0.0.1:49152/callback";
/// A PKCE verifier (43+ unreserved characters).
pub const VERIFIER: &str = "verifier-0123456789-0123456789-0123456789-abc";
/// The upstream code the fake IdP accepts.
pub const GOOD_UPSTREAM_CODE: &str = "idp-code";

/// What the fake IdP answers to a re-validation.
#[derive(Debug, Clone)]
pub enum Revalidation {
    /// The user is active with these groups.
    Groups(Vec<String>),
    /// The account is locked or deleted.
    Revoked,
    /// The IdP is unreachable.
    Unreachable,
}

/// An in-process upstream IdP.
#[derive(Debug)]
pub struct FakeUpstream {
    /// The answer to `revalidate`.
    pub revalidation: Mutex<Revalidation>,
    /// How many times `revalidate` ran.
    pub revalidations: Mutex<u32>,
    /// `recheck_interval`.
    pub recheck: Duration,
}

impl FakeUpstream {
    fn new() -> Self {
        Self {
            revalidation: Mutex::new(Revalidation::Groups(vec!["dev".to_owned()])),
            revalidations: Mutex::new(0),
            recheck: Duration::from_secs(300),
        }
    }

    fn identity(groups: Vec<String>) -> UpstreamLogin {
        UpstreamLogin {
            identity: Identity {
                subject: "okta|alice".to_owned(),
                username: "alice@example.com".to_owned(),
                groups,
            },
            grant: UpstreamGrant {
                access_token: Secret::new("upstream-at"),
                refresh_token: Some(Secret::new("upstream-rt")),
                access_expires_at: None,
            },
        }
    }
}

impl LoginUpstream for FakeUpstream {
    fn begin(&self) -> (Url, PendingLogin) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pending = PendingLogin {
            state: format!("upstream-state-{n}"),
            nonce: format!("upstream-nonce-{n}"),
            pkce_verifier: format!("upstream-verifier-{n}"),
        };
        let mut url = Url::parse("https://idp.test/authorize").unwrap();
        url.query_pairs_mut().append_pair("state", &pending.state);
        (url, pending)
    }

    fn complete<'a>(
        &'a self,
        code: &'a str,
        _pending: &'a PendingLogin,
    ) -> BoxFuture<'a, Result<UpstreamLogin, UpstreamError>> {
        Box::pin(async move {
            if code == GOOD_UPSTREAM_CODE {
                Ok(Self::identity(vec!["dev".to_owned()]))
            } else {
                Err(UpstreamError::Exchange("invalid_grant".to_owned()))
            }
        })
    }

    fn revalidate<'a>(
        &'a self,
        _grant: &'a UpstreamGrant,
    ) -> BoxFuture<'a, Result<UpstreamLogin, UpstreamError>> {
        Box::pin(async move {
            *self.revalidations.lock().unwrap() += 1;
            let answer = self.revalidation.lock().unwrap().clone();
            match answer {
                Revalidation::Groups(groups) => Ok(Self::identity(groups)),
                Revalidation::Revoked => Err(UpstreamError::AccountRevoked),
                Revalidation::Unreachable => Err(UpstreamError::Http("timeout".to_owned())),
            }
        })
    }

    fn recheck_interval(&self) -> Duration {
        self.recheck
    }
}

/// A test hub.
pub struct Hub {
    /// The router's state.
    pub state: AppState,
    /// The provider inside it.
    pub provider: Arc<Provider>,
    /// The clock everything reads.
    pub clock: Arc<ManualClock>,
    /// The store.
    pub store: Store,
    /// The fake IdP (`None` when login is disabled).
    pub upstream: Option<Arc<FakeUpstream>>,
}

impl Hub {
    /// A hub with the fake IdP, clients `webapp`, `spa`, `tetherctl` and clusters
    /// `prod-eu`, `dev-1`.
    pub async fn new() -> Self {
        Self::build(true).await
    }

    /// A hub without an upstream IdP (login disabled).
    pub async fn without_upstream() -> Self {
        Self::build(false).await
    }

    /// A hub with the fake IdP applying the people policy `access`.
    pub async fn with_access(access: crate::policy::PeopleAccess) -> Self {
        Self::build_with(true, access).await
    }

    async fn build(with_upstream: bool) -> Self {
        Self::build_with(with_upstream, crate::policy::PeopleAccess::open()).await
    }

    async fn build_with(with_upstream: bool, access: crate::policy::PeopleAccess) -> Self {
        let store = crate::store::tests::sqlite_memory().await;
        let (clock, shared) = test_clock();
        let keys = manager(&store, &test_config(), &shared).await;
        let sessions = Sessions::new(
            store.clone(),
            Kek::from_bytes(&[7u8; 32]).unwrap(),
            SessionsConfig::default(),
        );
        let clients = Clients::new(&[
            ClientConfig {
                id: WEB.to_owned(),
                kind: ClientKind::Confidential,
                secret_hash: Some(hash_secret(&Secret::new(WEB_SECRET))),
                redirect_uris: vec![Url::parse(WEB_REDIRECT).unwrap()],
                native: false,
                token_exchange: vec!["prod-*".to_owned()],
                post_logout_redirect_uris: vec![Url::parse(WEB_LOGOUT).unwrap()],
                device_grant: true,
            },
            ClientConfig {
                id: SPA.to_owned(),
                kind: ClientKind::Public,
                secret_hash: None,
                redirect_uris: vec![Url::parse(SPA_REDIRECT).unwrap()],
                native: false,
                token_exchange: Vec::new(),
                post_logout_redirect_uris: Vec::new(),
                device_grant: false,
            },
        ])
        .unwrap();
        for name in ["prod-eu", "dev-1"] {
            store
                .add_cluster(
                    &ClusterName::parse(name).unwrap(),
                    &BTreeMap::new(),
                    clock.now(),
                )
                .await
                .unwrap();
        }
        let upstream = with_upstream.then(|| Arc::new(FakeUpstream::new()));
        let config = SessionsConfig::default();
        let provider = Arc::new(
            Provider::new(
                Issuer::parse(ISSUER).unwrap(),
                keys,
                sessions,
                clients,
                upstream.clone().map(|u| u as Arc<dyn LoginUpstream>),
                store.clone(),
                shared,
                Lifetimes {
                    access_token: config.access_token_lifetime.as_duration(),
                    id_token: config.id_token_lifetime.as_duration(),
                    cluster_token: Duration::from_secs(60),
                    login: config.login_timeout.as_duration(),
                },
            )
            .with_access(access),
        );
        let (_tx, rx) = tokio::sync::watch::channel(Some(Arc::clone(&provider)));
        let state = crate::http::test_support::ready_state().with_provider(rx);
        Self {
            state,
            provider,
            clock,
            store,
            upstream,
        }
    }

    /// Moves the clock (and lets the key manager see the store, as its loop would).
    pub async fn advance(&self, d: Duration) {
        self.clock.advance(d);
        self.provider.keys().refresh().await.unwrap();
    }

    /// Sends one request through the whole router.
    pub async fn send(&self, request: Request<Body>) -> Response {
        crate::http::router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap()
    }

    /// GET `uri`, with optional cookie.
    pub async fn get(&self, uri: &str, cookie: Option<&str>) -> Response {
        let mut request = Request::get(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// POSTs a form to `path`, optionally with HTTP Basic credentials.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            use base64::Engine as _;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            request = request.header(header::AUTHORIZATION, format!("Basic {encoded}"));
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// The authorization URL for `client` with PKCE over [`VERIFIER`].
    pub fn authorize_uri(client: &str, redirect_uri: &str) -> String {
        let challenge = s256_challenge(VERIFIER);
        authorize_uri_with(&[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", redirect_uri),
            ("scope", "openid profile groups email"),
            ("state", "client-state"),
            ("nonce", "client-nonce"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
    }

    /// `/authorize` up to the IdP: returns (login cookie, upstream state).
    pub async fn start_login(&self, client: &str, redirect_uri: &str) -> (String, String) {
        let response = self
            .get(&Self::authorize_uri(client, redirect_uri), None)
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let idp = location(&response);
        assert_eq!(idp.host_str(), Some("idp.test"));
        (cookie, query(&idp)["state"].clone())
    }

    /// A whole browser login: returns the client's authorization code.
    pub async fn login(&self, client: &str, redirect_uri: &str) -> String {
        let (cookie, state) = self.start_login(client, redirect_uri).await;
        let response = self
            .get(
                &format!("/callback?code={GOOD_UPSTREAM_CODE}&state={state}"),
                Some(&cookie),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let back = location(&response);
        assert!(back.as_str().starts_with(redirect_uri), "{back}");
        let query = query(&back);
        assert_eq!(query["state"], "client-state");
        assert_eq!(query["iss"], ISSUER);
        query["code"].clone()
    }

    /// Redeems `code` for `client` (Basic auth for the confidential client).
    pub async fn redeem(
        &self,
        client: &str,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
    ) -> Response {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        if client == WEB {
            self.post_form("/token", &form, Some((WEB, WEB_SECRET)))
                .await
        } else {
            form.push(("client_id", client));
            self.post_form("/token", &form, None).await
        }
    }

    /// Login and redemption: the token response.
    pub async fn tokens(&self, client: &str, redirect_uri: &str) -> serde_json::Value {
        let code = self.login(client, redirect_uri).await;
        let response = self.redeem(client, redirect_uri, &code, VERIFIER).await;
        assert_eq!(response.status(), StatusCode::OK);
        crate::http::test_support::json(response).await
    }

    /// Newest audit records of `kind`.
    pub async fn audit(&self, kind: &str) -> Vec<StoredAuditRecord> {
        self.store.recent_audit(Some(kind), 100).await.unwrap()
    }

    /// How many sessions were ever created (each writes `session.created`).
    pub async fn sessions_created(&self) -> usize {
        self.audit(crate::sessions::audit_kind::SESSION_CREATED)
            .await
            .len()
    }
}

/// `/authorize?` with these parameters.
pub fn authorize_uri_with(params: &[(&str, &str)]) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/authorize?{query}")
}

/// The `Location` of a redirect.
pub fn location(response: &Response) -> Url {
    Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap()
}

/// The query parameters of `url`.
pub fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// Decodes a JWT's payload without verifying it.
pub fn payload(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
