//! Wiring of `tether-hub serve`: configuration, listeners, TLS, store, keys, servers.
//!
//! [`Prepared::new`] resolves the configuration and binds the listeners (dev mode binds
//! first so the issuer can carry the real port); [`Prepared::serve`] then runs until the
//! shutdown future completes. Both are usable in-process by integration tests.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::PrometheusHandle;
use tether_common::time::SystemClock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clients::{ClientError, Clients};
use crate::config::{Config, ConfigError, DEV_CONFIG_FILE, DevOptions, Overrides};
use crate::grpc::{GrpcError, GrpcState, Pki};
use crate::http::{self, AppState, Probe, ProbeResult, PublishedJwks};
use crate::keys::{Kek, KeyError, KeyManager, KeyState};
use crate::oidc::{Lifetimes, LoginUpstream, Provider};
use crate::policy::PeopleAccess;
use crate::sessions::Sessions;
use crate::store::{Store, StoreError};
use crate::tls::{ServerTls, TlsError};
use crate::upstream::{Upstream, UpstreamError};

/// How often expired codes, logins and long-dead sessions are deleted.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A YAML file.
    File(PathBuf),
    /// `--dev`: no file; everything lives in this data directory.
    Dev {
        /// Holds `hub.db`, `kek`, `ca.crt`, `ca.key`, `server.crt`, `server.key`.
        data_dir: PathBuf,
    },
}

