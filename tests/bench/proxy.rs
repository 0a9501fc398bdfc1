//! `tether-bench-proxy`: the agent's impersonating proxy against the spoke apiserver it fronts.
//!
//! Starts real processes on loopback (the IdP, a hub logging users in through it, etcd, a
//! spoke kube-apiserver, `tether-agent run` with its proxy, a TCP relay and HAProxy), then
//! measures:
//!
//! * latency and throughput of `GET /api/v1/namespaces/default/configmaps/bench` (or with
//!   `--list N` a list of N ConfigMaps of 1 KiB data each) on five paths, at concurrency 1,
//!   16 and 64 (or `--levels`) for a fixed time each:
//!   - DIRECT to the apiserver with the cluster admin client certificate;
//!   - RELAY: exactly the direct path's client (admin certificate, TLS end to end with the
//!     apiserver) through a plain TCP relay in its own process (this binary re-executed as
//!     `tether-bench-proxy relay`), which only copies bytes: no TLS, no HTTP. RELAY − DIRECT
//!     is the floor of any proxy in a separate process on this machine (two extra loopback
//!     hops and the wake-ups of one more process, no TLS or HTTP work);
//!   - HAPROXY: an industry reference, HAProxy (from the distribution, started here as
//!     `haproxy -f CONFIG -db` with a config written to the test directory) terminating TLS
//!     and HTTP/2 from the client and speaking HTTP/2 over TLS to the apiserver (verifying
//!     it), with the same header work as the proxy and nothing else: it drops the client's
//!     `Authorization`, `Impersonate-*` and `X-Remote-*` headers and adds the agent's
//!     ServiceAccount token and exactly the `Impersonate-*` headers the proxy sets for alice
//!     (fixed in the config, from alice's first token); no token verification, no audit, no
//!     logging. As many threads as the agent has proxy workers. The client sends alice's
//!     cluster token, as to the proxy (HAProxy discards it). PROXY − HAPROXY is what the
//!     agent costs beyond a best-in-class HTTP/2 reverse proxy doing the same rewrite;
//!   - IMPERSONATED DIRECT to the apiserver with the agent's own ServiceAccount token and
//!     exactly the `Impersonate-*` headers the proxy sets for alice (computed by the agent's
//!     own [`apply_identity`] from alice's token claims): what the apiserver does for a
//!     proxied request, without the agent;
//!   - PROXY through the agent with alice's cluster token (alice is in `k8s-admins`, bound
//!     to `cluster-admin`).
//!
//!   PROXY − IMPERSONATED is the agent's own cost, IMPERSONATED − DIRECT the apiserver's
//!   cost of the agent's token and the impersonation. Every path uses one HTTP/2 connection
//!   (one reqwest client each, prior knowledge over TLS). The measurement runs in rounds;
//!   each round runs every level on every path (the path order rotates per round), so
//!   background noise hits all paths alike, and the report gives the medians of the rounds.
//!   CPU time of the bench client, the agent, the relay, HAProxy, the apiserver and etcd is
//!   read from `/proc` around every run and reported per request. With `--pin`, the
//!   apiserver and etcd run on CPU 0 and the bench client, the agent, the relay and HAProxy
//!   on CPU 1 (a control plane on its own CPUs, the proxy on a worker node);
//! * the agent's resident memory idle and with N watches requested through the proxy
//!   (HTTP/2, [`STREAMS_PER_CONNECTION`] streams per connection), the open ones checked live
//!   by one change. Watches that get no response headers within 1 s are counted as stalled
//!   and kept pending while memory is sampled; a GET through the proxy probes whether the
//!   proxy still serves other requests meanwhile. Stalls are reported, not fatal.
//!
//! Run it through `scripts/bench-proxy`, which raises the open-file limit, installs HAProxy
//! if it is missing and builds the binaries. Every phase is bounded in time; the processes
//! (and the test directory) go away on drop, also on error or on SIGINT/SIGTERM.

#[path = "harness.rs"]
mod harness;
#[path = "procstat.rs"]
mod procstat;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use procstat::{Cpu, child_with_args, rss_median};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};
use tether_agent::proxy::auth::Identity;
use tether_agent::proxy::identity::apply_identity;
use tether_agent::proxy::impersonation::ImpersonationCheck;
use tether_agent::proxy::status::ProxyError;
use tether_agent::run::proxy::default_workers;
use tether_common::secret::Secret;
use tether_common::token::Claims;
use tether_e2e::{
    Agent, Ca, Cluster, ClusterOptions, Etcd, Hub, HubOptions, IdpClient, IdpOptions, LoginHub,
    Pkce, ProcessGuard, TestDir, UpstreamIdp, agent, form_login_via, free_port, workspace_bin,
    write_private,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The spoke's name (the client below may exchange for `spoke-*`).
const SPOKE: &str = "spoke-bench";
/// The confidential client used to log in and exchange.
const CLIENT_ID: &str = "bench";
const CLIENT_SECRET: &str = "bench-client-secret-0123456789abcdef";
/// Its registered redirect URI (nothing listens there: logins stop at it).
const REDIRECT_URI: &str = "http://127.0.0.1:9/bench/callback";
/// The user measured through the proxy (group `k8s-admins` at the IdP).
const USER: (&str, &str) = ("alice", "alice-pass");
/// The object read, and the collection watched.
const OBJECT_PATH: &str = "/api/v1/namespaces/default/configmaps/bench";
const WATCH_PATH: &str = "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=300";
/// RBAC on the spoke: alice's group bound to cluster-admin.
const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: bench-k8s-admins}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: k8s-admins}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: bench, namespace: default}
data: {replicas: "3", image: "registry.example/app:1.2.3", mode: "benchmark"}
"#;
/// With `--list N`: the namespace of the N ConfigMaps, the bytes of data in each, the most.
const LIST_NAMESPACE: &str = "bench-list";
const LIST_ITEM_BYTES: usize = 1024;
const MAX_LIST: u64 = 1000;
/// Concurrency levels measured by default.
const LEVELS: [usize; 3] = [1, 16, 64];
/// The most concurrent clients one level may have.
const MAX_CONCURRENCY: usize = 256;
/// Requests per path before measuring (at concurrency 16).
const WARMUP: usize = 500;
/// Pause between two runs, so that one run's stragglers do not land in the next.
const BETWEEN_RUNS: Duration = Duration::from_millis(300);
/// Upper bound for one request (a failed request fails the run).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for starting everything.
const SETUP_LIMIT: Duration = Duration::from_secs(240);
/// Upper bound for opening the watches (and for the open ones to see the change).
const WATCH_LIMIT: Duration = Duration::from_secs(60);
/// Watches opened at once.
const WATCH_OPEN_CONCURRENCY: usize = 64;
/// HTTP/2 streams per client connection for the watches (hyper's server allows 200).
const STREAMS_PER_CONNECTION: usize = 100;
/// Quiet time before memory is sampled.
const SETTLE: Duration = Duration::from_secs(2);
/// The most watches one run may open.
const MAX_WATCHES: u64 = 5_000;
/// The namespace and ServiceAccount of the agent (as `join` installs it).
const AGENT_SERVICE_ACCOUNT: &str = "tether-agent";
/// Upper bound for the relay to listen after it is started.
const RELAY_READY_LIMIT: Duration = Duration::from_secs(10);
/// The HAProxy program (Debian installs it in /usr/sbin; `scripts/bench-proxy` installs it).
const HAPROXY: &str = "haproxy";
/// Upper bound for `haproxy -v`, and for HAProxy to listen after it is started.
const HAPROXY_READY_LIMIT: Duration = Duration::from_secs(10);
/// The name HAProxy sends as SNI to the apiserver and checks its certificate against (the
/// spoke's serving certificate names 127.0.0.1 and localhost; HAProxy checks DNS names).
const HAPROXY_UPSTREAM_NAME: &str = "localhost";
/// HTTP/2 streams HAProxy allows per connection: as the agent's (hyper's) server.
const HAPROXY_H2_STREAMS: usize = 200;
/// HAProxy's `maxconn`, unless the open-file limit allows fewer (see [`haproxy_maxconn`]).
const HAPROXY_MAXCONN: u64 = 20_000;
/// Descriptors HAProxy keeps besides two per connection (listeners, pollers, pipes...).
const HAPROXY_FD_RESERVE: u64 = 256;
/// Upper bound for one `taskset` call.
const TASKSET_LIMIT: Duration = Duration::from_secs(10);
/// With `--pin`: the CPU of the apiserver and etcd, and that of the bench client, the agent,
/// the relay and HAProxy.
const CONTROL_PLANE_CPU: usize = 0;
const WORKER_CPU: usize = 1;

