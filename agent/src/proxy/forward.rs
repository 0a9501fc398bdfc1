//! Forwarding to the spoke's apiserver with the agent's ServiceAccount token.
//!
//! - [`UpstreamConfig`]: where the apiserver is and how to trust it: in-cluster
//!   (`KUBERNETES_SERVICE_HOST`, the mounted ServiceAccount token and `ca.crt`) or flags.
//! - [`TokenFile`]: the token, re-read when the file changes (projected tokens rotate).
//! - [`Upstream`]: a pooled hyper-util client for ordinary requests and long-lived streams
//!   (watches, `logs -f`), and one that dials a connection of its own for each upgrade;
//!   HTTP/1.1 only, TLS checked against the apiserver CA only.
//!
//! HTTP/1.1 and not HTTP/2, although kube-apiserver offers both: every request in flight
//! has a connection of its own (idle ones are kept for 45 s), and
//! - kube-apiserver (Go's `net/http`) spends 4-12 % less CPU on a request that comes over
//!   HTTP/1.1 than on the same request as an HTTP/2 stream, 12 % with CPUs of its own
//!   (`scripts/bench-proxy`, docs/benchmarks.md). The apiserver's CPU is the control
//!   plane's, shared by every client of the cluster; the agent's own CPU per request
//!   stayed within the noise;
//! - a watch or a followed log holds its connection for its whole life. On one HTTP/2
//!   connection they would exhaust its streams (kube-apiserver allows 250), and the 251st
//!   request — watch or not — would wait for one that never frees.
//!
//! Bodies are streamed both ways: the client's `Incoming` body is the upstream request's
//! body and the upstream's `Incoming` is the client's response body.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::tls::SetupError;
use tether_common::secret::Secret;

/// Where a pod's ServiceAccount credentials are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// How long TCP + TLS to the apiserver may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The token file's modification time is looked at no more often than this.
pub const TOKEN_RECHECK: Duration = Duration::from_secs(5);

/// How to reach the apiserver.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `https://host:port` of the apiserver.
    pub url: String,
    /// The apiserver's CA bundle (PEM): the only roots trusted.
    pub ca_pem: String,
    /// The file holding the bearer token.
    pub token_file: PathBuf,
}

impl UpstreamConfig {
    /// The in-cluster settings, from the environment and the mounted ServiceAccount.
    pub fn in_cluster() -> Result<Self, SetupError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
            SetupError::Config(
                "not running in a pod (KUBERNETES_SERVICE_HOST is not set): pass --apiserver, \
                 --apiserver-ca and --apiserver-token-file"
                    .to_owned(),
            )
        })?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".to_owned());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let dir = Path::new(SERVICE_ACCOUNT_DIR);
        Self::from_files(
            format!("https://{host}:{port}"),
            &dir.join("ca.crt"),
            dir.join("token"),
        )
    }

    /// Settings from `--apiserver`, `--apiserver-ca` and `--apiserver-token-file`.
    pub fn from_files(url: String, ca: &Path, token_file: PathBuf) -> Result<Self, SetupError> {
        let ca_pem = std::fs::read_to_string(ca).map_err(|source| SetupError::Io {
            path: ca.to_owned(),
            source,
        })?;
        Ok(Self {
            url,
            ca_pem,
            token_file,
        })
    }

    /// A TLS client config trusting only the apiserver CA, offering HTTP/1.1 only.
    pub fn client_config(&self) -> Result<ClientConfig, SetupError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in crate::tls::certs_from_pem(&self.ca_pem, "apiserver CA")? {
            roots.add(ca).map_err(SetupError::Rustls)?;
        }
        let mut config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(SetupError::Rustls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// A Kubernetes client with the same credentials (for access reviews).
    pub fn kube_client(&self) -> Result<kube::Client, SetupError> {
        let url: Uri = self
            .url
            .parse()
            .map_err(|_| SetupError::Config(format!("--apiserver {:?} is not a URL", self.url)))?;
        let mut config = kube::Config::new(url);
        config.root_cert = Some(
            crate::tls::certs_from_pem(&self.ca_pem, "apiserver CA")?
                .into_iter()
                .map(|c| c.to_vec())
                .collect(),
        );
        config.auth_info.token_file = Some(self.token_file.display().to_string());
        kube::Client::try_from(config).map_err(|e| SetupError::Kube(Box::new(e)))
    }
}

