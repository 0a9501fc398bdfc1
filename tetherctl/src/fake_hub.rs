//! A fake hub for the user-command tests: discovery, `/authorize`, `/token` (code, refresh
//! with strict rotation, device code, both token exchanges), `/device`, `/revoke` and
//! `/api/v1/clusters`, over loopback HTTP or TLS (the [`Pki`] chain). It runs on its own
//! thread and runtime, so tests may drive it from any number of threads, and stops on drop.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rustls_pki_types::pem::PemObject as _;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::cli::{self, Cli, Context};
use crate::error::Result;
use crate::login::pkce::Pkce;
use crate::test_support::Pki;

/// The workload token the fake accepts in machine mode.
pub const GOOD_WORKLOAD_TOKEN: &str = "workload.jwt.good";

/// What the fake knows and has seen. Tests read and change it through [`FakeHub::state`].
#[derive(Debug)]
pub struct FakeState {
    /// The base URL (set at start).
    pub base: String,
    /// Clusters offered (and exchangeable).
    pub clusters: Vec<String>,
    /// The refresh token that works now.
    pub refresh_token: String,
    /// Refresh tokens already spent (presenting one ends the session).
    pub spent: Vec<String>,
    /// Access tokens that work now.
    pub access_tokens: Vec<String>,
    /// Whether the session has ended (revoked, reuse detected).
    pub ended: bool,
    /// Lifetime of access tokens.
    pub access_ttl: u64,
    /// Lifetime of cluster tokens.
    pub cluster_ttl: u64,
    /// Delay of each refresh (widens race windows).
    pub refresh_delay: Duration,
    /// Number of successful refreshes.
    pub refreshes: usize,
    /// Number of refresh attempts.
    pub refresh_attempts: usize,
    /// Exchanges by audience (successful).
    pub exchanges: Vec<String>,
    /// Machine-mode subject tokens seen.
    pub workload_tokens_seen: Vec<String>,
    /// Tokens revoked.
    pub revoked: Vec<String>,
    /// Authorization requests: the PKCE challenge and redirect URI per code issued.
    pub codes: HashMap<String, (String, String)>,
    /// `/authorize` answers with this `error` instead of a code.
    pub authorize_error: Option<(String, String)>,
    /// Device grant: answers before success (`authorization_pending`, `slow_down`, ...).
    pub device_script: VecDeque<&'static str>,
    /// Device grant: `expires_in` and `interval`.
    pub device_expires_in: u64,
    /// Device grant `interval`.
    pub device_interval: u64,
    /// Device token polls received.
    pub device_polls: usize,
    /// Whether discovery lists a device endpoint.
    pub offer_device: bool,
    counter: usize,
}