/// Why the hub could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is unusable (exit code 64).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate could not be loaded or generated.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store could not be opened or migrated.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The signing keys or the KEK could not be loaded.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// The upstream IdP could not be set up (discovery failed, unreadable client secret).
    /// The hub does not start without it: login would fail for everyone.
    #[error("upstream IdP: {0}")]
    Upstream(#[from] UpstreamError),
    /// The OAuth clients could not be loaded.
    #[error("OAuth clients: {0}")]
    Clients(#[from] ClientError),
    /// The gRPC listener's CAs could not be loaded or created.
    #[error("gRPC: {0}")]
    Grpc(#[source] GrpcError),
    /// The ArgoCD integration could not start (hub CA unreadable, hub cluster unreachable).
    #[error("argocd: {0}")]
    ArgoCd(#[from] crate::argocd::ArgoCdError),
    /// Machine tokens could not be set up (hub cluster kubeconfig, trusted issuer CA).
    #[error("machine: {0}")]
    Machine(#[from] crate::machine::MachineError),
}

impl AppError {
    /// Whether the error is the operator's configuration (exit 64) rather than a failure.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config(_))
    }
}

/// A resolved configuration with its listeners bound.
#[derive(Debug)]
pub struct Prepared {
    /// The effective configuration (overrides applied, dev mode resolved).
    pub config: Config,
    /// The bound HTTPS listener.
    pub listener: TcpListener,
    /// The bound metrics listener.
    pub metrics_listener: TcpListener,
    /// The bound gRPC listener (spokes, Admin API).
    pub grpc_listener: TcpListener,
    /// Dev mode's data directory.
    pub dev_data_dir: Option<PathBuf>,
}

impl Prepared {
    /// Loads the configuration and binds both listeners.
    ///
    /// In dev mode the data directory is created (0700), the KEK generated if missing,
    /// and the issuer follows the bound port (so `--listen 127.0.0.1:0` works).
    pub async fn new(source: &ConfigSource, overrides: &Overrides) -> Result<Self, AppError> {
        match source {
            ConfigSource::File(path) => {
                let mut config = Config::load(path)?;
                config.apply_overrides(overrides)?;
                let listener = bind(config.listen).await?;
                let metrics_listener = bind(config.metrics.listen).await?;
                let grpc_listener = bind(config.grpc.listen).await?;
                Ok(Self {
                    config,
                    listener,
                    metrics_listener,
                    grpc_listener,
                    dev_data_dir: None,
                })
            }
            ConfigSource::Dev { data_dir } => {
                create_private_dir(data_dir)?;
                let listener = bind(overrides.listen.unwrap_or(DevOptions::DEFAULT_LISTEN)).await?;
                let metrics_listener = bind(
                    overrides
                        .metrics_listen
                        .unwrap_or(DevOptions::DEFAULT_METRICS_LISTEN),
                )
                .await?;
                let options = DevOptions {
                    data_dir: data_dir.clone(),
                    listen: local_addr(&listener)?,
                    metrics_listen: local_addr(&metrics_listener)?,
                };
                let grpc_listener = bind(
                    overrides
                        .grpc_listen
                        .unwrap_or(DevOptions::DEFAULT_GRPC_LISTEN),
                )
                .await?;
                let (mut config, text) = Config::dev_with_text(&options)?;
                config.grpc.listen = local_addr(&grpc_listener)?;
                ensure_dev_kek(&options.kek_file())?;
                write_private_file(&data_dir.join(DEV_CONFIG_FILE), &text)?;
                Ok(Self {
                    config,
                    listener,
                    metrics_listener,
                    grpc_listener,
                    dev_data_dir: Some(data_dir.clone()),
                })
            }
        }
    }

    /// Runs the hub until `shutdown` completes: HTTPS and metrics servers first (ready
    /// answers 503 meanwhile), then the store and the key manager.
    pub async fn serve(
        self,
        prometheus: PrometheusHandle,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let Self {
            config,
            listener,
            metrics_listener,
            grpc_listener,
            dev_data_dir,
        } = self;
        let tls = ServerTls::from_config(&config.tls, &config.issuer)?;
        let addr = local_addr(&listener)?;
        let metrics_addr = local_addr(&metrics_listener)?;
        announce(&config, addr, metrics_addr, &tls, dev_data_dir.as_deref());

        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move |mut rx: watch::Receiver<bool>| async move {
            // An error means the sender is gone: stop as well.
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let (jwks_tx, jwks_rx) = watch::channel(None);
        let (provider_tx, provider_rx) = watch::channel(None);
        let store_probe = Arc::new(StoreProbe::default());
        let state = AppState::new(
            config.issuer.clone(),
            config.keys.algorithm.as_str(),
            jwks_rx,
            config.keys.jwks_max_age(),
            store_probe.clone(),
        )
        .with_provider(provider_rx);
        let https = tokio::spawn(http::server::serve_https(
            listener,
            tls.config,
            http::router(state),
            stopped(stop_rx.clone()),
        ));
        let metrics = tokio::spawn(http::server::serve_http(
            metrics_listener,
            http::metrics::router(prometheus),
            stopped(stop_rx.clone()),
        ));

        let trigger = tokio::spawn(shutdown_trigger(shutdown, stop_tx.clone()));
        let outcome = tokio::select! {
            started = start_backends(&config, &store_probe, jwks_tx, provider_tx, grpc_listener, stopped(stop_rx.clone())) => started.map(Some),
            () = stopped(stop_rx.clone()) => Ok(None),
        };
        if let Ok(Some(_)) = &outcome {
            tracing::info!("hub ready");
            stopped(stop_rx).await;
        }
        trigger.abort();
        let (outcome, grpc) = match outcome {
            Ok(Some(backends)) => {
                let grpc = backends.stop();
                (Ok(()), grpc)
            }
            Ok(None) => (Ok(()), None),
            Err(err) => (Err(err), None),
        };
        let _ = stop_tx.send(true);
        if let Some(grpc) = grpc {
            match grpc.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "gRPC server failed"),
                Err(err) => tracing::error!(error = %err, "gRPC server task failed"),
            }
        }
        if let Err(err) = https.await {
            tracing::error!(error = %err, "HTTPS server task failed");
        }
        match metrics.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "metrics server failed"),
            Err(err) => tracing::error!(error = %err, "metrics server task failed"),
        }
        if let Some(store) = store_probe.store.get() {
            store.close().await;
        }
        tracing::info!("hub stopped");
        outcome
    }
}

/// Completes `shutdown`, then asks every server to stop.
async fn shutdown_trigger(shutdown: impl Future<Output = ()>, stop: watch::Sender<bool>) {
    shutdown.await;
    let _ = stop.send(true);
}