/// Added latency and throughput of the agent's proxy (against the apiserver direct, direct
/// with the proxy's impersonation, through a plain TCP relay: the floor of any proxy in a
/// separate process, and through HAProxy doing the same header rewrite), and its memory per
/// watch.
#[derive(Debug, Parser)]
#[command(name = "tether-bench-proxy", version, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
struct Args {
    /// Seconds measured per path, concurrency level and round (a cluster token lives 60 s;
    /// a fresh one is fetched before every proxy run).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=30))]
    seconds: u64,
    /// Rounds: each runs every level on every path; the report gives the medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    rounds: u64,
    /// Watches held open through the proxy for the memory figure.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_WATCHES))]
    watches: u64,
    /// Pin (every thread, with `taskset`) kube-apiserver and etcd to CPU 0 and the bench
    /// client, the agent, the relay and HAProxy to CPU 1, once the processes are up: the
    /// apiserver on its own control-plane CPU, the proxy on a worker. Needs at least 2 CPUs.
    #[arg(long)]
    pin: bool,
    /// Concurrency levels, comma-separated (each 1 to 256), e.g. `--levels 1` to profile the
    /// agent with one client only.
    #[arg(long, value_delimiter = ',', default_values_t = LEVELS, value_parser = parse_level)]
    levels: Vec<usize>,
    /// Measure a list of N ConfigMaps of [`LIST_ITEM_BYTES`] each (`GET` of the namespace
    /// [`LIST_NAMESPACE`]'s ConfigMaps, created at start) instead of a `GET` of one small
    /// ConfigMap: a response the size of a typical `kubectl get`. 0 (the default): off.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=MAX_LIST))]
    list: u64,
    /// Internal modes of this binary (hidden).
    #[command(subcommand)]
    mode: Option<Mode>,
}

/// What this binary runs as besides the benchmark.
#[derive(Debug, Subcommand)]
enum Mode {
    /// The plain TCP relay of the relay path (started by the benchmark itself): copies bytes
    /// between each accepted connection and a new one to UPSTREAM, TCP_NODELAY on both, on
    /// one thread; exits when its stdin hits EOF (the benchmark holds the other end).
    #[command(hide = true)]
    Relay {
        /// Where to accept connections.
        #[arg(long)]
        listen: SocketAddr,
        /// Where to forward each of them.
        #[arg(long)]
        upstream: SocketAddr,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.mode {
        Some(Mode::Relay { listen, upstream }) => relay_main(listen, upstream),
        None => harness::main_with("tether-bench-proxy", run(&args)),
    }
}

/// The whole benchmark: processes, latency levels, watches, report.
async fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let watches = usize::try_from(args.watches).context("--watches")?;
    let rounds = usize::try_from(args.rounds).context("--rounds")?;
    let duration = Duration::from_secs(args.seconds);
    let workload = Workload::new(usize::try_from(args.list).context("--list")?);
    // Read before any pinning: afterwards this process may use one CPU only.
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    if args.pin {
        ensure!(
            cores >= 2,
            "--pin needs at least 2 CPUs (CPU {CONTROL_PLANE_CPU} for the apiserver and etcd, \
             CPU {WORKER_CPU} for the rest); this process may use {cores}"
        );
    }
    let stack = tokio::time::timeout(SETUP_LIMIT, Stack::start())
        .await
        .map_err(|_| anyhow!("starting the processes took longer than {SETUP_LIMIT:?}"))??;
    let setup = started.elapsed();
    eprintln!(
        "stack up in {setup:.1?}; agent pid {}, relay pid {}, haproxy pid {} ({})",
        stack.agent_pid,
        stack.relay.pid,
        stack.haproxy.pid,
        stack.haproxy.describe()
    );
    workload.create(&stack.spoke).await?;
    let pinning = if args.pin {
        let pinning = pin(&stack).await?;
        eprintln!("pinned: {pinning}");
        Some(pinning)
    } else {
        None
    };
    let result = measure(&stack, &workload, &args.levels, duration, rounds, watches).await;
    if result.is_err() {
        eprintln!(
            "--- last lines of the agent log ---\n{}",
            stack.agent.process().log_tail(30)
        );
    }
    let mut report = result?;
    report.setup = setup;
    report.wall = started.elapsed();
    report.cores = cores;
    report.pinning = pinning;
    report.haproxy_version.clone_from(&stack.haproxy.version);
    report.haproxy_threads = stack.haproxy.threads;
    report.print(duration, &stack.agent_bin, &workload);
    Ok(())
}

/// One `--levels` entry: a number of concurrent clients, 1 to [`MAX_CONCURRENCY`].
fn parse_level(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a number of concurrent clients from 1 to {MAX_CONCURRENCY}"
        )),
    }
}

/// Pins (every thread of) the apiserver and etcd to [`CONTROL_PLANE_CPU`] and this process,
/// the agent, the relay and HAProxy to [`WORKER_CPU`]; threads created later inherit the affinity of
/// their creator. The hub and the IdP, idle during the runs, are left alone. Returns what it
/// did, for the report.
async fn pin(stack: &Stack) -> Result<String> {
    let apiserver = stack.apiserver_pid()?;
    let etcd = stack.etcd_pid()?;
    let control_plane = [("kube-apiserver", apiserver), ("etcd", etcd)];
    let worker = [
        ("bench client", std::process::id()),
        ("agent", stack.agent_pid),
        ("relay", stack.relay.pid),
        ("haproxy", stack.haproxy.pid),
    ];
    for (cpu, procs) in [
        (CONTROL_PLANE_CPU, &control_plane[..]),
        (WORKER_CPU, &worker[..]),
    ] {
        for (name, pid) in procs {
            taskset(cpu, *pid)
                .await
                .with_context(|| format!("pinning {name} (pid {pid}) to CPU {cpu}"))?;
        }
    }
    let list = |procs: &[(&str, u32)]| {
        procs
            .iter()
            .map(|(name, pid)| format!("{name} ({pid})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "CPU {CONTROL_PLANE_CPU}: {}; CPU {WORKER_CPU}: {} (hub and IdP unpinned)",
        list(&control_plane),
        list(&worker)
    ))
}

/// `taskset -a -p -c CPU PID`: every current thread of `pid` to `cpu` only.
async fn taskset(cpu: usize, pid: u32) -> Result<()> {
    let run = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TASKSET_LIMIT, run)
        .await
        .map_err(|_| anyhow!("taskset took longer than {TASKSET_LIMIT:?}"))?
        .context("running taskset (util-linux)")?;
    ensure!(
        out.status.success(),
        "taskset -a -p -c {cpu} {pid}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Every phase, in order.
async fn measure(
    stack: &Stack,
    workload: &Workload,
    concurrency_levels: &[usize],
    duration: Duration,
    rounds: usize,
    watches: usize,
) -> Result<Report> {
    tokio::time::sleep(SETTLE).await;
    let idle_kib = rss_median(stack.agent_pid).await?;
    eprintln!("agent RSS idle {idle_kib} KiB; warming up ...");

    let token = stack.cluster_token().await?;
    // Indexed by `Path`.
    let mut routes = [
        Route::direct(&stack.spoke)?,
        Route::impersonated(stack, &token).await?,
        Route::proxy(stack, &token)?,
        Route::relay(stack)?,
        Route::haproxy(stack, &token)?,
    ];
    for route in &routes {
        route.warm_up(workload).await?;
    }
    let cpu = Procs::new(stack)?;

    // runs[level][path]: one Run per round.
    let mut runs: Vec<[Vec<Run>; PATHS.len()]> = concurrency_levels
        .iter()
        .map(|_| Default::default())
        .collect();
    for round in 0..rounds {
        for (li, &concurrency) in concurrency_levels.iter().enumerate() {
            for offset in 0..PATHS.len() {
                let path = PATHS[(round + offset) % PATHS.len()];
                if path == Path::Proxy {
                    // Cluster tokens live 60 s in this hub: a fresh one for every proxy run,
                    // and the impersonated path follows the same identity.
                    let token = stack.cluster_token().await?;
                    routes[Path::Proxy as usize].set_bearer(&token)?;
                    routes[Path::Impersonated as usize]
                        .set_impersonation(&stack.agent_sa_token, &token)
                        .await?;
                }
                tokio::time::sleep(BETWEEN_RUNS).await;
                let before = cpu.seconds()?;
                let sample = routes[path as usize]
                    .run_level(workload, concurrency, duration)
                    .await?;
                let after = cpu.seconds()?;
                let run = Run::new(sample, before, after);
                eprintln!(
                    "round {}/{rounds} c={concurrency:<3} {:<12} p50 {:.3} ms p99 {:.3} ms {:>6.0} req/s; \
                     CPU µs/req client {:.0} agent {:.0} relay {:.0} haproxy {:.0} apiserver {:.0} etcd {:.0}",
                    round + 1,
                    path.name(),
                    run.p50_ms,
                    run.p99_ms,
                    run.req_per_s,
                    run.cpu_us_per_request[0],
                    run.cpu_us_per_request[1],
                    run.cpu_us_per_request[2],
                    run.cpu_us_per_request[3],
                    run.cpu_us_per_request[4],
                    run.cpu_us_per_request[5],
                );
                runs[li][path as usize].push(run);
            }
        }
    }
    drop(routes);
    let levels = concurrency_levels
        .iter()
        .copied()
        .zip(runs)
        .map(|(concurrency, runs)| Level::new(concurrency, runs))
        .collect();

    tokio::time::sleep(SETTLE).await;
    let after_requests_kib = rss_median(stack.agent_pid).await?;
    eprintln!(
        "agent RSS after the request runs {after_requests_kib} KiB; opening {watches} watches ..."
    );
    let memory = watch_memory(stack, watches, after_requests_kib).await?;
    Ok(Report {
        idle_kib,
        rounds,
        levels,
        memory,
        setup: Duration::ZERO,
        wall: Duration::ZERO,
        cores: 0,
        pinning: None,
        haproxy_version: String::new(),
        haproxy_threads: 0,
    })
}

/// What every measured request reads: the small ConfigMap `bench`, or with `--list N` the
/// list of N ConfigMaps in [`LIST_NAMESPACE`].
#[derive(Debug)]
struct Workload {
    /// 0: the one object.
    list: usize,
    path: String,
}

impl Workload {
    fn new(list: usize) -> Self {
        let path = if list == 0 {
            OBJECT_PATH.to_owned()
        } else {
            format!("/api/v1/namespaces/{LIST_NAMESPACE}/configmaps")
        };
        Self { list, path }
    }

    /// The path and query every measured request gets.
    fn path(&self) -> &str {
        &self.path
    }

    /// For the report.
    fn describe(&self) -> String {
        if self.list == 0 {
            format!("GET {}", self.path)
        } else {
            format!(
                "GET {} (a list of {} ConfigMaps with {LIST_ITEM_BYTES} bytes of data each)",
                self.path, self.list
            )
        }
    }

    /// Creates the list's namespace and ConfigMaps on the spoke (nothing for the one object,
    /// which the stack creates).
    async fn create(&self, spoke: &Cluster) -> Result<()> {
        if self.list == 0 {
            return Ok(());
        }
        let value = "x".repeat(LIST_ITEM_BYTES);
        let items: Vec<Value> = (0..self.list)
            .map(|i| {
                json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": format!("item-{i:04}"), "namespace": LIST_NAMESPACE},
                    "data": {"value": value},
                })
            })
            .collect();
        let namespace = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": LIST_NAMESPACE},
        });
        // One `List`, the namespace first; `create`, not `apply`, so that no item carries a
        // copy of itself in a last-applied annotation.
        let list = json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": std::iter::once(namespace).chain(items).collect::<Vec<_>>(),
        });
        let out = spoke
            .kubectl_with(&["create", "-f", "-"], &[], Some(&list.to_string()))
            .await?;
        ensure!(
            out.success(),
            "creating {} ConfigMaps in {LIST_NAMESPACE}: kubectl create: {}",
            self.list,
            out.stderr
        );
        eprintln!("created {} ConfigMaps in {LIST_NAMESPACE}", self.list);
        Ok(())
    }

    /// Whether `body` is what this workload reads.
    fn check(&self, body: &Value) -> Result<()> {
        if self.list == 0 {
            ensure!(
                body["data"]["mode"] == "benchmark",
                "unexpected object {body}"
            );
            return Ok(());
        }
        let items = body["items"]
            .as_array()
            .with_context(|| format!("not a list: {}", body["kind"]))?;
        ensure!(
            items.len() == self.list,
            "{} items, expected {}",
            items.len(),
            self.list
        );
        ensure!(
            items
                .iter()
                .all(|i| i["data"]["value"].as_str().map(str::len) == Some(LIST_ITEM_BYTES)),
            "an item without its {LIST_ITEM_BYTES} bytes of data"
        );
        Ok(())
    }
}

