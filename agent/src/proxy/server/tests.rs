//! The proxy end to end on loopback: a fake apiserver (hyper over TLS) behind the real
//! listener, authenticator, identity layer and forwarder.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::ServerName;
use tether_common::time::{Clock as _, SystemClock};
use tether_common::token::{Algorithm, Claims, KeySet, SigningKey, Verifier, VerifyOptions};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::Proxy;
use crate::proxy::auth::{Authenticator, Identity};
use crate::proxy::forward::{Upstream, UpstreamConfig};
use crate::proxy::impersonation::ImpersonationCheck;
use crate::proxy::listener::ProxyListener;
use crate::proxy::status::ProxyError;
use crate::proxy::tls::ServerCert;
use crate::run::RevocationList;
use crate::test_support;

const ISSUER: &str = "https://hub.test";
const AUDIENCE: &str = "cluster:spoke";
const AGENT_TOKEN: &str = "agent-sa-token";
/// Listener workers in the harness.
const HARNESS_WORKERS: usize = 3;

/// Allows every impersonation (the SAR check is tested with its module).
#[derive(Debug)]
struct AllowAll;

#[async_trait]
impl ImpersonationCheck for AllowAll {
    async fn allowed(&self, _who: &Identity, _what: (&str, &str)) -> Result<bool, ProxyError> {
        Ok(true)
    }
}

/// What the fake apiserver saw.
#[derive(Debug, Default)]
struct Seen {
    requests: Mutex<Vec<BTreeMap<String, Vec<String>>>>,
    /// TCP connections accepted.
    connections: std::sync::atomic::AtomicUsize,
    /// Connections served to their end.
    closed: std::sync::atomic::AtomicUsize,
    /// The HTTP version of each request.
    versions: Mutex<Vec<http::Version>>,
}

