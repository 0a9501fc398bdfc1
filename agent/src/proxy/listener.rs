//! The proxy's HTTPS listener: TLS (ALPN `h2`, `http/1.1`) with a handshake timeout, then
//! hyper-util's auto (HTTP/1.1 or HTTP/2) connection with upgrades enabled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::server::Proxy;
use super::tls::SetupError;

/// A TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP/1.1 request's headers must arrive within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// On shutdown, open connections get this long to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listener, ready to serve.
pub struct ProxyListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
}

impl std::fmt::Debug for ProxyListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyListener")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl ProxyListener {
    /// Binds `addr`.
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        proxy: Arc<Proxy>,
    ) -> Result<Self, SetupError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SetupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(tls),
            proxy,
        })
    }

    /// The bound address (tests bind port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` completes, then gives open connections
    /// [`DRAIN_TIMEOUT`] to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Connections hold a receiver; `closing` tells them to finish, and the channel is
        // closed (all receivers dropped) when the last one has.
        let (closing, _) = watch::channel(false);
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "proxy listening");
        }
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off a little instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let acceptor = self.acceptor.clone();
            let proxy = self.proxy.clone();
            let watcher = closing.subscribe();
            tokio::spawn(async move {
                serve_connection(tcp, peer, acceptor, proxy, watcher).await;
            });
        }
        tracing::info!("proxy stopped accepting; draining connections");
        tokio::select! {
            () = async {
                closing.send_replace(true);
                closing.closed().await;
            } => {}
            () = tokio::time::sleep(DRAIN_TIMEOUT) => {
                tracing::info!("proxy connections still open after the drain timeout");
            }
        }
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    proxy: Arc<Proxy>,
    mut closing: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |req| proxy.clone().handle(req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async {
            let _ = closing.wait_for(|closing| *closing).await;
        } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