/// The processes whose CPU time is read around every run, in [`CPU_NAMES`] order.
#[derive(Debug)]
struct Procs([Cpu; PROCS]);

/// How many processes [`Procs`] reads.
const PROCS: usize = 6;
/// What [`Procs`] reads, in order.
const CPU_NAMES: [&str; PROCS] = [
    "bench client",
    "agent",
    "relay",
    "haproxy",
    "apiserver",
    "etcd",
];
/// The agent's, the relay's and HAProxy's index in [`CPU_NAMES`].
const AGENT_CPU: usize = 1;
const RELAY_CPU: usize = 2;
const HAPROXY_CPU: usize = 3;

impl Procs {
    /// This process, the agent, the relay, HAProxy, the spoke's apiserver and etcd.
    fn new(stack: &Stack) -> Result<Self> {
        Ok(Self([
            Cpu::new(std::process::id())?,
            Cpu::new(stack.agent_pid)?,
            Cpu::new(stack.relay.pid)?,
            Cpu::new(stack.haproxy.pid)?,
            Cpu::new(stack.apiserver_pid()?)?,
            Cpu::new(stack.etcd_pid()?)?,
        ]))
    }

    /// CPU seconds used so far by each.
    fn seconds(&self) -> Result<[f64; PROCS]> {
        let mut out = [0.0; PROCS];
        for (slot, cpu) in out.iter_mut().zip(&self.0) {
            *slot = cpu.seconds()?;
        }
        Ok(out)
    }
}

/// The processes, in drop order: HAProxy, the relay and the agent first, the test directory
/// last.
#[derive(Debug)]
struct Stack {
    haproxy: Haproxy,
    relay: Relay,
    agent: Agent,
    spoke: Cluster,
    _etcd: Etcd,
    hub: Hub,
    _idp: UpstreamIdp,
    _dir: TestDir,
    agent_pid: u32,
    agent_bin: PathBuf,
    proxy_url: String,
    proxy_ca_pem: String,
    /// A token of the agent's ServiceAccount, like the one the agent forwards with.
    agent_sa_token: Secret,
}

impl Stack {
    /// IdP, hub with login, etcd, spoke (RBAC, the configmap), join, agent with its proxy,
    /// relay, HAProxy.
    async fn start() -> Result<Self> {
        tether_e2e::http::init_crypto();
        let dir = TestDir::new("bench-proxy")?;
        let port = free_port()?;
        let hub_url = format!("https://127.0.0.1:{port}");
        let upstream_secret = "upstream-secret";
        let idp = UpstreamIdp::start(
            &dir,
            IdpOptions::new().client(IdpClient::new(
                tether_e2e::UPSTREAM_CLIENT_ID,
                upstream_secret,
                &[&format!("{hub_url}/callback")],
            )),
        )
        .await?;
        let hash = tether_hub::clients::hash_secret(&Secret::new(CLIENT_SECRET));
        let login = LoginHub {
            port,
            idp_issuer: idp.issuer().to_owned(),
            upstream_secret: upstream_secret.into(),
            recheck_interval: "5m".into(),
            cluster_token_lifetime: "60s".into(),
            clock_skew: "30s".into(),
            extra_yaml: format!(
                r#"clients:
  - id: {CLIENT_ID}
    kind: confidential
    secret_hash: "{hash}"
    redirect_uris: ["{REDIRECT_URI}"]
    token_exchange: ["spoke-*"]
"#
            ),
        };
        let hub = Hub::start(&dir, HubOptions::with_login("hub", &login)?).await?;
        let etcd = Etcd::start(&dir).await?;
        let spoke = Cluster::start(&dir, ClusterOptions::new(SPOKE).etcd(&etcd)).await?;
        spoke.apply_yaml(RBAC).await?;
        let admin = hub.admin_token().await?;
        let words = agent::add_cluster(&hub, &admin, SPOKE, &[]).await?;
        let joined = agent::join(&words, &spoke).await?;
        ensure!(joined.success(), "tether-agent join: {}", joined.stderr);
        let proxy_port = free_port()?;
        let mut agent = Agent::start_with_proxy(&dir, &spoke, proxy_port).await?;
        agent
            .wait_connected(true, Duration::from_secs(60))
            .await
            .context("waiting for the agent to connect to the hub")?;
        let ca_file = agent.proxy_ca_file();
        let proxy_ca_pem = std::fs::read_to_string(&ca_file)
            .with_context(|| format!("reading {}", ca_file.display()))?;
        let agent_pid = agent.process().pid();
        // The same kind of credential the fixture hands the agent (a TokenRequest token of
        // its ServiceAccount), for the impersonated-direct path.
        let agent_sa_token = spoke
            .kubectl_ok(&[
                "create",
                "token",
                AGENT_SERVICE_ACCOUNT,
                "-n",
                agent::AGENT_NAMESPACE,
                "--duration",
                "2h",
            ])
            .await?;
        let agent_sa_token = Secret::new(agent_sa_token.trim());
        let relay = Relay::start(spoke.port()).await?;
        // HAProxy's headers are fixed in its config: those of alice's first token (the
        // session id extra differs from later tokens' only in its value).
        let headers = impersonation_headers(&agent_sa_token, &cluster_token(&hub).await?).await?;
        // The agent was started without --proxy-workers, from this process (same CPUs).
        let haproxy = Haproxy::start(&dir, &spoke, default_workers(), &headers).await?;
        Ok(Self {
            haproxy,
            relay,
            agent,
            spoke,
            _etcd: etcd,
            hub,
            _idp: idp,
            _dir: dir,
            agent_pid,
            agent_bin: workspace_bin("tether-agent")?,
            proxy_url: format!("https://127.0.0.1:{proxy_port}"),
            proxy_ca_pem,
            agent_sa_token,
        })
    }

    /// The pid of the spoke's kube-apiserver (a child of this process, found by its port).
    fn apiserver_pid(&self) -> Result<u32> {
        child_with_args(&[&format!("--secure-port={}", self.spoke.port())])
    }

    /// The pid of the spoke's etcd (a child of this process, found by its client URL).
    fn etcd_pid(&self) -> Result<u32> {
        child_with_args(&["--listen-client-urls", &self.spoke.etcd().url()])
    }

    /// alice's token for the spoke (see [`cluster_token`]).
    async fn cluster_token(&self) -> Result<String> {
        cluster_token(&self.hub).await
    }
}

/// alice's token for the spoke: authorize at `hub`, form login at the IdP, code redemption,
/// then token exchange with `audience=SPOKE`.
async fn cluster_token(hub: &Hub) -> Result<String> {
    let pkce = Pkce::new()?;
    let mut authorize = url::Url::parse(&format!("{}/authorize", hub.url()))?;
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid profile groups")
        .append_pair("state", "st-bench")
        .append_pair("nonce", "n-bench")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    let callback =
        form_login_via(hub.http(), authorize.as_str(), USER.0, USER.1, REDIRECT_URI).await?;
    let query: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
    let code = query
        .get("code")
        .with_context(|| format!("no code in the callback {callback}"))?;
    let tokens = token(
        hub,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &pkce.verifier),
        ],
    )
    .await?;
    let access = tokens["access_token"]
        .as_str()
        .context("no access_token in the code redemption")?;
    let exchanged = token(
        hub,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", access),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("audience", SPOKE),
        ],
    )
    .await?;
    exchanged["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token in the token exchange")
}