impl Seen {
    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

type FakeBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// The fake apiserver: `/echo` answers the request headers as JSON; `/watch` streams what
/// the test sends on `chunks`; `/exec` accepts `websocket` and `SPDY/3.1` upgrades and
/// echoes bytes; `/ws-refused` answers 400 to a WebSocket upgrade.
struct Fake {
    addr: SocketAddr,
    ca_pem: String,
    seen: Arc<Seen>,
    chunks: mpsc::Sender<Bytes>,
}

/// How the fake apiserver differs from kube-apiserver.
#[derive(Debug, Clone, Default)]
struct FakeOptions {
    /// Closes each connection gracefully (HTTP/1.1: `Connection: close` on the last
    /// response) after this many requests.
    requests_per_connection: Option<usize>,
}

async fn fake_apiserver_with(options: FakeOptions) -> Fake {
    let ca = test_support::ca("fake apiserver CA");
    let (cert_pem, key_pem) = test_support::leaf(&ca, &["127.0.0.1"], false);
    let cert = ServerCert {
        cert_pem,
        key_pem,
        ca_pem: ca.pem(),
    };
    // Offers `h2` and `http/1.1` in ALPN, as kube-apiserver does.
    let acceptor = TlsAcceptor::from(cert.server_config().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let (chunks_tx, chunks_rx) = mpsc::channel::<Bytes>(4);
    let chunks_rx = Arc::new(tokio::sync::Mutex::new(Some(chunks_rx)));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            seen2
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            let chunks_rx = chunks_rx.clone();
            let limit = options.requests_per_connection;
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let enough = Arc::new(tokio::sync::Notify::new());
                let (seen_in, enough_in) = (seen.clone(), enough.clone());
                let service = hyper::service::service_fn(move |req| {
                    let seen = seen_in.clone();
                    let chunks_rx = chunks_rx.clone();
                    let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    if Some(n) == limit {
                        enough_in.notify_one();
                    }
                    async move { Ok::<_, Infallible>(fake_handle(req, seen, chunks_rx).await) }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                tokio::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = enough.notified() => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
                seen.closed
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    Fake {
        addr,
        ca_pem: ca.pem(),
        seen,
        chunks: chunks_tx,
    }
}

async fn fake_handle(
    mut req: Request<Incoming>,
    seen: Arc<Seen>,
    chunks: Arc<tokio::sync::Mutex<Option<mpsc::Receiver<Bytes>>>>,
) -> Response<FakeBody> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(value.to_str().unwrap_or("<binary>").to_owned());
    }
    seen.requests.lock().unwrap().push(headers.clone());
    seen.versions.lock().unwrap().push(req.version());
    let full = |b: Vec<u8>| Full::new(Bytes::from(b)).boxed();
    match req.uri().path() {
        "/echo" => Response::new(full(serde_json::to_vec(&headers).unwrap())),
        "/body" => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            Response::new(full(body.to_vec()))
        }
        "/watch" => {
            let rx = chunks.lock().await.take().unwrap();
            let stream = futures_util::StreamExt::map(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                |b| Ok::<_, Infallible>(Frame::data(b)),
            );
            Response::new(StreamBody::new(stream).boxed())
        }
        // A body of `hello` sent `ms` after the head: with its length (a complete object)
        // or without (a stream).
        path @ ("/slow-body" | "/slow-stream") => {
            let ms: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(0);
            let later = futures_util::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello")))
            });
            let mut r = Response::new(StreamBody::new(later).boxed());
            if path == "/slow-body" {
                r.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, "5".parse().unwrap());
            }
            r
        }
        "/ws-refused" => {
            let mut r = Response::new(full(b"websocket refused".to_vec()));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
        "/exec" => {
            let Some(protocol) = req.headers().get(http::header::UPGRADE).cloned() else {
                return Response::new(full(b"no upgrade".to_vec()));
            };
            let on = hyper::upgrade::on(&mut req);
            let close_after_one = req.uri().query() == Some("close-after-one");
            tokio::spawn(async move {
                let upgraded = on.await.unwrap();
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut reply = b"echo:".to_vec();
                            reply.extend_from_slice(&buf[..n]);
                            if io.write_all(&reply).await.is_err() {
                                break;
                            }
                            if close_after_one {
                                let _ = io.shutdown().await;
                                break;
                            }
                        }
                    }
                }
            });
            let mut r = Response::new(Empty::new().boxed());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut().insert(http::header::UPGRADE, protocol);
            r.headers_mut()
                .insert(http::header::CONNECTION, "Upgrade".parse().unwrap());
            r.headers_mut().insert(
                "x-stream-protocol-version",
                "v5.channel.k8s.io".parse().unwrap(),
            );
            r
        }
        _ => {
            let mut r = Response::new(full(b"not found".to_vec()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

/// The proxy in front of a fake apiserver.
struct Harness {
    fake: Fake,
    proxy_addr: SocketAddr,
    proxy_ca_pem: String,
    key: SigningKey,
    token_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _verifier: watch::Sender<Option<Arc<Verifier>>>,
    _revocations: watch::Sender<Arc<RevocationList>>,
}

async fn harness() -> Harness {
    harness_with(FakeOptions::default(), HARNESS_WORKERS).await
}

/// The proxy with `workers` workers in front of a fake apiserver set up with `options`.
async fn harness_with(options: FakeOptions, workers: usize) -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = fake_apiserver_with(options).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("apiserver-ca.crt");
    std::fs::write(&ca_file, &fake.ca_pem).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, AGENT_TOKEN).unwrap();
    let config = UpstreamConfig::from_files(
        format!("https://127.0.0.1:{}", fake.addr.port()),
        &ca_file,
        token_file.clone(),
    )
    .unwrap();
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let jwks = [key.public_jwk()].into_iter().collect();
    let verifier = Verifier::new(
        KeySet::from_jwks(&jwks),
        VerifyOptions::new(ISSUER, AUDIENCE),
    );
    let (tx_verifier, rx_verifier) = watch::channel(Some(Arc::new(verifier)));
    let (tx_revocations, rx_revocations) = watch::channel(Arc::new(RevocationList::default()));
    let auth = Authenticator::new(rx_verifier, rx_revocations, Arc::new(SystemClock));
    // Every test runs through several workers, as the agent does.
    let (listener, proxy_ca_pem) =
        listener(&config, auth, workers, &dir.path().join("state")).await;
    let proxy_addr = listener.local_addr().unwrap();
    tokio::spawn(listener.serve(std::future::pending()));
    Harness {
        fake,
        proxy_addr,
        proxy_ca_pem,
        key,
        token_file,
        _dir: dir,
        _verifier: tx_verifier,
        _revocations: tx_revocations,
    }
}

/// A listener on a free loopback port with `workers` proxies sharing `auth`, each with its
/// own upstream to `config`; its certificate's CA (PEM).
async fn listener(
    config: &UpstreamConfig,
    auth: Authenticator,
    workers: usize,
    state: &std::path::Path,
) -> (ProxyListener, String) {
    let auth = Arc::new(auth);
    let proxies = (0..workers)
        .map(|_| {
            let upstream = Upstream::new(config, Duration::ZERO).unwrap();
            Arc::new(Proxy::new(auth.clone(), Arc::new(AllowAll), upstream))
        })
        .collect();
    let cert = ServerCert::generated(state, &["127.0.0.1".to_owned()]).unwrap();
    let listener = ProxyListener::bind_workers(
        "127.0.0.1:0".parse().unwrap(),
        cert.server_config().unwrap(),
        proxies,
    )
    .await
    .unwrap();
    (listener, cert.ca_pem)
}

impl Harness {
    /// An upstream to `127.0.0.1:port` trusting the fake apiserver's CA (written in `dir`)
    /// with the agent's token file.
    fn upstream_config(&self, dir: &std::path::Path, port: u16) -> UpstreamConfig {
        let ca = dir.join("ca.crt");
        std::fs::write(&ca, &self.fake.ca_pem).unwrap();
        UpstreamConfig::from_files(
            format!("https://127.0.0.1:{port}"),
            &ca,
            self.token_file.clone(),
        )
        .unwrap()
    }

    fn token(&self, user: &str, groups: &[&str]) -> String {
        let claims = Claims::mint(
            ISSUER,
            AUDIENCE,
            format!("sub-{user}"),
            user,
            groups.iter().map(|g| g.to_string()).collect(),
            Some("sid-1".to_owned()),
            SystemClock.now(),
            Duration::from_secs(300),
        );
        self.key.sign(&claims).unwrap()
    }

    async fn tls(&self, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in crate::tls::certs_from_pem(&self.proxy_ca_pem, "ca").unwrap() {
            roots.add(ca).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(self.proxy_addr).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// An HTTP/1.1 connection to the proxy.
    async fn http1(&self) -> hyper::client::conn::http1::SendRequest<ProxyBodyOut> {
        let io = TokioIo::new(self.tls(b"http/1.1").await);
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        send
    }
}

type ProxyBodyOut = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn get(path: &str, token: Option<&str>) -> Request<ProxyBodyOut> {
    let mut builder = Request::get(path).header("host", "127.0.0.1");
    if let Some(t) = token {
        builder = builder.header("authorization", format!("Bearer {t}"));
    }
    builder.body(Empty::new().boxed()).unwrap()
}

async fn json(response: Response<Incoming>) -> serde_json::Value {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn no_token_is_401_and_nothing_reaches_the_apiserver() {
    let h = harness().await;
    let mut client = h.http1().await;
    let response = client.send_request(get("/echo", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let status = json(response).await;
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 401);
    let response = client
        .send_request(get("/echo", Some("not-a-jwt")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.fake.seen.count(), 0);
}

#[tokio::test]
async fn valid_token_reaches_the_apiserver_with_only_the_proxys_credentials() {
    let h = harness().await;
    let mut client = h.http1().await;
    let request = Request::get("/echo?x=1")
        .header("host", "127.0.0.1")
        .header(
            "authorization",
            format!("Bearer {}", h.token("alice", &["devs"])),
        )
        // Without Impersonate-User these are dropped, never passed on.
        .header("impersonate-uid", "0")
        .header("impersonate-extra-scopes", "all")
        .header("x-remote-user", "root")
        .header("connection", "x-secret")
        .header("x-secret", "hop")
        .header("accept", "application/json")
        .body(Empty::new().boxed())
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = json(response).await;
    assert_eq!(
        seen["authorization"],
        serde_json::json!([format!("Bearer {AGENT_TOKEN}")])
    );
    assert_eq!(seen["impersonate-user"], serde_json::json!(["alice"]));
    assert_eq!(seen["impersonate-group"], serde_json::json!(["devs"]));
    assert_eq!(seen["accept"], serde_json::json!(["application/json"]));
    assert!(seen.get("x-remote-user").is_none());
    assert!(
        seen.get("x-secret").is_none(),
        "hop-by-hop header passed: {seen}"
    );
    for (name, _) in seen.as_object().unwrap() {
        assert!(
            !name.starts_with("impersonate-")
                || ["impersonate-user", "impersonate-group"].contains(&name.as_str())
                || (name.starts_with("impersonate-extra-tether")),
            "unexpected {name}"
        );
    }
    assert_eq!(h.fake.seen.count(), 1);
}

#[tokio::test]
async fn request_bodies_are_forwarded() {
    let h = harness().await;
    let mut client = h.http1().await;
    let request = Request::post("/body")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {}", h.token("alice", &[])))
        .body(Full::new(Bytes::from_static(b"{\"kind\":\"Pod\"}")).boxed())
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"{\"kind\":\"Pod\"}");
}

/// Opens `/watch?watch=true` through the proxy as alice on a connection of its own and
/// has the fake apiserver send one event: the response's status, its body (still open),
/// and the event as the client got it.
async fn open_watch(h: &Harness) -> (StatusCode, Incoming, Bytes) {
    let mut client = h.http1().await;
    let token = h.token("alice", &[]);
    let response = tokio::spawn({
        let request = get("/watch?watch=true", Some(&token));
        async move { client.send_request(request).await.unwrap() }
    });
    h.fake
        .chunks
        .send(Bytes::from_static(b"{\"type\":\"ADDED\"}\n"))
        .await
        .unwrap();
    let response = response.await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first event arrives while the watch is open")
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    (status, body, first)
}

#[tokio::test]
async fn watch_streams_chunk_by_chunk() {
    let h = harness().await;
    let (status, mut body, first) = open_watch(&h).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&first[..], b"{\"type\":\"ADDED\"}\n");
    let sent_last = Instant::now();
    h.fake
        .chunks
        .send(Bytes::from_static(b"{\"type\":\"MODIFIED\"}\n"))
        .await
        .unwrap();
    let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&second[..], b"{\"type\":\"MODIFIED\"}\n");
    assert!(sent_last.elapsed() < Duration::from_secs(5));
}

/// GET `path` through the proxy: the time to the response head, and the body.
async fn head_time_and_body(h: &Harness, path: &str) -> (Duration, Bytes) {
    let mut client = h.http1().await;
    let started = Instant::now();
    let response = client
        .send_request(get(path, Some(&h.token("alice", &[]))))
        .await
        .unwrap();
    let head = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the body arrives")
        .unwrap()
        .to_bytes();
    (head, body)
}

#[tokio::test]
async fn a_complete_response_is_answered_with_its_first_frame() {
    let h = harness().await;
    // The apiserver sends the head at once and the body 60 ms later: the client gets the
    // head only with the body.
    let (head, body) = head_time_and_body(&h, "/slow-body?ms=60").await;
    assert_eq!(&body[..], b"hello");
    assert!(head >= Duration::from_millis(60), "head after {head:?}");
}

#[tokio::test]
async fn a_late_first_frame_holds_the_head_only_for_the_bounded_wait() {
    let h = harness().await;
    let (head, body) = head_time_and_body(&h, "/slow-body?ms=1500").await;
    assert_eq!(&body[..], b"hello");
    assert!(
        head >= super::FIRST_FRAME_WAIT && head < Duration::from_millis(1000),
        "head after {head:?}"
    );
}

#[tokio::test]
async fn a_stream_without_length_gets_its_head_at_once() {
    let h = harness().await;
    let (head, body) = head_time_and_body(&h, "/slow-stream?ms=1500").await;
    assert_eq!(&body[..], b"hello");
    assert!(head < Duration::from_millis(1000), "head after {head:?}");
}

async fn upgrade_roundtrip(h: &Harness, protocol: &str) {
    let mut client = h.http1().await;
    let request = Request::post("/exec?command=sh")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {}", h.token("alice", &[])))
        .header("connection", "Upgrade")
        .header("upgrade", protocol)
        .body(Empty::new().boxed())
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SWITCHING_PROTOCOLS,
        "{protocol}"
    );
    assert_eq!(
        response.headers()["x-stream-protocol-version"],
        "v5.channel.k8s.io"
    );
    assert_eq!(response.headers()["upgrade"], protocol);
    let upgraded = hyper::upgrade::on(response).await.unwrap();
    let mut io = TokioIo::new(upgraded);
    for message in [&b"hello"[..], b"again"] {
        io.write_all(message).await.unwrap();
        let mut buf = vec![0u8; 5 + message.len()];
        tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..5], b"echo:");
        assert_eq!(&buf[5..], message);
    }
    io.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut rest))
        .await
        .expect("the proxy closes the client side once the apiserver side closed")
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn websocket_upgrade_is_spliced_both_ways() {
    let h = harness().await;
    upgrade_roundtrip(&h, "websocket").await;
    let seen = h.fake.seen.requests.lock().unwrap().pop().unwrap();
    assert_eq!(seen["upgrade"], vec!["websocket".to_owned()]);
    assert_eq!(seen["authorization"], vec![format!("Bearer {AGENT_TOKEN}")]);
}