impl FakeState {
    fn next(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    /// A fresh session: returns (access token, refresh token) the client may cache.
    pub fn start_session(&mut self) -> (String, String) {
        let access = self.next("at");
        let refresh = self.next("rt");
        self.access_tokens.push(access.clone());
        self.refresh_token = refresh.clone();
        self.ended = false;
        (access, refresh)
    }
}

/// A running fake hub.
#[derive(Debug)]
pub struct FakeHub {
    /// Its base URL (`http://127.0.0.1:PORT` or `https://localhost:PORT`).
    pub url: String,
    state: Arc<Mutex<FakeState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHub {
    /// A fake on loopback HTTP offering `clusters`.
    pub fn start(clusters: &[&str]) -> Self {
        Self::spawn(clusters, None)
    }

    /// A fake on TLS with `pki`'s chain (`https://localhost:PORT`).
    pub fn start_tls(clusters: &[&str], pki: &Pki) -> Self {
        Self::spawn(clusters, Some(pki))
    }

    fn spawn(clusters: &[&str], pki: Option<&Pki>) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let url = match pki {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let state = Arc::new(Mutex::new(FakeState {
            base: url.clone(),
            clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
            refresh_token: String::new(),
            spent: Vec::new(),
            access_tokens: Vec::new(),
            ended: false,
            access_ttl: 300,
            cluster_ttl: 60,
            refresh_delay: Duration::ZERO,
            refreshes: 0,
            refresh_attempts: 0,
            exchanges: Vec::new(),
            workload_tokens_seen: Vec::new(),
            revoked: Vec::new(),
            codes: HashMap::new(),
            authorize_error: None,
            device_script: VecDeque::new(),
            device_expires_in: 600,
            device_interval: 5,
            device_polls: 0,
            offer_device: true,
            counter: 0,
        }));
        let app = router(state.clone());
        let tls = pki.map(|pki| {
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pki.chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key =
                rustls_pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let shutdown = async {
                    let _ = stopped.await;
                };
                match tls {
                    None => axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .unwrap(),
                    Some(acceptor) => axum::serve(TlsListener { listener, acceptor }, app)
                        .with_graceful_shutdown(shutdown)
                        .await
                        .unwrap(),
                }
            });
        });
        Self {
            url,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The fake's state.
    pub fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct TlsListener {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.listener.accept().await else {
                continue;
            };
            // A client that does not trust the CA fails here; keep serving the others.
            if let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

type Shared = Arc<Mutex<FakeState>>;

fn router(state: Shared) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/device", post(device))
        .route("/revoke", post(revoke))
        .route("/api/v1/clusters", get(clusters))
        .with_state(state)
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

fn bad(code: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, code, description)
}

async fn discovery(State(state): State<Shared>) -> Response {
    let s = state.lock().unwrap();
    let base = &s.base;
    let mut doc = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "revocation_endpoint": format!("{base}/revoke"),
    });
    if s.offer_device {
        doc["device_authorization_endpoint"] = json!(format!("{base}/device"));
    }
    Json(doc).into_response()
}

async fn authorize(
    State(state): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = state.lock().unwrap();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let redirect_uri = get("redirect_uri");
    let ok = get("client_id") == "tetherctl"
        && get("response_type") == "code"
        && get("code_challenge_method") == "S256"
        && !get("code_challenge").is_empty()
        && get("scope") == "openid profile groups offline_access"
        && redirect_uri.starts_with("http://127.0.0.1:")
        && redirect_uri.ends_with("/callback");
    if !ok {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let mut target = url::Url::parse(&redirect_uri).unwrap();
    {
        let mut pairs = target.query_pairs_mut();
        if let Some((error, description)) = s.authorize_error.clone() {
            pairs
                .append_pair("error", &error)
                .append_pair("error_description", &description);
        } else {
            let code = s.next("code");
            s.codes
                .insert(code.clone(), (get("code_challenge"), redirect_uri.clone()));
            pairs.append_pair("code", &code);
        }
        pairs
            .append_pair("state", &get("state"))
            .append_pair("iss", &s.base);
    }
    Redirect::to(target.as_str()).into_response()
}

async fn token(State(state): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("client_id") != "tetherctl" {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    match get("grant_type").as_str() {
        "authorization_code" => {
            let mut s = state.lock().unwrap();
            let Some((challenge, redirect_uri)) = s.codes.remove(&get("code")) else {
                return bad("invalid_grant", "unknown code");
            };
            if redirect_uri != get("redirect_uri") {
                return bad("invalid_grant", "redirect_uri mismatch");
            }
            if Pkce::from_verifier(get("code_verifier")).challenge != challenge {
                return bad("invalid_grant", "PKCE verification failed");
            }
            let (access, refresh) = s.start_session();
            let ttl = s.access_ttl;
            Json(
                json!({"access_token": access, "refresh_token": refresh, "id_token": "id",
                "token_type": "Bearer", "expires_in": ttl}),
            )
            .into_response()
        }
        "refresh_token" => {
            let delay = {
                let mut s = state.lock().unwrap();
                s.refresh_attempts += 1;
                s.refresh_delay
            };
            tokio::time::sleep(delay).await;
            let mut s = state.lock().unwrap();
            let presented = get("refresh_token");
            if s.spent.contains(&presented) {
                s.ended = true;
                return bad(
                    "invalid_grant",
                    "refresh token reuse; the session was revoked",
                );
            }
            if s.ended || presented != s.refresh_token {
                return bad("invalid_grant", "the session was revoked; log in again");
            }
            s.spent.push(presented);
            let (access, refresh) = s.start_session();
            s.refreshes += 1;
            let ttl = s.access_ttl;
            Json(json!({"access_token": access, "refresh_token": refresh,
                "token_type": "Bearer", "expires_in": ttl}))
            .into_response()
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let mut s = state.lock().unwrap();
            s.device_polls += 1;
            if get("device_code") != "dev-code-secret" {
                return bad("invalid_grant", "unknown device code");
            }
            if let Some(code) = s.device_script.pop_front() {
                return bad(code, "not yet");
            }
            let (access, refresh) = s.start_session();
            let ttl = s.access_ttl;
            Json(json!({"access_token": access, "refresh_token": refresh,
                "token_type": "Bearer", "expires_in": ttl}))
            .into_response()
        }
        "urn:ietf:params:oauth:grant-type:token-exchange" => {
            let mut s = state.lock().unwrap();
            let audience = get("audience");
            match get("subject_token_type").as_str() {
                "urn:ietf:params:oauth:token-type:access_token" => {
                    if s.ended {
                        return bad("invalid_grant", "the session was revoked; log in again");
                    }
                    if !s.access_tokens.contains(&get("subject_token")) {
                        return bad(
                            "invalid_grant",
                            "subject_token is not a valid hub access token",
                        );
                    }
                }
                "urn:ietf:params:oauth:token-type:jwt" => {
                    let subject = get("subject_token");
                    s.workload_tokens_seen.push(subject.clone());
                    if subject != GOOD_WORKLOAD_TOKEN {
                        return bad("invalid_grant", "the workload token was refused by policy");
                    }
                }
                _ => return bad("invalid_request", "bad subject_token_type"),
            }
            if !s.clusters.contains(&audience) {
                return bad("invalid_target", "unknown cluster");
            }
            s.exchanges.push(audience.clone());
            let token = s.next(&format!("ct-{audience}"));
            let ttl = s.cluster_ttl;
            Json(
                json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl,
                "issued_token_type": "urn:ietf:params:oauth:token-type:jwt"}),
            )
            .into_response()
        }
        _ => bad("unsupported_grant_type", "no"),
    }
}

async fn device(State(state): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let s = state.lock().unwrap();
    if f.get("client_id").map(String::as_str) != Some("tetherctl") {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    Json(json!({
        "device_code": "dev-code-secret",
        "user_code": "ABCD-EFGH",
        "verification_uri": format!("{}/device/verify", s.base),
        "verification_uri_complete": format!("{}/device/verify?user_code=ABCD-EFGH", s.base),
        "expires_in": s.device_expires_in,
        "interval": s.device_interval,
    }))
    .into_response()
}

async fn revoke(State(state): State<Shared>, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    let token = f.get("token").cloned().unwrap_or_default();
    if token == s.refresh_token {
        s.ended = true;
    }
    s.revoked.push(token);
    StatusCode::OK.into_response()
}

async fn clusters(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let s = state.lock().unwrap();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if s.ended || !s.access_tokens.iter().any(|t| t == bearer) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "session ended");
    }
    let list: Vec<_> = s
        .clusters
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "labels": {"env": "test"},
                "proxy_url": format!("https://proxy.test/{name}"),
                "proxy_ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            })
        })
        .collect();
    Json(json!({ "clusters": list })).into_response()
}

/// What one in-process run of the CLI produced.
#[derive(Debug)]
pub struct Outcome {
    /// The result of [`cli::run`].
    pub result: Result<()>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// Runs `tetherctl ARGS` in-process with only `env` as the environment.
pub async fn run_cli(
    args: &[&str],
    env: &[(&str, String)],
    clock: &dyn tether_common::time::Clock,
) -> Outcome {
    use clap::Parser as _;
    let cli =
        Cli::try_parse_from(std::iter::once("tetherctl").chain(args.iter().copied())).unwrap();
    let vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let lookup = move |name: &str| vars.get(name).cloned();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let result = {
        let mut cx = Context {
            env: &lookup,
            clock,
            stdout: &mut stdout,
            stderr: &mut stderr,
        };
        cli::run(&cli, &mut cx).await
    };
    Outcome {
        result,
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}