/// POSTs `form` to `hub`'s token endpoint as the bench client; the JSON of a 200.
async fn token(hub: &Hub, form: &[(&str, &str)]) -> Result<Value> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let resp = hub
        .http()
        .post(format!("{}/token", hub.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .body(body)
        .send()
        .await
        .context("POST /token")?;
    let status = resp.status();
    let json: Value = resp.json().await.context("reading the token response")?;
    ensure!(status.is_success(), "POST /token: {status}: {json}");
    Ok(json)
}

/// The TCP relay of the relay path: this binary re-executed as `tether-bench-proxy relay`.
/// Killed on drop; it also exits by itself when its stdin (held here) hits EOF, so it never
/// outlives the benchmark, however that ends.
#[derive(Debug)]
struct Relay {
    _child: Child,
    pid: u32,
    /// `https://127.0.0.1:PORT`: the apiserver's certificate names 127.0.0.1, so the direct
    /// path's client verifies it through the relay as it does direct.
    url: String,
}

impl Relay {
    /// Starts the relay to the apiserver on `upstream_port`; waits until it accepts
    /// connections (at most [`RELAY_READY_LIMIT`]).
    async fn start(upstream_port: u16) -> Result<Self> {
        let port = free_port()?;
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let exe = std::env::current_exe().context("locating this binary to start the relay")?;
        let mut child = Command::new(&exe)
            .arg("relay")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--upstream")
            .arg(upstream.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the relay ({} relay)", exe.display()))?;
        let pid = child.id().context("the relay exited at once")?;
        let deadline = Instant::now() + RELAY_READY_LIMIT;
        loop {
            if let Some(status) = child.try_wait().context("polling the relay")? {
                bail!("the relay exited before listening on {listen}: {status}");
            }
            // The probe connection is relayed to the apiserver and closed at once.
            let probe = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(listen));
            if let Ok(Ok(_)) = probe.await {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the relay did not listen on {listen} within {RELAY_READY_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            _child: child,
            pid,
            url: format!("https://{listen}"),
        })
    }
}

/// The relay mode: [`relay`] on a single-threaded runtime, until stdin hits EOF.
fn relay_main(listen: SocketAddr, upstream: SocketAddr) -> ExitCode {
    // The benchmark holds the write end of stdin: EOF means it is gone (whatever killed it),
    // and the relay goes too. A plain thread, blocked in read(2), uses no CPU meanwhile.
    let watcher = std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(|| {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0_u8; 64];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => std::process::exit(0),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => std::process::exit(0),
                }
            }
        });
    if let Err(e) = watcher {
        eprintln!("tether-bench-proxy relay: cannot watch stdin: {e}");
        return ExitCode::FAILURE;
    }
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(relay(listen, upstream)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether-bench-proxy relay: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Accepts on `listen` and relays each connection to `upstream` (runs until killed).
async fn relay(listen: SocketAddr, upstream: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(relay_one(client, upstream));
            }
            Err(e) => {
                // E.g. out of file descriptors: later accepts may succeed again.
                eprintln!("tether-bench-proxy relay: accepting on {listen}: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Copies bytes both ways between `client` and a new connection to `upstream`, TCP_NODELAY
/// on both, until either side closes or fails; both are closed on return.
async fn relay_one(mut client: TcpStream, upstream: SocketAddr) {
    let connected = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(upstream)).await;
    let mut server = match connected {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => {
            eprintln!("tether-bench-proxy relay: connecting to {upstream}: {e}");
            return;
        }
        Err(_) => {
            eprintln!(
                "tether-bench-proxy relay: connecting to {upstream}: no answer in {REQUEST_TIMEOUT:?}"
            );
            return;
        }
    };
    if client.set_nodelay(true).is_err() || server.set_nodelay(true).is_err() {
        return;
    }
    // Resets at the end of the benchmark are expected: errors just close both sides.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// HAProxy of the haproxy path: `haproxy -f CONFIG -db` (foreground, no daemon) with the
/// config [`haproxy_config`] writes, in its own process group, logging (startup warnings and
/// errors only) to `haproxy.log` in the test directory. Stopped, and waited for, on drop.
#[derive(Debug)]
struct Haproxy {
    _process: ProcessGuard,
    pid: u32,
    /// `https://127.0.0.1:PORT`.
    url: String,
    /// The CA of HAProxy's serving certificate (made here), for the client.
    ca_pem: String,
    /// `nbthread`.
    threads: usize,
    /// The first line of `haproxy -v`.
    version: String,
}

impl Haproxy {
    /// Writes a serving certificate (its own CA, for 127.0.0.1 and localhost) and the config
    /// (both mode 0600: a key, a token) to `dir`, starts HAProxy with `threads` threads in
    /// front of `spoke`'s apiserver adding `headers` to every request, and waits until it
    /// accepts connections (at most [`HAPROXY_READY_LIMIT`]).
    async fn start(
        dir: &TestDir,
        spoke: &Cluster,
        threads: usize,
        headers: &HeaderMap,
    ) -> Result<Self> {
        let version = haproxy_version().await?;
        let ca = Ca::new("tether-bench-proxy haproxy CA")?;
        let serving = ca.issue_server("127.0.0.1", &["127.0.0.1", "localhost"])?;
        let pem = dir.path().join("haproxy.pem");
        write_private(
            &pem,
            format!("{}\n{}", serving.cert_pem, serving.key_pem).as_bytes(),
        )?;
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let config = haproxy_config(&HaproxyConfig {
            threads,
            maxconn: haproxy_maxconn()?,
            listen,
            pem: &pem,
            upstream: SocketAddr::from(([127, 0, 0, 1], spoke.port())),
            upstream_ca: &spoke.ca_file(),
            headers,
        })?;
        let config_file = dir.path().join("haproxy.cfg");
        write_private(&config_file, config.as_bytes())?;
        let mut cmd = std::process::Command::new(HAPROXY);
        cmd.arg("-f").arg(&config_file).arg("-db");
        let mut process = ProcessGuard::spawn("haproxy", cmd, dir, "haproxy.log")?;
        // The probe connection is closed at once, before any TLS: HAProxy logs nothing.
        process
            .wait_ready(
                &format!("a TCP connection to {listen}"),
                HAPROXY_READY_LIMIT,
                || async move { TcpStream::connect(listen).await.is_ok() },
            )
            .await?;
        // Warnings (e.g. an open-file limit too low for maxconn) go to the log: show them.
        let log = process.log_tail(20);
        if !log.trim().is_empty() {
            eprintln!("haproxy says:\n{log}");
        }
        Ok(Self {
            pid: process.pid(),
            _process: process,
            url: format!("https://{listen}"),
            ca_pem: ca.cert_pem(),
            threads,
            version,
        })
    }

    /// Its version and thread count, for the report.
    fn describe(&self) -> String {
        format!("{}, nbthread {}", self.version, self.threads)
    }
}

/// The first line of `haproxy -v` (e.g. `HAProxy version 2.6.12-1+deb12u4 ...`); a clear
/// error if HAProxy is not installed.
async fn haproxy_version() -> Result<String> {
    let run = Command::new(HAPROXY)
        .arg("-v")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(HAPROXY_READY_LIMIT, run).await {
        Err(_) => bail!("`{HAPROXY} -v` took longer than {HAPROXY_READY_LIMIT:?}"),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{HAPROXY} is not on PATH (Debian installs it in /usr/sbin): the haproxy path needs \
             it; scripts/bench-proxy installs it (apt-get install haproxy)"
        ),
        Ok(Err(e)) => return Err(e).context(format!("running `{HAPROXY} -v`")),
        Ok(Ok(out)) => out,
    };
    ensure!(
        out.status.success(),
        "`{HAPROXY} -v`: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default().trim();
    ensure!(!first.is_empty(), "`{HAPROXY} -v` printed nothing");
    // `HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/`: up to the date.
    Ok(first.split(" - ").next().unwrap_or(first).to_owned())
}

/// HAProxy's `maxconn`: [`HAPROXY_MAXCONN`], or fewer if the open-file limit it inherits
/// cannot hold two descriptors per connection (HAProxy refuses to start then: its
/// `strict-limits` is on by default; `scripts/bench-proxy` sets the limit to 16384). The
/// bench opens a handful of connections: either is far from a bottleneck.
fn haproxy_maxconn() -> Result<u64> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    // HAProxy may raise its soft limit up to the hard one.
    let fds = limit.maximum.unwrap_or(u64::MAX);
    let maxconn = HAPROXY_MAXCONN.min(fds.saturating_sub(HAPROXY_FD_RESERVE) / 2);
    ensure!(
        maxconn >= 100,
        "the open-file limit ({fds}) is too low for HAProxy; raise it (ulimit -n)"
    );
    Ok(maxconn)
}

/// What [`haproxy_config`] needs.
#[derive(Debug)]
struct HaproxyConfig<'a> {
    /// `nbthread`.
    threads: usize,
    /// `maxconn`.
    maxconn: u64,
    /// Where HAProxy terminates the client's TLS.
    listen: SocketAddr,
    /// Its serving certificate and key (one PEM file).
    pem: &'a std::path::Path,
    /// The apiserver.
    upstream: SocketAddr,
    /// The CA the apiserver's certificate must chain to.
    upstream_ca: &'a std::path::Path,
    /// Added to every request after the client's credentials are dropped.
    headers: &'a HeaderMap,
}

/// HAProxy's config for the haproxy path: TLS (ALPN h2, http/1.1) on `listen`; the client's
/// `Authorization`, `Impersonate-*` and `X-Remote-*` headers dropped (as the proxy's
/// `apply_identity` does), then every one of `headers` added; HTTP/2 over verified TLS to the
/// apiserver, connections reused. No `log` line: HAProxy logs nothing per request (the
/// agent's audit has no counterpart here).
fn haproxy_config(c: &HaproxyConfig<'_>) -> Result<String> {
    let mut rewrite = String::new();
    for (name, value) in c.headers {
        let value = value
            .to_str()
            .ok()
            .with_context(|| format!("header {name}: a value that is not visible ASCII"))?;
        rewrite.push_str(&format!(
            "    http-request add-header {} {}\n",
            haproxy_quote(&format!("header name {name}"), name.as_str(), false)?,
            haproxy_quote(&format!("the value of header {name}"), value, true)?,
        ));
    }
    let pem = haproxy_quote("the certificate path", &c.pem.to_string_lossy(), false)?;
    let ca = haproxy_quote("the CA path", &c.upstream_ca.to_string_lossy(), false)?;
    Ok(format!(
        "# Written by tether-bench-proxy for its haproxy path. Holds a ServiceAccount token.
global
    nbthread {threads}
    maxconn {maxconn}
    tune.h2.max-concurrent-streams {HAPROXY_H2_STREAMS}

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
    option http-keep-alive

frontend bench
    bind {listen} ssl crt {pem} alpn h2,http/1.1
    http-request del-header authorization
    http-request del-header impersonate- -m beg
    http-request del-header x-remote- -m beg
{rewrite}    default_backend apiserver

backend apiserver
    http-reuse always
    server api {upstream} ssl verify required ca-file {ca} alpn h2 sni str({HAPROXY_UPSTREAM_NAME})
",
        threads = c.threads,
        maxconn = c.maxconn,
        listen = c.listen,
        upstream = c.upstream,
    ))
}

/// `s` as one word of HAProxy's config: in single quotes, inside which HAProxy interprets
/// nothing; with `log_format` (an `add-header` value is a log-format string) `%` doubled. Only
/// visible ASCII and spaces, without `'`, can be quoted so; anything else is an error naming
/// `what` (never the value: it may be a token).
fn haproxy_quote(what: &str, s: &str, log_format: bool) -> Result<String> {
    ensure!(
        !s.is_empty(),
        "{what} is empty: HAProxy's config cannot carry it"
    );
    if let Some((i, c)) = s
        .char_indices()
        .find(|&(_, c)| !(c == ' ' || c.is_ascii_graphic()) || c == '\'')
    {
        bail!("{what}: character {c:?} at byte {i} cannot be quoted safely in HAProxy's config");
    }
    let s = if log_format {
        s.replace('%', "%%")
    } else {
        s.to_owned()
    };
    Ok(format!("'{s}'"))
}

/// The five ways to the configmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Straight to the apiserver with the cluster admin client certificate.
    Direct = 0,
    /// Straight to the apiserver as the agent would send it: the agent's ServiceAccount
    /// token and the proxy's `Impersonate-*` headers for alice.
    Impersonated = 1,
    /// Through the agent's proxy with alice's cluster token.
    Proxy = 2,
    /// The direct path's client through a plain TCP relay in its own process.
    Relay = 3,
    /// Through HAProxy with alice's cluster token, which HAProxy replaces by what the
    /// impersonated path sends.
    Haproxy = 4,
}

