//! `tether-agent`: joins a spoke cluster to the Tether hub and runs the control loop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tether_agent::identity::IdentityStore;
use tether_agent::join::manifests::{DEFAULT_IMAGE, DEFAULT_NAMESPACE, InstallOptions};
use tether_agent::join::{self, JoinArgs};
use tether_agent::run::Agent;
use tether_agent::run::jwks_store::StateDir;
use tether_agent::run::proxy::{self, ApiserverSettings, ProxySettings};
use tether_agent::tls::HubAddr;
use tether_common::secret::Secret;
use tether_common::time::SystemClock;

/// mimalloc instead of glibc's malloc: the proxy allocates and frees small buffers (frames,
/// header maps, bodies) for every request, and glibc's free lists cost it ~11 % of its CPU
/// under load (`perf`, docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tether agent: joins a spoke cluster to the hub (`join`) and keeps it in sync with the
/// hub (`run`).
#[derive(Debug, Parser)]
#[command(name = "tether-agent", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register this spoke with the hub and install the agent into it.
    ///
    /// Run the command printed by `tetherctl cluster add NAME`, with a kubeconfig for the
    /// spoke. It checks the hub's certificate against --ca-hash before sending anything,
    /// checks that the kubeconfig may create what the agent needs (before the single-use
    /// token is spent), generates the agent's key in place, redeems the token for a
    /// hub-signed certificate, and applies the namespace, ServiceAccount, RBAC, identity
    /// Secret, Deployment and Service (server-side apply: re-running is safe).
    Join(JoinCli),
    /// Run the control loop: keep a stream to the hub, receive keys and revocations, send
    /// heartbeats, renew the certificate.
    ///
    /// The identity comes from --identity-dir (files tls.crt, tls.key, ca.crt, hub-ca.crt,
    /// hub-url, cluster; optional issuer, audience), or else from the Secret
    /// `tether-agent-identity` in --namespace (kubeconfig or in-cluster).
    Run(RunCli),
}

#[derive(Debug, Args)]
struct JoinCli {
    /// The hub's gRPC URL, e.g. https://hub.example:8443.
    #[arg(long, value_name = "URL")]
    hub: String,
    /// The one-time join token, ID.SECRET.
    #[arg(
        long,
        value_name = "ID.SECRET",
        env = "TETHER_JOIN_TOKEN",
        hide_env_values = true
    )]
    token: String,
    /// Pin of the hub's gRPC CA: sha256:<hex of SHA-256 of its SubjectPublicKeyInfo>.
    #[arg(long, value_name = "sha256:PIN")]
    ca_hash: String,
    /// This cluster's name, as given to `tetherctl cluster add`.
    #[arg(long, value_name = "NAME")]
    cluster: String,
    /// Kubeconfig for the spoke (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Namespace to install the agent into.
    #[arg(long, value_name = "NS", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// The agent's container image.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_IMAGE)]
    image: String,
    /// Print the manifests as YAML and change nothing. Contacts neither the hub nor the
    /// spoke and does NOT redeem the token: the identity Secret holds placeholders.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct RunCli {
    /// Read (and on renewal rewrite) the identity from files in this directory instead of
    /// the Secret.
    #[arg(long, value_name = "DIR", conflicts_with = "kubeconfig")]
    identity_dir: Option<PathBuf>,
    /// Kubeconfig used to read the identity Secret (default: $KUBECONFIG, ~/.kube/config,
    /// or in-cluster).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the identity Secret.
    #[arg(long, value_name = "NS", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Where jwks.json (last keys, used while the hub is down) and status.json are kept.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/tether")]
    state_dir: PathBuf,
    /// Serve Prometheus metrics (plain HTTP, /metrics) on this address: proxied requests
    /// by code and verb, latency, token cache hits/misses, open upgraded connections.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Address the impersonating proxy listens on (HTTPS).
    #[arg(long, value_name = "ADDR", default_value = proxy::DEFAULT_LISTEN)]
    proxy_listen: SocketAddr,
    /// A name (DNS or IP) clients use for the proxy: added to the generated certificate;
    /// the first one makes the default --proxy-url. Repeatable.
    #[arg(long = "proxy-host", value_name = "HOST")]
    proxy_hosts: Vec<String>,
    /// The proxy URL reported to the hub (default: https://<first --proxy-host>:<port>; in
    /// a pod without --proxy-host, the Service https://tether-agent.<ns>.svc:443).
    #[arg(long, value_name = "URL")]
    proxy_url: Option<String>,
    /// The proxy's certificate chain (PEM). Without it a proxy CA and certificate are
    /// generated in --state-dir and reused.
    #[arg(long, value_name = "FILE", requires = "proxy_key")]
    proxy_cert: Option<PathBuf>,
    /// The proxy's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "proxy_cert")]
    proxy_key: Option<PathBuf>,
    /// Threads serving proxy connections, each with its own upstream connection pool; a
    /// connection stays on one (default: the CPUs available, at most 8).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    proxy_workers: Option<u16>,
    /// The spoke's apiserver URL (default in a pod: KUBERNETES_SERVICE_HOST). Without it,
    /// outside a pod, the proxy is not started.
    #[arg(
        long,
        value_name = "URL",
        requires_all = ["apiserver_ca", "apiserver_token_file"]
    )]
    apiserver: Option<String>,
    /// CA bundle (PEM) of --apiserver: the only roots trusted.
    #[arg(long, value_name = "FILE", requires = "apiserver")]
    apiserver_ca: Option<PathBuf>,
    /// File holding the bearer token the proxy uses towards --apiserver (the agent's
    /// ServiceAccount); re-read when it changes.
    #[arg(long, value_name = "FILE", requires = "apiserver")]
    apiserver_token_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(tether_agent::log_writer::Stderr)
        // The default formatter's text, without `core::fmt` for plain fields (the audit
        // record of every proxied request).
        .fmt_fields(tether_agent::log_fields::Fields)
        // Colours only on a terminal (and never with NO_COLOR): logs in files and
        // pipes stay plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            // Bad arguments exit 64 (EX_USAGE), like clap's own usage errors do not: STYLE #6.
            match e.downcast_ref::<tether_agent::Error>() {
                Some(
                    tether_agent::Error::InvalidPin
                    | tether_agent::Error::InvalidHubUrl(_)
                    | tether_agent::Error::InvalidClusterName(_),
                ) => ExitCode::from(64),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The error and its causes, leaving out a cause already quoted by the message above it.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Join(args) => join_command(args).await,
        Command::Run(args) => run_command(args).await,
    }
}