/// The running store and key manager, kept alive while the hub serves.
#[derive(Debug)]
pub struct Backends {
    /// The store.
    pub store: Store,
    /// The key manager (its refresh loop stops when the last clone is dropped).
    pub keys: KeyManager,
    /// The gRPC services' state (registry of agent streams, CAs).
    pub grpc: GrpcState,
    tasks: Vec<JoinHandle<()>>,
    grpc_server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Backends {
    /// Stops the background tasks; returns the gRPC server task, which stops gracefully
    /// on the shutdown signal (await it).
    fn stop(mut self) -> Option<JoinHandle<Result<(), tonic::transport::Error>>> {
        for task in &self.tasks {
            task.abort();
        }
        self.grpc.connections().close_all();
        self.grpc_server.take()
    }
}

/// Connects the store (running migrations), starts the key manager and publishes its
/// key sets to the JWKS handler, then discovers the upstream IdP (if configured; a failure
/// stops the hub with a clear error) and publishes the OIDC endpoints' [`Provider`].
async fn start_backends(
    config: &Config,
    store_probe: &StoreProbe,
    jwks_tx: watch::Sender<Option<Arc<PublishedJwks>>>,
    provider_tx: watch::Sender<Option<Arc<Provider>>>,
    grpc_listener: TcpListener,
    grpc_shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Backends, AppError> {
    let store = Store::connect(&config.storage).await?;
    tracing::info!(backend = %store.backend(), "storage connected");
    let _ = store_probe.store.set(store.clone());
    let (keys, refresh) =
        KeyManager::spawn(store.clone(), config.keys.clone(), Arc::new(SystemClock)).await?;
    let forward = forward_jwks(keys.subscribe(), jwks_tx, |state: &Arc<KeyState>| {
        serde_json::to_vec(state.jwks.as_ref())
    });
    let mut tasks = vec![refresh, forward];
    let (provider, purge) = start_provider(config, &store, &keys).await?;
    if let Some(machine) = crate::machine::Machine::from_config(config).await? {
        provider.set_machine(Arc::new(machine));
    }
    tasks.push(purge);
    tasks.extend(crate::oidc::revalidate::spawn(Arc::clone(&provider)));
    provider_tx.send_replace(Some(provider));
    let grpc_addr = local_addr(&grpc_listener)?;
    let grpc = start_grpc(config, &store, &keys, grpc_addr.port()).await?;
    announce_grpc(&grpc, grpc_addr);
    publish_grpc_ca(config, &grpc);
    tasks.extend(crate::argocd::start(config, &grpc).await?);
    let grpc_server = tokio::spawn(crate::grpc::server::serve(
        grpc_listener,
        grpc.clone(),
        grpc_shutdown,
    ));
    Ok(Backends {
        store,
        keys,
        grpc,
        tasks,
        grpc_server: Some(grpc_server),
    })
}

/// Loads (or creates, once for all replicas) the gRPC and cluster CAs and builds the
/// gRPC services' state.
async fn start_grpc(
    config: &Config,
    store: &Store,
    keys: &KeyManager,
    port: u16,
) -> Result<GrpcState, AppError> {
    let clock: Arc<dyn tether_common::time::Clock> = Arc::new(SystemClock);
    let kek = Kek::load(&config.keys.kek_file)?;
    let pki = Pki::load_or_create(
        store,
        &kek,
        &crate::grpc::listener_hosts(&config.issuer),
        config.grpc.agent_cert_lifetime.as_duration(),
        clock.now(),
    )
    .await
    .map_err(AppError::Grpc)?;
    Ok(GrpcState::new(
        store.clone(),
        keys.clone(),
        pki,
        config.issuer.clone(),
        crate::grpc::hub_url(&config.issuer, port),
        clock,
    )
    .await)
}

/// Logs where agents and tetherctl reach the gRPC listener, and the CA pin.
fn announce_grpc(grpc: &GrpcState, addr: SocketAddr) {
    tracing::info!(%addr, "grpc: {}", grpc.hub_url());
    tracing::info!(ca_hash = %grpc.pki().ca_hash(), "gRPC CA pin (agents: --ca-hash)");
}

/// With a self-signed TLS directory (dev mode, tests, the demo), writes the gRPC CA there as
/// `grpc-ca.crt`, beside the HTTPS `ca.crt`, so `tetherctl --ca-file` can trust the gRPC
/// listener. It is a public certificate; agents trust it by pin (`--ca-hash`) instead.
fn publish_grpc_ca(config: &Config, grpc: &GrpcState) {
    let Some(dir) = config
        .tls
        .self_signed_dir
        .as_ref()
        .filter(|_| config.tls.self_signed)
    else {
        return;
    };
    let path = dir.join(GRPC_CA_FILE);
    match std::fs::write(&path, grpc.pki().grpc_ca_pem()) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "gRPC CA certificate (tetherctl --ca-file)")
        }
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot write the gRPC CA certificate")
        }
    }
}

/// The gRPC CA file written into a self-signed TLS directory.
pub const GRPC_CA_FILE: &str = "grpc-ca.crt";

