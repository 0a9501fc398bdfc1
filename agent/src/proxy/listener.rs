//! The proxy's HTTPS listener: TLS (ALPN `h2`, `http/1.1`) with a handshake timeout, then
//! hyper-util's auto (HTTP/1.1 or HTTP/2) connection with upgrades enabled.
//!
//! Connections are served by a fixed set of workers, each an OS thread running its own
//! single-threaded tokio runtime with its own [`Proxy`] (and so its own upstream connection
//! pool); the accept loop hands each new connection to the next worker in turn. Everything
//! one connection does (TLS, HTTP/2, the upstream request, the audit record) then stays on
//! one thread: no task is woken across threads on the request path. The work-stealing
//! runtime spent a fifth of the proxy's CPU switching threads on this path (`perf` of
//! `scripts/bench-proxy`, docs/benchmarks.md). Authentication state (the verifier, the
//! revocation list, the verified-token cache) is shared by every worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::server::Proxy;
use super::tls::SetupError;

/// A TLS handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP/1.1 request's headers must arrive within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// On shutdown, open connections get this long to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The most workers a listener runs.
pub const MAX_WORKERS: usize = 64;

/// A bound listener, ready to serve.
pub struct ProxyListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    workers: Vec<Worker>,
}

/// One worker before it starts: its runtime and its proxy.
struct Worker {
    runtime: Runtime,
    proxy: Arc<Proxy>,
}

/// A connection handed to a worker.
struct Accepted {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    closing: watch::Receiver<bool>,
}

impl std::fmt::Debug for ProxyListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyListener")
            .field("listener", &self.listener)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl ProxyListener {
    /// Binds `addr`, served by one worker running `proxy`.
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        proxy: Arc<Proxy>,
    ) -> Result<Self, SetupError> {
        Self::bind_workers(addr, tls, vec![proxy]).await
    }

    /// Binds `addr`, served by one worker per proxy in `proxies` (1 to [`MAX_WORKERS`]; give
    /// each its own `Upstream`). The workers' runtimes are built here, so a failure is
    /// reported before anything is served.
    pub async fn bind_workers(
        addr: SocketAddr,
        tls: Arc<ServerConfig>,
        proxies: Vec<Arc<Proxy>>,
    ) -> Result<Self, SetupError> {
        if proxies.is_empty() || proxies.len() > MAX_WORKERS {
            return Err(SetupError::Config(format!(
                "--proxy-workers must be between 1 and {MAX_WORKERS}, got {}",
                proxies.len()
            )));
        }
        let workers = proxies
            .into_iter()
            .map(|proxy| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    // Log lines (the audit records) batched on this thread go out before
                    // it waits for I/O: after the responses, together under load.
                    .on_thread_park(crate::log_writer::flush_this_thread)
                    .build()
                    .map_err(|e| {
                        SetupError::Config(format!("cannot start a proxy worker's runtime: {e}"))
                    })?;
                Ok(Worker { runtime, proxy })
            })
            .collect::<Result<Vec<_>, SetupError>>()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SetupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(tls),
            workers,
        })
    }

    /// The bound address (tests bind port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts the workers and accepts connections until `shutdown` completes, then gives
    /// open connections [`DRAIN_TIMEOUT`] to finish and stops the workers.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Connections hold a receiver; `closing` tells them to finish, and the channel is
        // closed (all receivers dropped) when the last one has.
        let (closing, _) = watch::channel(false);
        let count = self.workers.len();
        let mut queues = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for (index, worker) in self.workers.into_iter().enumerate() {
            let (queue, accepted) = mpsc::unbounded_channel();
            let acceptor = self.acceptor.clone();
            match std::thread::Builder::new()
                .name(format!("tether-proxy-{index}"))
                .spawn(move || run_worker(worker, acceptor, accepted))
            {
                Ok(thread) => {
                    queues.push(queue);
                    threads.push(thread);
                }
                Err(e) => {
                    tracing::error!(worker = index, error = %e, "cannot start a proxy worker")
                }
            }
        }
        if queues.is_empty() {
            tracing::error!("no proxy worker could be started: the proxy is not serving");
            return;
        }
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, workers = queues.len(), "proxy listening");
        }
        let mut next = 0usize;
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
            let tcp = match tcp.into_std() {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot hand a connection to a worker");
                    continue;
                }
            };
            let accepted = Accepted {
                tcp,
                peer,
                closing: closing.subscribe(),
            };
            next = (next + 1) % queues.len();
            if queues[next].send(accepted).is_err() {
                // Only if the worker's thread ended, which it does not before the queue closes.
                tracing::error!(worker = next, %peer, "a proxy worker has stopped; connection dropped");
            }
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
        // Closing the queues ends the workers; connections still open are dropped with them.
        drop(queues);
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}

/// A worker's thread: serves the connections it is handed until its queue closes.
fn run_worker(
    worker: Worker,
    acceptor: TlsAcceptor,
    mut accepted: mpsc::UnboundedReceiver<Accepted>,
) {
    let Worker { runtime, proxy } = worker;
    crate::log_writer::batch_this_thread();
    runtime.block_on(async move {
        while let Some(Accepted { tcp, peer, closing }) = accepted.recv().await {
            match TcpStream::from_std(tcp) {
                Ok(tcp) => {
                    tokio::spawn(serve_connection(
                        tcp,
                        peer,
                        acceptor.clone(),
                        proxy.clone(),
                        closing,
                    ));
                }
                Err(e) => tracing::warn!(%peer, error = %e, "cannot serve a connection"),
            }
        }
    });
    drop(runtime);
    crate::log_writer::flush_this_thread();
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