/// Every path, in the order of the first round (later rounds rotate it) and of the tables.
const PATHS: [Path; 5] = [
    Path::Direct,
    Path::Relay,
    Path::Haproxy,
    Path::Impersonated,
    Path::Proxy,
];

/// The throughput ratios reported (numerator, denominator), in table order.
const RATIOS: [(Path, Path); 7] = [
    (Path::Relay, Path::Direct),
    (Path::Haproxy, Path::Direct),
    (Path::Impersonated, Path::Direct),
    (Path::Proxy, Path::Direct),
    (Path::Proxy, Path::Relay),
    (Path::Proxy, Path::Haproxy),
    (Path::Proxy, Path::Impersonated),
];

impl Path {
    /// Its name in the JSON summary and the progress lines.
    fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Impersonated => "impersonated",
            Self::Proxy => "proxy",
            Self::Relay => "relay",
            Self::Haproxy => "haproxy",
        }
    }

    /// Its three-letter name in the table columns.
    fn short(self) -> &'static str {
        match self {
            Self::Direct => "dir",
            Self::Impersonated => "imp",
            Self::Proxy => "prx",
            Self::Relay => "rel",
            Self::Haproxy => "hap",
        }
    }
}

/// One way to the apiserver: a client (one HTTP/2 connection), a base URL and the headers
/// every request carries (credentials, impersonation).
#[derive(Debug)]
struct Route {
    path: Path,
    client: reqwest::Client,
    base: String,
    headers: HeaderMap,
}

impl Route {
    /// Straight to the apiserver with the cluster admin client certificate.
    fn direct(spoke: &Cluster) -> Result<Self> {
        let cert = spoke.admin_cert();
        Ok(Self {
            path: Path::Direct,
            client: h2_client(&spoke.ca_pem(), Some((&cert.cert_pem, &cert.key_pem)))?,
            base: spoke.api_url(),
            headers: HeaderMap::new(),
        })
    }

    /// The direct path's client (admin certificate, TLS end to end with the apiserver)
    /// through the relay.
    fn relay(stack: &Stack) -> Result<Self> {
        let cert = stack.spoke.admin_cert();
        Ok(Self {
            path: Path::Relay,
            client: h2_client(&stack.spoke.ca_pem(), Some((&cert.cert_pem, &cert.key_pem)))?,
            base: stack.relay.url.clone(),
            headers: HeaderMap::new(),
        })
    }

    /// Straight to the apiserver with the agent's ServiceAccount token and the headers the
    /// proxy sets for the holder of `cluster_token`.
    async fn impersonated(stack: &Stack, cluster_token: &str) -> Result<Self> {
        let mut route = Self {
            path: Path::Impersonated,
            client: h2_client(&stack.spoke.ca_pem(), None)?,
            base: stack.spoke.api_url(),
            headers: HeaderMap::new(),
        };
        route
            .set_impersonation(&stack.agent_sa_token, cluster_token)
            .await?;
        Ok(route)
    }

    /// Through the agent's proxy with alice's `cluster_token`.
    fn proxy(stack: &Stack, cluster_token: &str) -> Result<Self> {
        let mut route = Self {
            path: Path::Proxy,
            client: h2_client(&stack.proxy_ca_pem, None)?,
            base: stack.proxy_url.clone(),
            headers: HeaderMap::new(),
        };
        route.set_bearer(cluster_token)?;
        Ok(route)
    }

    /// Through HAProxy with alice's `cluster_token`, sent as to the proxy (the same bytes go
    /// in; HAProxy drops the token and adds the agent's credentials and impersonation).
    fn haproxy(stack: &Stack, cluster_token: &str) -> Result<Self> {
        let mut route = Self {
            path: Path::Haproxy,
            client: h2_client(&stack.haproxy.ca_pem, None)?,
            base: stack.haproxy.url.clone(),
            headers: HeaderMap::new(),
        };
        route.set_bearer(cluster_token)?;
        Ok(route)
    }

    /// Sends `Authorization: Bearer <token>` from now on, not marked sensitive (as kubectl
    /// sends it). Still a Huffman-coded literal on every request: `h2` never HPACK-indexes an
    /// `Authorization` value, where kubectl (Go's HTTP/2 client) indexes it once per
    /// connection; so the proxy and HAProxy decode alice's token on every request here.
    fn set_bearer(&mut self, token: &str) -> Result<()> {
        self.headers.insert(AUTHORIZATION, bearer(token, false)?);
        Ok(())
    }

    /// Sends what the proxy sends upstream for the holder of `cluster_token` (see
    /// [`impersonation_headers`]).
    async fn set_impersonation(&mut self, sa_token: &Secret, cluster_token: &str) -> Result<()> {
        self.headers = impersonation_headers(sa_token, cluster_token).await?;
        Ok(())
    }

    /// `GET base+path` with the route's headers.
    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .headers(self.headers.clone())
    }

    /// [`WARMUP`] reads at concurrency 16; checks the response and the protocol once.
    async fn warm_up(&self, workload: &Workload) -> Result<()> {
        let name = self.path.name();
        let path = workload.path();
        let resp = self.request(path).send().await?;
        let status = resp.status();
        let version = resp.version();
        let body: Value = resp.json().await?;
        ensure!(status.is_success(), "{name}: GET {path}: {status}: {body}");
        workload
            .check(&body)
            .with_context(|| format!("{name}: GET {path}"))?;
        ensure!(
            version == reqwest::Version::HTTP_2,
            "{name}: spoke answered over {version:?}, not HTTP/2"
        );
        let per = WARMUP / 16;
        let mut tasks = JoinSet::new();
        for _ in 0..16 {
            let req = self.request(path);
            tasks.spawn(async move {
                for _ in 0..per {
                    read_once(req.try_clone().context("cloning a request")?).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.context("a warm-up task panicked")??;
        }
        Ok(())
    }

    /// `concurrency` loops of GET for `duration` on the one connection.
    async fn run_level(
        &self,
        workload: &Workload,
        concurrency: usize,
        duration: Duration,
    ) -> Result<Sample> {
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = JoinSet::new();
        for _ in 0..concurrency {
            let req = self.request(workload.path());
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(4096);
                while Instant::now() < deadline {
                    let r = req.try_clone().context("cloning a request")?;
                    let sent = Instant::now();
                    read_once(r).await?;
                    latencies.push(sent.elapsed());
                }
                anyhow::Ok(latencies)
            });
        }
        let mut latencies = Vec::new();
        while let Some(done) = tasks.join_next().await {
            latencies.extend(done.context("a request task panicked")??);
        }
        let elapsed = start.elapsed();
        latencies.sort_unstable();
        Ok(Sample { latencies, elapsed })
    }
}