/// Builds the OIDC endpoints' backends: sessions (grants sealed with the KEK), clients,
/// and the upstream IdP (discovered now). Returns them with the session purge task.
async fn start_provider(
    config: &Config,
    store: &Store,
    keys: &KeyManager,
) -> Result<(Arc<Provider>, JoinHandle<()>), AppError> {
    let clock: Arc<dyn tether_common::time::Clock> = Arc::new(SystemClock);
    let kek = Kek::load(&config.keys.kek_file)?;
    let sessions = Sessions::new(store.clone(), kek, config.sessions.clone());
    let clients = Clients::new(&config.clients)?;
    let upstream: Option<Arc<dyn LoginUpstream>> = match &config.upstream {
        Some(upstream) => {
            let redirect_uri = url::Url::parse(
                &config.issuer.endpoint(crate::oidc::routes::CALLBACK),
            )
            .map_err(|err| {
                ConfigError::invalid("issuer", format!("cannot build the callback URL: {err}"))
            })?;
            let upstream = Upstream::discover(upstream, redirect_uri).await?;
            Some(Arc::new(upstream.with_clock(Arc::clone(&clock))))
        }
        None => None,
    };
    let lifetimes = Lifetimes {
        access_token: config.sessions.access_token_lifetime.as_duration(),
        id_token: config.sessions.id_token_lifetime.as_duration(),
        cluster_token: config.tokens.cluster_token_lifetime.as_duration(),
        login: config.sessions.login_timeout.as_duration(),
    };
    let purge = tokio::spawn(purge_loop(sessions.clone(), Arc::clone(&clock)));
    let provider = Provider::new(
        config.issuer.clone(),
        keys.clone(),
        sessions,
        clients,
        upstream,
        store.clone(),
        clock,
        lifetimes,
    )
    .with_access(PeopleAccess::from_config(config.access.as_ref()));
    tracing::info!(
        login_enabled = config.upstream.is_some(),
        clients = config.clients.len() + 1,
        "OIDC provider ready"
    );
    Ok((Arc::new(provider), purge))
}

/// Deletes expired codes, logins and long-dead sessions every [`PURGE_INTERVAL`].
async fn purge_loop(sessions: Sessions, clock: Arc<dyn tether_common::time::Clock>) {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sessions.purge_expired(clock.now()).await {
            Ok(counts) => tracing::debug!(?counts, "expired sessions purged"),
            Err(err) => tracing::warn!(error = %err, "purging expired sessions failed"),
        }
    }
}

/// Forwards every value of `source` to `sink` as a serialized JWKS, until either side closes.
pub fn forward_jwks<T, F>(
    mut source: watch::Receiver<T>,
    sink: watch::Sender<Option<Arc<PublishedJwks>>>,
    to_json: F,
) -> JoinHandle<()>
where
    T: Send + Sync + 'static,
    F: Fn(&T) -> Result<Vec<u8>, serde_json::Error> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let published = match to_json(&source.borrow_and_update()) {
                Ok(body) => Some(Arc::new(PublishedJwks { body: body.into() })),
                Err(err) => {
                    tracing::error!(error = %err, "cannot serialize the JWKS; keeping the previous one");
                    None
                }
            };
            if let Some(published) = published {
                sink.send_replace(Some(published));
            }
            tokio::select! {
                changed = source.changed() => if changed.is_err() { break },
                () = sink.closed() => break,
            }
        }
    })
}

/// Readiness of the store: not ready until connected, then a ping.
#[derive(Debug, Default)]
struct StoreProbe {
    store: OnceLock<Store>,
}

impl Probe for StoreProbe {
    fn check(&self) -> Pin<Box<dyn Future<Output = ProbeResult> + Send + '_>> {
        Box::pin(async move {
            let store = self
                .store
                .get()
                .ok_or_else(|| "not connected yet".to_owned())?;
            store.ping().await.map_err(|err| err.to_string())
        })
    }
}