#[tokio::test]
async fn spdy_upgrade_is_spliced_both_ways() {
    let h = harness().await;
    upgrade_roundtrip(&h, "SPDY/3.1").await;
}

#[tokio::test]
async fn apiserver_closing_closes_the_client() {
    let h = harness().await;
    let mut client = h.http1().await;
    let request = Request::post("/exec?close-after-one")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {}", h.token("alice", &[])))
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .body(Empty::new().boxed())
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut io = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    io.write_all(b"hi").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut rest))
        .await
        .expect("closed by the proxy")
        .unwrap();
    assert_eq!(rest, b"echo:hi");
}

#[tokio::test]
async fn refused_websocket_is_passed_through() {
    let h = harness().await;
    let mut client = h.http1().await;
    let request = Request::get("/ws-refused")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {}", h.token("alice", &[])))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .body(Empty::new().boxed())
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"websocket refused");
}

#[tokio::test]
async fn unsupported_upgrade_is_400_without_upstream_call() {
    let h = harness().await;
    let mut client = h.http1().await;
    let request = Request::get("/exec")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {}", h.token("alice", &[])))
        .header("connection", "Upgrade")
        .header("upgrade", "h2c")
        .body(Empty::new().boxed())
        .unwrap();
    let response = client.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(response).await["reason"], "BadRequest");
    assert_eq!(h.fake.seen.count(), 0);
}