async fn join_command(args: JoinCli) -> anyhow::Result<()> {
    join::validate_cluster_name(&args.cluster)?;
    let hub = HubAddr::parse(&args.hub)?;
    let pin = args
        .ca_hash
        .parse::<tether_common::pin::CaPin>()
        .map_err(|_| tether_agent::Error::InvalidPin)?;
    let install = InstallOptions {
        namespace: args.namespace,
        image: args.image,
    };
    if args.dry_run {
        print!("{}", join::dry_run(&args.cluster, hub.url(), &install)?);
        return Ok(());
    }
    let join_args = JoinArgs {
        hub,
        token: Secret::new(args.token),
        pin,
        cluster: args.cluster,
        kubeconfig: args.kubeconfig,
        install,
    };
    let identity = join::join(&join_args).await?;
    println!(
        "cluster {} joined {} and the agent is installed in namespace {}",
        identity.cluster, identity.hub_url, join_args.install.namespace
    );
    Ok(())
}

async fn run_command(args: RunCli) -> anyhow::Result<()> {
    // Install the recorder before anything records a metric.
    let metrics = match args.metrics_listen {
        Some(addr) => Some((addr, tether_agent::metrics_server::install()?)),
        None => None,
    };
    let store = match args.identity_dir {
        Some(dir) => IdentityStore::Dir(dir),
        None => {
            let client = join::install::client(args.kubeconfig.as_deref()).await?;
            IdentityStore::Secret(Box::new(kube::Api::namespaced(client, &args.namespace)))
        }
    };
    let state = StateDir::open(&args.state_dir)?;
    let clock = Arc::new(SystemClock);
    let (agent, published) = Agent::new(store, state, clock.clone())
        .await
        .context("cannot start the agent")?;
    let apiserver = match (args.apiserver, args.apiserver_ca, args.apiserver_token_file) {
        (Some(url), Some(ca), Some(token_file)) => Some(ApiserverSettings::Explicit {
            url,
            ca,
            token_file,
        }),
        _ if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
            Some(ApiserverSettings::InCluster)
        }
        _ => None,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopping = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut agent = agent;
    if let Some((addr, handle)) = metrics {
        let stop = stopping();
        tokio::spawn(async move {
            if let Err(e) = tether_agent::metrics_server::serve(addr, handle, stop).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    let mut proxy_task = None;
    match apiserver {
        Some(apiserver) => {
            let settings = ProxySettings {
                listen: args.proxy_listen,
                hosts: args.proxy_hosts,
                url: args.proxy_url,
                cert: args.proxy_cert.zip(args.proxy_key),
                namespace: args.namespace,
                state_dir: args.state_dir,
                apiserver,
                workers: args
                    .proxy_workers
                    .map_or_else(proxy::default_workers, usize::from),
            };
            let started = settings
                .start(&published, clock)
                .await
                .context("cannot start the proxy")?;
            agent = agent.with_proxy(started.url, started.ca_pem);
            proxy_task = Some(tokio::spawn(started.listener.serve(stopping())));
        }
        None => tracing::warn!(
            "not in a pod and no --apiserver: the proxy is not started (pass --apiserver, \
             --apiserver-ca and --apiserver-token-file to run it)"
        ),
    }
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.send_replace(true);
    });
    agent.run(stopping()).await;
    if let Some(task) = proxy_task {
        let _ = task.await;
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM (what Kubernetes sends a pod).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