/// Logs where everything is, and in dev mode how to reach it.
fn announce(
    config: &Config,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    tls: &ServerTls,
    dev_data_dir: Option<&Path>,
) {
    tracing::info!(issuer = %config.issuer, %addr, "serving HTTPS");
    tracing::info!("metrics on http://{metrics_addr}{}", http::metrics::METRICS);
    if let Some(dir) = dev_data_dir {
        tracing::warn!(data_dir = %dir.display(), "DEV MODE: self-signed TLS, local SQLite, local KEK; not for production");
    }
    if let Some(ca) = &tls.ca_cert_file {
        tracing::info!(
            "TLS CA certificate: {} (e.g. curl --cacert {} {})",
            ca.display(),
            ca.display(),
            config.issuer.endpoint(crate::oidc::routes::DISCOVERY)
        );
    }
    if config.upstream.is_none() {
        tracing::warn!(
            "upstream IdP not configured: login is disabled; set `upstream` in the config"
        );
    }
    match &config.access {
        None => tracing::warn!(
            "access not configured: every signed-in user may get tokens for every registered \
             cluster (spoke RBAC still decides); set `access.rules` in the config to restrict"
        ),
        Some(access) if access.rules.is_empty() => {
            tracing::warn!("access.rules is empty: no one may get cluster tokens through a login")
        }
        Some(_) => {}
    }
}

/// Binds a TCP listener.
async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { addr, source })
}

/// The address a listener is bound to.
fn local_addr(listener: &TcpListener) -> Result<SocketAddr, AppError> {
    listener.local_addr().map_err(|source| AppError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// Creates the dev data directory with mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::DirBuilderExt;

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| ConfigError::DevDir {
            path: dir.to_owned(),
            reason: err.to_string(),
        })
}

/// Writes `text` to `path` with mode 0600, replacing it.
fn write_private_file(path: &Path, text: &str) -> Result<(), ConfigError> {
    tether_common::fs::write_private(path, text.as_bytes()).map_err(|err| ConfigError::DevDir {
        path: path.to_owned(),
        reason: err.to_string(),
    })
}

/// Generates the dev KEK (mode 0600) unless it exists.
fn ensure_dev_kek(path: &Path) -> Result<(), AppError> {
    Kek::load_or_generate_file(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_overrides() -> Overrides {
        Overrides {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            grpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        }
    }

    #[tokio::test]
    async fn dev_mode_rewrites_its_config_file_private_even_if_it_was_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("hub-dev");
        std::fs::create_dir_all(&data_dir).unwrap();
        let file = data_dir.join(DEV_CONFIG_FILE);
        std::fs::write(&file, "stale").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let source = ConfigSource::Dev { data_dir };
        Prepared::new(&source, &dev_overrides()).await.unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        assert_ne!(std::fs::read_to_string(&file).unwrap(), "stale");
    }

    #[tokio::test]
    async fn dev_mode_creates_then_reuses_kek_and_ca() {
        let dir = tempfile::tempdir().unwrap();
        let source = ConfigSource::Dev {
            data_dir: dir.path().join("hub-dev"),
        };
        let first = Prepared::new(&source, &dev_overrides()).await.unwrap();
        let port = first.listener.local_addr().unwrap().port();
        assert_eq!(
            first.config.issuer.as_str(),
            format!("https://127.0.0.1:{port}")
        );
        let tls = ServerTls::from_config(&first.config.tls, &first.config.issuer).unwrap();
        let ca_file = tls.ca_cert_file.unwrap();
        assert_eq!(
            ca_file,
            dir.path().join("hub-dev").join(crate::tls::CA_CERT_FILE)
        );
        let ca = std::fs::read(&ca_file).unwrap();
        let kek = std::fs::read(dir.path().join("hub-dev").join("kek")).unwrap();
        drop(first);

        let second = Prepared::new(&source, &dev_overrides()).await.unwrap();
        let tls = ServerTls::from_config(&second.config.tls, &second.config.issuer).unwrap();
        assert_eq!(std::fs::read(tls.ca_cert_file.unwrap()).unwrap(), ca);
        assert_eq!(
            std::fs::read(dir.path().join("hub-dev").join("kek")).unwrap(),
            kek
        );
    }

    #[tokio::test]
    async fn forward_jwks_publishes_every_change() {
        let (source_tx, source_rx) = watch::channel(1_u32);
        let (sink_tx, mut sink_rx) = watch::channel(None);
        let task = forward_jwks(source_rx, sink_tx, |n| {
            serde_json::to_vec(&serde_json::json!({ "n": n }))
        });
        sink_rx.wait_for(Option::is_some).await.unwrap();
        source_tx.send_replace(2);
        let published = sink_rx
            .wait_for(|p| p.as_ref().is_some_and(|p| p.body.as_ref() == br#"{"n":2}"#))
            .await
            .unwrap()
            .clone();
        assert!(published.is_some());
        drop(source_tx);
        task.await.unwrap();
    }
}