/// A bearer token read from a file and re-read when the file's modification time changes
/// (looked at no more often than every `recheck`).
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    recheck: Duration,
    state: Mutex<TokenState>,
}

#[derive(Debug)]
struct TokenState {
    token: Arc<Secret>,
    /// `Bearer <token>`, marked sensitive: built once per token read, not per request.
    bearer: HeaderValue,
    mtime: Option<SystemTime>,
    checked: Instant,
}

impl TokenFile {
    /// Reads the token now; fails if the file cannot be read, is empty, or does not hold
    /// a valid header value.
    pub fn open(path: PathBuf, recheck: Duration) -> Result<Self, SetupError> {
        let (token, bearer, mtime) = read_token(&path)?;
        Ok(Self {
            path,
            recheck,
            state: Mutex::new(TokenState {
                token: Arc::new(token),
                bearer,
                mtime,
                checked: Instant::now(),
            }),
        })
    }

    /// The current token. On a failed re-read the last good token is kept.
    pub fn token(&self) -> Arc<Secret> {
        self.current().token.clone()
    }

    /// `Authorization: Bearer <current token>` as a sensitive header value (never
    /// HPACK-indexed, redacted from `Debug`).
    pub fn bearer(&self) -> HeaderValue {
        self.current().bearer.clone()
    }

    /// The state, after re-reading the file if `recheck` has passed and it changed.
    fn current(&self) -> std::sync::MutexGuard<'_, TokenState> {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if state.checked.elapsed() >= self.recheck {
            state.checked = Instant::now();
            let mtime = std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok();
            if mtime != state.mtime || mtime.is_none() {
                match read_token(&self.path) {
                    Ok((token, bearer, mtime)) => {
                        if token.expose() != state.token.expose() {
                            tracing::info!(path = %self.path.display(), "apiserver token reloaded");
                        }
                        state.token = Arc::new(token);
                        state.bearer = bearer;
                        state.mtime = mtime;
                    }
                    Err(e) => tracing::warn!(error = %e, "keeping the previous apiserver token"),
                }
            }
        }
        state
    }
}

/// The token in `path`, its `Bearer` header value, and the file's modification time.
fn read_token(path: &Path) -> Result<(Secret, HeaderValue, Option<SystemTime>), SetupError> {
    let io = |source| SetupError::Io {
        path: path.to_owned(),
        source,
    };
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path).map_err(io)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(SetupError::Config(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    let mut bearer = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
        SetupError::Config(format!(
            "the token file {} holds characters that cannot be sent in a header",
            path.display()
        ))
    })?;
    bearer.set_sensitive(true);
    Ok((Secret::new(token), bearer, mtime))
}

/// Why a request could not be forwarded (the client gets 502).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The request could not be sent or no response came back.
    #[error("the apiserver could not be reached: {0}")]
    Upstream(#[source] hyper_util::client::legacy::Error),
    /// The request's path does not make a valid upstream URI.
    #[error("invalid request target: {0}")]
    BadTarget(String),
    /// The response's body broke off before its first frame.
    #[error("the apiserver's response broke off: {0}")]
    Body(#[source] hyper::Error),
}

/// Whether a request (path and query) is a long-lived stream: a watch (`?watch=true`, the
/// legacy `/watch/` paths) or a followed log (`?follow=true`).
pub fn is_long_lived(path_and_query: &str) -> bool {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let flag = |name: &str| {
        query.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == name && (v == "true" || v == "1")
        })
    };
    flag("watch") || flag("follow") || path.contains("/watch/")
}

/// What kind of exchange a request is, which picks the upstream client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// A request and its response: a pooled connection.
    Ordinary,
    /// A watch or a followed log ([`is_long_lived`]): a pooled connection too, but its
    /// response goes to the client as it comes (no wait for a first body frame).
    LongLived,
    /// An upgrade (exec, attach, port-forward): the `Upgrade` headers kept, a connection
    /// of its own that the spliced streams then own.
    Upgrade,
}

impl Exchange {
    /// An ordinary or long-lived request, by its path and query.
    pub fn of(path_and_query: &str) -> Self {
        if is_long_lived(path_and_query) {
            Self::LongLived
        } else {
            Self::Ordinary
        }
    }
}