/// What the proxy sends upstream for the holder of `cluster_token`: the agent's `sa_token`
/// and the `Impersonate-*` headers the agent's own [`apply_identity`] derives from the
/// token's claims (user, one header per group, the `tether.dev/sid` and `tether.dev/issuer`
/// extras).
async fn impersonation_headers(sa_token: &Secret, cluster_token: &str) -> Result<HeaderMap> {
    let identity = Identity::from_claims(&claims_of(cluster_token)?);
    let mut headers = HeaderMap::new();
    apply_identity(&mut headers, &identity, &NoClientImpersonation)
        .await
        .map_err(|e| anyhow!("the proxy's identity headers for {identity:?}: {e}"))?;
    // Marked sensitive (never HPACK-indexed), as the agent marks its own token.
    headers.insert(AUTHORIZATION, bearer(sa_token.expose(), true)?);
    Ok(headers)
}

/// `Bearer <token>`; `sensitive`: never HPACK-indexed (and redacted from `Debug`).
fn bearer(token: &str, sensitive: bool) -> Result<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}"))
        .context("a token that is not a valid header value")?;
    value.set_sensitive(sensitive);
    Ok(value)
}

/// The claims of a cluster token, read without verification: the bench only needs the
/// identity the proxy will derive from them (the proxy verifies the same token).
fn claims_of(token: &str) -> Result<Claims> {
    let payload = token
        .split('.')
        .nth(1)
        .context("the cluster token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .context("the cluster token's payload is not base64url")?;
    serde_json::from_slice(&bytes).context("the cluster token's claims")
}

/// The impersonation check given to [`apply_identity`]: never asked, because the bench's
/// requests carry no client `Impersonate-*` header; it refuses, should it ever be.
#[derive(Debug)]
struct NoClientImpersonation;

// `ImpersonationCheck` is an `async_trait`; this is its expansion, so that the bench needs
// no macro crate of its own.
impl ImpersonationCheck for NoClientImpersonation {
    fn allowed<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        _who: &'life1 Identity,
        _verb_resource: (&'life2 str, &'life3 str),
    ) -> Pin<Box<dyn Future<Output = Result<bool, ProxyError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(Ok(false)))
    }
}

/// Sends `req`, reads the whole body; an error unless 200.
async fn read_once(req: reqwest::RequestBuilder) -> Result<()> {
    let resp = req.send().await?;
    let status = resp.status();
    let url = resp.url().path().to_owned();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// A client trusting only `ca_pem` (optionally with a client certificate) that speaks
/// HTTP/2 only (ALPN h2), on one kept-alive connection per host.
fn h2_client(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<reqwest::Client> {
    tether_e2e::http::init_crypto();
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())?;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .http2_prior_knowledge()
        .tls_certs_only([ca])
        .connect_timeout(REQUEST_TIMEOUT);
    if let Some((cert, key)) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(
            format!("{cert}\n{key}").as_bytes(),
        )?);
    }
    Ok(builder.build()?)
}

/// Agent memory with `n` watches requested through the proxy; `baseline_kib` the RSS before.
/// Watches that have not delivered their first event within [`WATCH_LIMIT`] are counted as
/// stalled and kept pending (they are requests the agent holds) while memory is sampled.
async fn watch_memory(stack: &Stack, n: usize, baseline_kib: u64) -> Result<WatchMemory> {
    let token = format!("Bearer {}", stack.cluster_token().await?);
    let connections = n.div_ceil(STREAMS_PER_CONNECTION);
    let clients = (0..connections)
        .map(|_| h2_client(&stack.proxy_ca_pem, None))
        .collect::<Result<Vec<_>>>()?;
    let url = format!("{}{WATCH_PATH}", stack.proxy_url);
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(WATCH_OPEN_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let req = clients[i % connections]
            .get(&url)
            .header("authorization", &token);
        let gate = gate.clone();
        tasks.spawn(async move {
            // Held only while sending: a stalled watch does not block the next ones.
            let permit = gate.acquire_owned().await?;
            let sent = req.send();
            let mut resp = tokio::select! {
                r = sent => r.context("opening a watch")?,
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    drop(permit);
                    return Err(anyhow!("watch {i}: no response headers in 1 s"));
                }
            };
            drop(permit);
            let status = resp.status();
            ensure!(status.is_success(), "watch {i}: {status}");
            // The first event (ADDED bench) proves the stream is through.
            resp.chunk()
                .await
                .context("reading a watch's first event")?
                .with_context(|| format!("watch {i} ended before its first event"))?;
            anyhow::Ok(resp)
        });
    }
    // Stalled sends are retried without a deadline so that they stay pending in the agent.
    let mut open = Vec::with_capacity(n);
    let mut slow = Vec::new();
    let deadline = tokio::time::Instant::now() + WATCH_LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(done)) => match done.context("a watch task panicked")? {
                Ok(resp) => open.push(resp),
                Err(e) => slow.push(e),
            },
            Ok(None) => break,
            Err(_) => bail!("watch tasks still running after {WATCH_LIMIT:?}"),
        }
    }
    let open_time = started.elapsed();
    let opened = open.len();
    // Re-send the slow ones and leave them pending while memory is sampled.
    let mut pending = JoinSet::new();
    for i in 0..slow.len() {
        let req = clients[i % connections]
            .get(&url)
            .header("authorization", &token);
        pending.spawn(async move {
            let _ = req.send().await;
        });
    }
    if let Some(first) = slow.first() {
        eprintln!(
            "only {opened} of {n} watches opened; {} stalled (first: {first:#})",
            slow.len()
        );
    }
    tokio::time::sleep(SETTLE).await;
    let fds_open = fd_count(stack.agent_pid);
    let watching_kib = rss_median(stack.agent_pid).await?;
    // Does a plain GET through the proxy still get through while the watches are held?
    let probe_client = h2_client(&stack.proxy_ca_pem, None)?;
    let probe_start = Instant::now();
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        read_once(
            probe_client
                .get(format!("{}{OBJECT_PATH}", stack.proxy_url))
                .header("authorization", &token),
        ),
    )
    .await;
    let probe = match probe {
        Ok(Ok(())) => format!("200 in {:.1?}", probe_start.elapsed()),
        Ok(Err(e)) => format!("failed: {e:#}"),
        Err(_) => "no answer in 5 s".to_owned(),
    };
    eprintln!(
        "{opened} watches open in {open_time:.1?}; agent RSS {watching_kib} KiB; GET meanwhile: {probe}; one change ..."
    );

    // Every open watch is live: one change reaches all of them.
    let changed = Instant::now();
    let cert = stack.spoke.admin_cert();
    let admin = h2_client(&stack.spoke.ca_pem(), Some((&cert.cert_pem, &cert.key_pem)))?;
    let patch = admin
        .patch(format!("{}{OBJECT_PATH}", stack.spoke.api_url()))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"data":{"mode":"changed"}}"#)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .context("patching the configmap")?;
    ensure!(patch.status().is_success(), "patch: {}", patch.status());
    let mut readers = JoinSet::new();
    for mut resp in open {
        readers.spawn(async move {
            resp.chunk()
                .await
                .context("reading the MODIFIED event")?
                .context("a watch ended instead of delivering the change")?;
            anyhow::Ok(resp)
        });
    }
    let mut open = Vec::with_capacity(opened);
    let delivered = tokio::time::timeout(WATCH_LIMIT, async {
        while let Some(done) = readers.join_next().await {
            open.push(done.context("a watch reader panicked")??);
        }
        anyhow::Ok(())
    })
    .await;
    match delivered {
        Ok(r) => r?,
        Err(_) => bail!(
            "only {} of {opened} watches delivered the change within {WATCH_LIMIT:?}",
            open.len()
        ),
    }
    let fan_out = changed.elapsed();

    drop(pending);
    drop(open);
    drop(clients);
    tokio::time::sleep(SETTLE * 2).await;
    let closed_kib = rss_median(stack.agent_pid).await?;
    let fds_closed = fd_count(stack.agent_pid);
    eprintln!("watches closed; agent RSS {closed_kib} KiB");
    Ok(WatchMemory {
        watches: n,
        opened,
        connections,
        baseline_kib,
        watching_kib,
        closed_kib,
        open_time,
        fan_out,
        fds_open,
        fds_closed,
        probe,
    })
}

/// Open file descriptors of `pid` (None if unreadable).
fn fd_count(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(Iterator::count)
}

/// Latencies (sorted) of one path at one level, and how long the level ran.
#[derive(Debug)]
struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Sample {
    /// Nearest-rank percentile `p` (0..=1), in ms.
    fn percentile_ms(&self, p: f64) -> f64 {
        let n = self.latencies.len();
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
        self.latencies
            .get(rank - 1)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }

    fn throughput(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.latencies.len() as f64;
        n / self.elapsed.as_secs_f64()
    }
}