#[tokio::test]
async fn token_file_change_is_used_for_the_next_request() {
    let h = harness().await;
    let mut client = h.http1().await;
    let token = h.token("alice", &[]);
    let seen = json(
        client
            .send_request(get("/echo", Some(&token)))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["authorization"][0], format!("Bearer {AGENT_TOKEN}"));
    std::fs::write(&h.token_file, "rotated-token\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&h.token_file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(10))
        .unwrap();
    let seen = json(
        client
            .send_request(get("/echo", Some(&token)))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seen["authorization"][0], "Bearer rotated-token");
}

#[tokio::test]
async fn http2_clients_are_served() {
    let h = harness().await;
    let io = TokioIo::new(h.tls(b"h2").await);
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let token = h.token("alice", &["devs"]);
    for _ in 0..2 {
        let request = Request::get("https://127.0.0.1/echo")
            .header("authorization", format!("Bearer {token}"))
            .body(Empty::<Bytes>::new().boxed())
            .unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let seen = json(response).await;
        assert_eq!(seen["impersonate-user"], serde_json::json!(["alice"]));
        assert_eq!(seen["authorization"][0], format!("Bearer {AGENT_TOKEN}"));
    }
}

#[tokio::test]
async fn unreachable_apiserver_is_502() {
    let h = harness().await;
    // A proxy whose upstream port has nothing listening.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let config = h.upstream_config(dir.path(), port);
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let jwks = [key.public_jwk()].into_iter().collect();
    let verifier = Verifier::new(
        KeySet::from_jwks(&jwks),
        VerifyOptions::new(ISSUER, AUDIENCE),
    );
    let (_tv, rv) = watch::channel(Some(Arc::new(verifier)));
    let (_tr, rr) = watch::channel(Arc::new(RevocationList::default()));
    let (listener, proxy_ca_pem) = listener(
        &config,
        Authenticator::new(rv, rr, Arc::new(SystemClock)),
        1,
        &dir.path().join("state"),
    )
    .await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(listener.serve(std::future::pending()));
    let other = Harness {
        proxy_addr: addr,
        proxy_ca_pem,
        key,
        ..h
    };
    let mut client = other.http1().await;
    let token = other.token("alice", &[]);
    let response = client
        .send_request(get("/echo", Some(&token)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(json(response).await["code"], 502);
}

#[tokio::test]
async fn no_keys_yet_is_503() {
    let h = harness().await;
    let (_tv, rv) = watch::channel(None);
    let (_tr, rr) = watch::channel(Arc::new(RevocationList::default()));
    let dir = tempfile::tempdir().unwrap();
    let config = h.upstream_config(dir.path(), h.fake.addr.port());
    let (listener, proxy_ca_pem) = listener(
        &config,
        Authenticator::new(rv, rr, Arc::new(SystemClock)),
        1,
        &dir.path().join("state"),
    )
    .await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(listener.serve(std::future::pending()));
    let other = Harness {
        proxy_addr: addr,
        proxy_ca_pem,
        ..h
    };
    let mut client = other.http1().await;
    let token = other.token("alice", &[]);
    let response = client
        .send_request(get("/echo", Some(&token)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(other.fake.seen.count(), 0);
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_hurt_the_proxy() {
    let h = harness().await;
    // Not TLS at all.
    let mut tcp = TcpStream::connect(h.proxy_addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    // TLS, then not HTTP.
    let mut tls = h.tls(b"http/1.1").await;
    tls.write_all(b"\x00\x01\x02 nonsense\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    // Still serving.
    let mut client = h.http1().await;
    let response = client.send_request(get("/echo", None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn connections_are_spread_over_workers_each_with_its_own_upstream_pool() {
    let h = harness().await;
    let token = h.token("alice", &["devs"]);
    let mut clients = Vec::new();
    for _ in 0..HARNESS_WORKERS {
        clients.push(h.http1().await);
    }
    for client in &mut clients {
        let response = client
            .send_request(get("/echo", Some(&token)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(json(response).await["impersonate-user"][0], "alice");
    }
    // Round robin: one connection per worker, and each worker's pool opened its own
    // (HTTP/2) connection to the apiserver.
    assert_eq!(h.fake.seen.count(), HARNESS_WORKERS);
    assert_eq!(
        h.fake
            .seen
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        HARNESS_WORKERS
    );
}

/// Sends `GET /echo` as alice on `client`; the status.
async fn echo_status(
    h: &Harness,
    client: &mut hyper::client::conn::http1::SendRequest<ProxyBodyOut>,
) -> StatusCode {
    let token = h.token("alice", &["devs"]);
    let response = client
        .send_request(get("/echo", Some(&token)))
        .await
        .unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

/// Three `GET /echo` through `h`, one after the other on one client connection: the HTTP
/// version of each request the fake apiserver has seen so far, and the connections it
/// has accepted.
async fn three_echoes(h: &Harness) -> (Vec<http::Version>, usize) {
    let mut client = h.http1().await;
    for _ in 0..3 {
        assert_eq!(echo_status(h, &mut client).await, StatusCode::OK);
    }
    let seen = &h.fake.seen;
    let versions = seen.versions.lock().unwrap().clone();
    (
        versions,
        seen.connections.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[tokio::test]
async fn ordinary_requests_reuse_one_http1_connection() {
    // The fake offers HTTP/2 too; the agent asks for HTTP/1.1 only.
    let h = harness_with(FakeOptions::default(), 1).await;
    let (versions, connections) = three_echoes(&h).await;
    assert_eq!(versions, vec![http::Version::HTTP_11; 3]);
    assert_eq!(connections, 1);
}

#[tokio::test]
async fn a_closed_upstream_connection_is_dialled_again() {
    // The apiserver answers `Connection: close` and closes each connection after one request.
    let options = FakeOptions {
        requests_per_connection: Some(1),
    };
    let h = harness_with(options, 1).await;
    let mut client = h.http1().await;
    let seen = &h.fake.seen;
    for round in 1..=3 {
        assert_eq!(
            echo_status(&h, &mut client).await,
            StatusCode::OK,
            "request {round}"
        );
        // Wait (bounded) until the apiserver has closed this connection.
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.closed.load(std::sync::atomic::Ordering::SeqCst) < round {
            assert!(
                Instant::now() < deadline,
                "the fake never closed connection {round}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(
        seen.connections.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    assert_eq!(
        *seen.versions.lock().unwrap(),
        vec![http::Version::HTTP_11; 3]
    );
}

#[tokio::test]
async fn a_watch_keeps_its_connection_and_other_requests_share_another() {
    let h = harness_with(FakeOptions::default(), 1).await;
    let (status, body, first) = open_watch(&h).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&first[..], b"{\"type\":\"ADDED\"}\n");
    // The watch is open and holds its upstream connection: the ordinary requests go on a
    // second one, one after the other, kept alive between them.
    let (versions, connections) = three_echoes(&h).await;
    assert_eq!(connections, 2);
    assert_eq!(versions, vec![http::Version::HTTP_11; 4]);
    drop(body);
}

#[tokio::test]
async fn no_workers_or_too_many_is_a_setup_error() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let cert = ServerCert::generated(&dir.path().join("state"), &["127.0.0.1".to_owned()]).unwrap();
    let err = ProxyListener::bind_workers(
        "127.0.0.1:0".parse().unwrap(),
        cert.server_config().unwrap(),
        Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("between 1 and 64"), "{err}");
}

#[tokio::test]
async fn shutdown_drains_and_stops_every_worker() {
    let h = harness().await;
    let (tv, rv) = watch::channel(Some(Arc::new(Verifier::new(
        KeySet::from_jwks(&[h.key.public_jwk()].into_iter().collect()),
        VerifyOptions::new(ISSUER, AUDIENCE),
    ))));
    let (_tr, rr) = watch::channel(Arc::new(RevocationList::default()));
    let auth = Authenticator::new(rv, rr, Arc::new(SystemClock));
    let dir = tempfile::tempdir().unwrap();
    let config = h.upstream_config(dir.path(), h.fake.addr.port());
    let (listener, proxy_ca_pem) = listener(&config, auth, 2, &dir.path().join("state")).await;
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(listener.serve(async {
        let _ = stopped.await;
    }));
    let other = Harness {
        proxy_addr: addr,
        proxy_ca_pem,
        ..h
    };
    // Two idle keep-alive connections, one on each worker.
    let token = other.token("alice", &[]);
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut client = other.http1().await;
        let response = client
            .send_request(get("/echo", Some(&token)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        idle.push(client);
    }
    stop.send(()).unwrap();
    // Idle HTTP/1.1 connections close at once; serve returns once both workers ended,
    // well before the drain timeout.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returned")
        .unwrap();
    assert!(started.elapsed() < crate::proxy::listener::DRAIN_TIMEOUT);
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    drop(tv);
}