/// How long an idle upstream connection is kept for the next request: well under
/// kube-apiserver's own idle timeout (90 s), so that the agent does not send a request on
/// a connection the apiserver is closing at that moment.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// The apiserver: base URI, token, and the clients.
#[derive(Debug, Clone)]
pub struct Upstream {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    token: Arc<TokenFile>,
    /// Ordinary requests and long-lived streams: kept-alive connections, reused.
    pooled: Client<UpstreamConnector, Incoming>,
    /// Upgrades: a new connection each, never returned to a pool.
    upgrades: Client<UpstreamConnector, Incoming>,
}

impl Upstream {
    /// Builds the clients for `config`, re-reading its token file every `recheck` at most.
    pub fn new(config: &UpstreamConfig, recheck: Duration) -> Result<Self, SetupError> {
        let bad = || {
            SetupError::Config(format!(
                "--apiserver {:?} is not an https:// URL",
                config.url
            ))
        };
        let uri: Uri = config.url.parse().map_err(|_| bad())?;
        if uri.scheme() != Some(&http::uri::Scheme::HTTPS) {
            return Err(bad());
        }
        let authority = uri.authority().cloned().ok_or_else(bad)?;
        let token = Arc::new(TokenFile::open(config.token_file.clone(), recheck)?);
        let connector = UpstreamConnector::new(config.client_config()?);
        let pooled = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector.clone());
        let upgrades = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok(Self {
            scheme: http::uri::Scheme::HTTPS,
            authority,
            token,
            pooled,
            upgrades,
        })
    }

    /// The token source (tests check the reload).
    pub fn token_file(&self) -> &TokenFile {
        &self.token
    }

    /// Sends `req` (already stripped of the client's credentials and carrying the verified
    /// impersonation headers) to the apiserver with the agent's token, on the client for
    /// `exchange`.
    pub async fn send(
        &self,
        req: Request<Incoming>,
        exchange: Exchange,
    ) -> Result<Response<Incoming>, ForwardError> {
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        parts.uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| ForwardError::BadTarget(e.to_string()))?;
        parts.version = Version::HTTP_11;
        let upgrade_value = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::HOST);
        if exchange == Exchange::Upgrade
            && let Some(value) = upgrade_value
        {
            parts.headers.insert(header::UPGRADE, value);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        }
        parts
            .headers
            .insert(header::AUTHORIZATION, self.token.bearer());
        let req = Request::from_parts(parts, body);
        let client = match exchange {
            Exchange::Upgrade => &self.upgrades,
            Exchange::Ordinary | Exchange::LongLived => &self.pooled,
        };
        let mut response = client.request(req).await.map_err(ForwardError::Upstream)?;
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            strip_hop_by_hop(response.headers_mut());
        }
        Ok(response)
    }
}

/// Headers that are hop-by-hop whatever `Connection` says (RFC 9110 §7.6.1, and the
/// obsolete `Keep-Alive` and `Proxy-Connection`).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): those named in `Connection`, and the
/// well-known ones.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests and responses carry none: one look at each name present costs less
    // than nine removals by name, each hashing the name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.into_iter().chain(HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// Dials the apiserver: TCP then TLS with the apiserver CA (HTTP/1.1 by ALPN).
#[derive(Clone)]
pub struct UpstreamConnector {
    tls: TlsConnector,
}

impl std::fmt::Debug for UpstreamConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConnector").finish_non_exhaustive()
    }
}

impl UpstreamConnector {
    fn new(config: ClientConfig) -> Self {
        Self {
            tls: TlsConnector::from(Arc::new(config)),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for UpstreamConnector {
    type Response = UpstreamIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("no host in the apiserver URL")?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(host.clone())?;
            let dial = async {
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                tls.connect(name, tcp).await
            };
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, dial)
                .await
                .map_err(|_| "timed out connecting to the apiserver")??;
            Ok(UpstreamIo(TokioIo::new(stream)))
        })
    }
}

/// A TLS connection to the apiserver, as hyper IO.
#[derive(Debug)]
pub struct UpstreamIo(TokioIo<TlsStream<TcpStream>>);

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests;