/// One path at one level in one round.
#[derive(Debug, Clone)]
struct Run {
    requests: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    req_per_s: f64,
    /// CPU seconds per second of each process of [`CPU_NAMES`] during the run.
    cpu_s_per_s: [f64; PROCS],
    /// CPU microseconds per request of each process of [`CPU_NAMES`].
    cpu_us_per_request: [f64; PROCS],
}

impl Run {
    /// The figures of `sample`, with the CPU times read before and after it.
    fn new(sample: Sample, cpu_before: [f64; PROCS], cpu_after: [f64; PROCS]) -> Self {
        let seconds = sample.elapsed.as_secs_f64();
        let requests = sample.latencies.len();
        #[allow(clippy::cast_precision_loss)]
        let n = requests.max(1) as f64;
        let mut cpu_s_per_s = [0.0; PROCS];
        let mut cpu_us_per_request = [0.0; PROCS];
        for i in 0..PROCS {
            let used = cpu_after[i] - cpu_before[i];
            cpu_s_per_s[i] = used / seconds;
            cpu_us_per_request[i] = used * 1e6 / n;
        }
        Self {
            requests,
            seconds,
            p50_ms: sample.percentile_ms(0.5),
            p99_ms: sample.percentile_ms(0.99),
            req_per_s: sample.throughput(),
            cpu_s_per_s,
            cpu_us_per_request,
        }
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "seconds": self.seconds,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "req_per_s": self.req_per_s,
            "cpu_us_per_request": cpu_json(&self.cpu_us_per_request),
        })
    }
}

/// `{"bench_client": .., "agent": .., "relay": .., "haproxy": .., "apiserver": .., "etcd": ..}`.
fn cpu_json(values: &[f64; PROCS]) -> Value {
    let map: serde_json::Map<String, Value> = CPU_NAMES
        .iter()
        .zip(values)
        .map(|(name, v)| (name.replace(' ', "_"), json!(v)))
        .collect();
    Value::Object(map)
}

/// The median of `values` (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => f64::midpoint(values[n / 2 - 1], values[n / 2]),
    }
}

/// One path at one level: the medians over the rounds of each figure.
#[derive(Debug)]
struct PathFigures {
    runs: Vec<Run>,
    p50_ms: f64,
    p99_ms: f64,
    req_per_s: f64,
    cpu_s_per_s: [f64; PROCS],
    cpu_us_per_request: [f64; PROCS],
}

impl PathFigures {
    fn new(runs: Vec<Run>) -> Self {
        let of = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
        let cpu_s_per_s = std::array::from_fn(|i| of(&|r| r.cpu_s_per_s[i]));
        let cpu_us_per_request = std::array::from_fn(|i| of(&|r| r.cpu_us_per_request[i]));
        Self {
            p50_ms: of(&|r| r.p50_ms),
            p99_ms: of(&|r| r.p99_ms),
            req_per_s: of(&|r| r.req_per_s),
            cpu_s_per_s,
            cpu_us_per_request,
            runs,
        }
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.runs.iter().map(|r| r.requests).sum::<usize>(),
            "seconds": self.runs.iter().map(|r| r.seconds).sum::<f64>(),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "req_per_s": self.req_per_s,
            "cpu_us_per_request": cpu_json(&self.cpu_us_per_request),
            "cpu_s_per_s": cpu_json(&self.cpu_s_per_s),
            "rounds": self.runs.iter().map(Run::json).collect::<Vec<_>>(),
        })
    }
}

/// The five paths at one concurrency.
#[derive(Debug)]
struct Level {
    concurrency: usize,
    /// Indexed by [`Path`].
    paths: [PathFigures; PATHS.len()],
}

impl Level {
    fn new(concurrency: usize, runs: [Vec<Run>; PATHS.len()]) -> Self {
        Self {
            concurrency,
            paths: runs.map(PathFigures::new),
        }
    }

    fn path(&self, path: Path) -> &PathFigures {
        &self.paths[path as usize]
    }

    /// Median p50 (`p99`: p99) of `path` minus that of `base`, in ms.
    fn added_ms(&self, path: Path, base: Path, p99: bool) -> f64 {
        let pick = |f: &PathFigures| if p99 { f.p99_ms } else { f.p50_ms };
        pick(self.path(path)) - pick(self.path(base))
    }

    /// Median throughput of `path` as a percentage of that of `base`.
    fn throughput_pct(&self, path: Path, base: Path) -> f64 {
        100.0 * self.path(path).req_per_s / self.path(base).req_per_s
    }

    fn p50_target_met(&self) -> bool {
        self.added_ms(Path::Proxy, Path::Direct, false) < TARGET_ADDED_P50_MS
    }

    fn throughput_target_met(&self) -> bool {
        self.throughput_pct(Path::Proxy, Path::Direct) >= TARGET_THROUGHPUT_PCT
    }
}

/// The watch phase's figures.
#[derive(Debug)]
struct WatchMemory {
    /// Requested.
    watches: usize,
    /// Delivered their first event (the rest stayed pending in the agent).
    opened: usize,
    connections: usize,
    baseline_kib: u64,
    watching_kib: u64,
    closed_kib: u64,
    open_time: Duration,
    fan_out: Duration,
    fds_open: Option<usize>,
    fds_closed: Option<usize>,
    /// A GET through the proxy while the watches were held.
    probe: String,
}

impl WatchMemory {
    fn per_watch_kib(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let delta = self.watching_kib as f64 - self.baseline_kib as f64;
        #[allow(clippy::cast_precision_loss)]
        let n = self.watches as f64;
        // Per requested watch: stalled ones are requests the agent holds too.
        delta / n
    }
}

/// Everything measured.
#[derive(Debug)]
struct Report {
    idle_kib: u64,
    rounds: usize,
    levels: Vec<Level>,
    memory: WatchMemory,
    setup: Duration,
    wall: Duration,
    /// CPUs this process could use before any pinning.
    cores: usize,
    /// What `--pin` pinned (None without it).
    pinning: Option<String>,
    /// The first line of `haproxy -v`.
    haproxy_version: String,
    /// HAProxy's `nbthread` (= the agent's proxy workers).
    haproxy_threads: usize,
}

/// Targets from the issue.
const TARGET_ADDED_P50_MS: f64 = 0.5;
const TARGET_THROUGHPUT_PCT: f64 = 90.0;

impl Report {
    /// The human tables, then the JSON summary on one line.
    fn print(&self, duration: Duration, agent_bin: &std::path::Path, workload: &Workload) {
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        println!(
            "build: {profile} binaries (agent {}); client: reqwest, HTTP/2 (one TLS connection per path); \
             {}s per path and level, {} rounds (medians shown); {} cores",
            agent_bin.display(),
            duration.as_secs(),
            self.rounds,
            self.cores,
        );
        println!("request: {}", workload.describe());
        match &self.pinning {
            Some(pinning) => println!("pinning (--pin): {pinning}"),
            None => println!("pinning: none (every process may run on any CPU; --pin pins them)"),
        }
        println!(
            "haproxy: {}, nbthread {} (the agent's proxy workers)",
            self.haproxy_version, self.haproxy_threads
        );
        println!("paths:");
        for line in [
            "  dir = direct (admin client cert)",
            "  rel = TCP relay (direct's client, TLS end to end, through a byte-copying relay \
             process: the floor of any proxy in a separate process here)",
            "  hap = HAProxy (TLS + HTTP/2 terminated, alice's token in, the proxy's header \
             rewrite out, HTTP/2 over TLS upstream; no token check, no audit, no logging)",
            "  imp = impersonated direct (agent SA token + the proxy's Impersonate-* headers)",
            "  prx = through the proxy (alice's cluster token)",
        ] {
            println!("{line}");
        }
        self.print_latency();
        self.print_throughput();
        self.print_added();
        self.print_cpu();
        let m = &self.memory;
        let rows = [
            ("agent RSS idle (fresh)", format!("{} KiB", self.idle_kib)),
            (
                "agent RSS after request runs",
                format!("{} KiB", m.baseline_kib),
            ),
            (
                "agent RSS with watches open",
                format!(
                    "{} KiB ({} requested, {} streaming, {} stalled; HTTP/2, {} connections)",
                    m.watching_kib,
                    m.watches,
                    m.opened,
                    m.watches - m.opened,
                    m.connections
                ),
            ),
            (
                "per requested watch",
                format!("{:.1} KiB", m.per_watch_kib()),
            ),
            ("GET through proxy meanwhile", m.probe.clone()),
            ("agent RSS after closing", format!("{} KiB", m.closed_kib)),
            (
                "agent open fds with / after",
                format!("{:?} / {:?}", m.fds_open, m.fds_closed),
            ),
            ("open watches (or give up)", format!("{:.1?}", m.open_time)),
            (
                "one change to every open watch",
                format!("{:.1?}", m.fan_out),
            ),
            ("setup", format!("{:.1?}", self.setup)),
            ("wall time", format!("{:.1?}", self.wall)),
        ];
        for (what, value) in rows {
            println!("{what:<30} {value}");
        }
        let levels: Vec<Value> = self
            .levels
            .iter()
            .map(|l| {
                let proxy = l.path(Path::Proxy);
                let relay = l.path(Path::Relay);
                let haproxy = l.path(Path::Haproxy);
                json!({
                    "concurrency": l.concurrency,
                    "direct": l.path(Path::Direct).json(),
                    "impersonated_direct": l.path(Path::Impersonated).json(),
                    "proxy": proxy.json(),
                    "relay": relay.json(),
                    "haproxy": haproxy.json(),
                    "added_p50_ms": l.added_ms(Path::Proxy, Path::Direct, false),
                    "added_p99_ms": l.added_ms(Path::Proxy, Path::Direct, true),
                    "agent_added_p50_ms": l.added_ms(Path::Proxy, Path::Impersonated, false),
                    "agent_added_p99_ms": l.added_ms(Path::Proxy, Path::Impersonated, true),
                    "impersonation_added_p50_ms": l.added_ms(Path::Impersonated, Path::Direct, false),
                    "impersonation_added_p99_ms": l.added_ms(Path::Impersonated, Path::Direct, true),
                    "proxy_throughput_pct_of_direct": l.throughput_pct(Path::Proxy, Path::Direct),
                    "impersonated_throughput_pct_of_direct": l.throughput_pct(Path::Impersonated, Path::Direct),
                    "proxy_throughput_pct_of_impersonated": l.throughput_pct(Path::Proxy, Path::Impersonated),
                    "agent_cpu_s_per_s": proxy.cpu_s_per_s[AGENT_CPU],
                    "agent_cpu_us_per_request": proxy.cpu_us_per_request[AGENT_CPU],
                    "relay_added_p50_ms": l.added_ms(Path::Relay, Path::Direct, false),
                    "relay_added_p99_ms": l.added_ms(Path::Relay, Path::Direct, true),
                    "relay_throughput_pct_of_direct": l.throughput_pct(Path::Relay, Path::Direct),
                    "proxy_throughput_pct_of_relay": l.throughput_pct(Path::Proxy, Path::Relay),
                    "relay_cpu_s_per_s": relay.cpu_s_per_s[RELAY_CPU],
                    "relay_cpu_us_per_request": relay.cpu_us_per_request[RELAY_CPU],
                    "haproxy_added_p50_ms": l.added_ms(Path::Haproxy, Path::Direct, false),
                    "haproxy_added_p99_ms": l.added_ms(Path::Haproxy, Path::Direct, true),
                    "proxy_added_p50_ms_over_haproxy": l.added_ms(Path::Proxy, Path::Haproxy, false),
                    "proxy_added_p99_ms_over_haproxy": l.added_ms(Path::Proxy, Path::Haproxy, true),
                    "haproxy_throughput_pct_of_direct": l.throughput_pct(Path::Haproxy, Path::Direct),
                    "proxy_throughput_pct_of_haproxy": l.throughput_pct(Path::Proxy, Path::Haproxy),
                    "haproxy_cpu_s_per_s": haproxy.cpu_s_per_s[HAPROXY_CPU],
                    "haproxy_cpu_us_per_request": haproxy.cpu_us_per_request[HAPROXY_CPU],
                    "target_added_p50_met": l.p50_target_met(),
                    "target_throughput_met": l.throughput_target_met(),
                })
            })
            .collect();
        let summary = json!({
            "build": profile,
            "agent_bin": agent_bin.display().to_string(),
            "client": "reqwest, HTTP/2 prior knowledge over TLS, one connection per path",
            "request": workload.describe(),
            "paths": {
                "direct": "apiserver, cluster admin client certificate",
                "impersonated_direct": "apiserver, the agent's ServiceAccount token and the proxy's Impersonate-* headers for alice",
                "proxy": "the agent's proxy, alice's cluster token",
                "relay": "the direct path's client (admin client certificate, TLS end to end with the apiserver) through a plain TCP relay in its own process (one thread, TCP_NODELAY, bytes copied both ways; no TLS, no HTTP): the floor of any proxy in a separate process on this machine (two extra loopback hops and wake-ups)",
                "haproxy": "HAProxy in its own process (as many threads as the agent's proxy workers), alice's cluster token in; TLS and HTTP/2 terminated, the client's Authorization, Impersonate-* and X-Remote-* headers dropped and the agent's ServiceAccount token and the proxy's Impersonate-* headers for alice added (fixed in its config), HTTP/2 over verified TLS to the apiserver; no token verification, no audit, no logging",
            },
            "haproxy": {
                "version": self.haproxy_version,
                "nbthread": self.haproxy_threads,
            },
            "cores": self.cores,
            "pinned": self.pinning.is_some(),
            "pinning": self.pinning,
            "seconds_per_level": duration.as_secs(),
            "rounds": self.rounds,
            "figures": "medians of the rounds",
            "levels": levels,
            "agent_rss_kib": {
                "idle": self.idle_kib,
                "after_requests": m.baseline_kib,
                "watching": m.watching_kib,
                "closed": m.closed_kib,
            },
            "watches": {
                "requested": m.watches,
                "streaming": m.opened,
                "stalled": m.watches - m.opened,
                "get_through_proxy_meanwhile": m.probe,
                "transport": format!("HTTP/2 streams, {STREAMS_PER_CONNECTION} per connection"),
                "connections": m.connections,
                "per_watch_kib": m.per_watch_kib(),
                "open_all_s": m.open_time.as_secs_f64(),
                "change_to_all_s": m.fan_out.as_secs_f64(),
                "agent_fds_open": m.fds_open,
                "agent_fds_closed": m.fds_closed,
            },
            "setup_s": self.setup.as_secs_f64(),
            "wall_s": self.wall.as_secs_f64(),
        });
        println!("{summary}");
    }
}

/// The tables of [`Report::print`].
impl Report {
    /// Median p50 and p99 of every path.
    fn print_latency(&self) {
        let mut header = format!("{:>4}", "conc");
        for path in PATHS {
            let short = path.short();
            header.push_str(&format!(
                " | {:>7} {:>7}",
                format!("{short} p50"),
                format!("{short} p99")
            ));
        }
        println!("{header}   (ms)");
        for l in &self.levels {
            let mut row = format!("{:>4}", l.concurrency);
            for path in PATHS {
                let f = l.path(path);
                row.push_str(&format!(" | {:>7.3} {:>7.3}", f.p50_ms, f.p99_ms));
            }
            println!("{row}");
        }
    }

    /// Median throughput of every path and the ratios of [`RATIOS`] (a bar between those to
    /// direct and those of the proxy to the others).
    fn print_throughput(&self) {
        let bar = |i: usize| if i == 0 || i == 4 { " |" } else { "" };
        let mut header = format!("{:>4} |", "conc");
        for path in PATHS {
            header.push_str(&format!(" {:>6}", format!("{}/s", path.short())));
        }
        for (i, (num, den)) in RATIOS.iter().enumerate() {
            let ratio = format!("{}/{}", num.short(), den.short());
            header.push_str(&format!("{} {ratio:>7}", bar(i)));
        }
        println!("{header}   (req/s, %)");
        for l in &self.levels {
            let mut row = format!("{:>4} |", l.concurrency);
            for path in PATHS {
                row.push_str(&format!(" {:>6.0}", l.path(path).req_per_s));
            }
            for (i, (num, den)) in RATIOS.iter().enumerate() {
                let pct = l.throughput_pct(*num, *den);
                row.push_str(&format!("{} {pct:>6.1}%", bar(i)));
            }
            println!("{row}");
        }
    }

    /// Added p50 of the proxy and its parts, of the relay and HAProxy; the agent's CPU; the
    /// targets.
    fn print_added(&self) {
        println!(
            "{:>4} | {:>7} {:>7} {:>7} {:>7} {:>7} | {:>9} {:>6} | targets",
            "conc", "+p50 ms", "agent", "apisrv", "relay", "haproxy", "agent CPU", "µs/req",
        );
        for l in &self.levels {
            let p = l.path(Path::Proxy);
            println!(
                "{:>4} | {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7.3} | {:>7.2}/s {:>6.0} | +p50<0.5ms {} ; >=90% {}",
                l.concurrency,
                l.added_ms(Path::Proxy, Path::Direct, false),
                l.added_ms(Path::Proxy, Path::Impersonated, false),
                l.added_ms(Path::Impersonated, Path::Direct, false),
                l.added_ms(Path::Relay, Path::Direct, false),
                l.added_ms(Path::Haproxy, Path::Direct, false),
                p.cpu_s_per_s[AGENT_CPU],
                p.cpu_us_per_request[AGENT_CPU],
                if l.p50_target_met() { "met" } else { "MISSED" },
                if l.throughput_target_met() {
                    "met"
                } else {
                    "MISSED"
                },
            );
        }
        println!(
            "(+p50 ms: prx-dir, of which agent = prx-imp and apisrv = imp-dir; relay = rel-dir, the \
             floor of a separate-process proxy; haproxy = hap-dir; agent CPU during the proxy runs)"
        );
    }

    /// CPU per request of every process on every path.
    fn print_cpu(&self) {
        println!("CPU per request, µs (medians of rounds)");
        let mut header = format!("{:>4} | {:<12} |", "conc", "path");
        for name in CPU_NAMES {
            header.push_str(&format!(" {name:>7}"));
        }
        println!("{header} {:>7}", "total");
        for l in &self.levels {
            for path in PATHS {
                let c = &l.path(path).cpu_us_per_request;
                let mut row = format!("{:>4} | {:<12} |", l.concurrency, path.name());
                for (name, v) in CPU_NAMES.iter().zip(c) {
                    row.push_str(&format!(" {v:>w$.0}", w = name.len().max(7)));
                }
                println!("{row} {:>7.0}", c.iter().sum::<f64>());
            }
        }
    }
}
