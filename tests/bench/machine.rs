//! `tether-bench-machine`: machine token exchange under an ArgoCD-style burst.
//!
//! Starts real processes on loopback (etcd and a hub-cluster kube-apiserver, the hub with a
//! `machine` section whose TokenReviews go to that apiserver), creates ArgoCD's application
//! controller ServiceAccount and one token for it (TokenRequest, `kubectl create token`),
//! then sends N exchanges of that one token for a spoke token at concurrency C:
//!
//! * a COLD burst (empty TokenReview cache: the first request reviews, the others wait on
//!   it or hit the cache), then a WARM burst (all hits);
//! * latency p50/p99/max and throughput of each, the hub's CPU time and RSS;
//! * TokenReview calls made to the apiserver, read from the hub's /metrics
//!   (`tether_hub_token_reviews_total`): the run FAILS unless it is exactly 1.
//!
//! Run it through `scripts/bench-machine`, which builds the binaries. Every phase is bounded
//! in time; the processes (and the test directory) go away on drop, also on error or on
//! SIGINT/SIGTERM.

#[path = "harness.rs"]
mod harness;
#[path = "procstat.rs"]
mod procstat;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use clap::Parser;
use procstat::{Cpu, rss_median};
use tether_common::time::{Clock as _, SystemClock};
use tether_e2e::{Cluster, ClusterOptions, Hub, HubOptions, TestDir, free_port, workspace_bin};
use tether_hub::registry::ClusterName;
use tether_hub::store::{DatabaseUrl, Store, StoreConfig};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The spoke the tokens are for.
const SPOKE: &str = "spoke-bench";
/// ArgoCD's application controller.
const NAMESPACE: &str = "argocd";
const SERVICE_ACCOUNT: &str = "argocd-application-controller";
/// The hub's `machine` section.
const MACHINE_YAML: &str = r#"machine:
  token_review: {cache_ttl: 30s, cache_size: 10000, max_concurrent: 32}
  policies:
    - name: argocd
      serviceaccount: {namespace: argocd, name: argocd-application-controller}
      clusters: {names: ["*"]}
      identity: {username: "tether:argocd", groups: []}
"#;
/// Upper bound for one request (a failed request fails the run).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one burst.
const BURST_LIMIT: Duration = Duration::from_secs(120);
/// Upper bound for starting everything.
const SETUP_LIMIT: Duration = Duration::from_secs(240);
/// Quiet time before memory is sampled.
const SETTLE: Duration = Duration::from_secs(1);
/// The most requests one burst may send.
const MAX_REQUESTS: u64 = 20_000;

/// Latency of machine token exchanges and TokenReview calls under a burst of one token.
#[derive(Debug, Parser)]
#[command(name = "tether-bench-machine", version, about, long_about = None)]
struct Args {
    /// Requests per burst (all with the same ServiceAccount token).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    concurrency: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    harness::main_with("tether-bench-machine", run(&args))
}

async fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let requests = usize::try_from(args.requests).context("--requests")?;
    let concurrency = usize::try_from(args.concurrency).context("--concurrency")?;
    let stack = tokio::time::timeout(SETUP_LIMIT, Stack::start())
        .await
        .map_err(|_| anyhow!("starting the processes took longer than {SETUP_LIMIT:?}"))??;
    let setup = started.elapsed();
    eprintln!(
        "stack up in {setup:.1?}; hub pid {}",
        stack.hub.process().pid()
    );
    let result = measure(&stack, requests, concurrency).await;
    if result.is_err() {
        eprintln!(
            "--- last lines of the hub log ---\n{}",
            stack.hub.process().log_tail(30)
        );
    }
    let report = result?;
    report.print(
        requests,
        concurrency,
        setup,
        started.elapsed(),
        &stack.hub_bin,
    );
    Ok(())
}

/// The hub cluster, the hub, and ArgoCD's token.
struct Stack {
    hub: Hub,
    _k8s: Cluster,
    _dir: TestDir,
    hub_bin: PathBuf,
    token: String,
}

impl Stack {
    async fn start() -> Result<Self> {
        tether_e2e::http::init_crypto();
        let dir = TestDir::new("bench-machine")?;
        let k8s = Cluster::start(&dir, ClusterOptions::new("hubk8s")).await?;
        let port = free_port()?;
        let options = HubOptions::with_machine("hub", port, &k8s.admin_kubeconfig(), MACHINE_YAML)?;
        let hub = Hub::start(&dir, options).await?;
        register_spoke(&hub).await?;
        k8s.kubectl_ok(&["create", "namespace", NAMESPACE]).await?;
        k8s.kubectl_ok(&["-n", NAMESPACE, "create", "serviceaccount", SERVICE_ACCOUNT])
            .await?;
        let out = k8s
            .kubectl_ok(&[
                "-n",
                NAMESPACE,
                "create",
                "token",
                SERVICE_ACCOUNT,
                "--duration",
                "10m",
            ])
            .await?;
        let token = out.trim().to_owned();
        ensure!(
            token.split('.').count() == 3,
            "kubectl create token printed no JWT"
        );
        Ok(Self {
            hub,
            _k8s: k8s,
            _dir: dir,
            hub_bin: workspace_bin("tether-hub")?,
            token,
        })
    }

    /// TokenReview calls so far: the sum of `tether_hub_token_reviews_total` over outcomes.
    async fn token_reviews(&self) -> Result<f64> {
        let text = self.hub.metrics().await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("tether_hub_token_reviews_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

/// Registers the spoke in the hub's store.
async fn register_spoke(hub: &Hub) -> Result<()> {
    let file = hub.data_dir().join("hub.db");
    let url =
        DatabaseUrl::parse(&format!("sqlite://{}", file.display())).map_err(|e| anyhow!("{e}"))?;
    let store = Store::connect(&StoreConfig::new(url))
        .await
        .context("opening the hub's store")?;
    store
        .add_cluster(
            &ClusterName::parse(SPOKE).map_err(|e| anyhow!("{e}"))?,
            &BTreeMap::new(),
            SystemClock.now(),
        )
        .await
        .context("registering the spoke")?;
    store.close().await;
    Ok(())
}

/// One burst's figures.
#[derive(Debug)]
struct Burst {
    latencies_ms: Vec<f64>,
    wall: Duration,
    cpu_s: f64,
}

impl Burst {
    fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }

    fn per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.latencies_ms.len() as f64;
        n / self.wall.as_secs_f64()
    }
}

#[derive(Debug)]
struct Report {
    cold: Burst,
    warm: Burst,
    reviews: f64,
    rss_idle_kib: u64,
    rss_after_kib: u64,
}

async fn measure(stack: &Stack, requests: usize, concurrency: usize) -> Result<Report> {
    let pid = stack.hub.process().pid();
    tokio::time::sleep(SETTLE).await;
    let rss_idle_kib = rss_median(pid).await?;
    let before = stack.token_reviews().await?;
    ensure!(before == 0.0, "{before} TokenReviews before the burst");
    let cpu = Cpu::new(pid)?;
    eprintln!("cold burst: {requests} requests, {concurrency} at once ...");
    let cold = burst(stack, requests, concurrency, &cpu).await?;
    eprintln!("warm burst ...");
    let warm = burst(stack, requests, concurrency, &cpu).await?;
    let reviews = stack.token_reviews().await?;
    let rss_after_kib = rss_median(pid).await?;
    if reviews != 1.0 {
        bail!(
            "{reviews} TokenReview calls for {} requests with one token (expected exactly 1)",
            2 * requests
        );
    }
    Ok(Report {
        cold,
        warm,
        reviews,
        rss_idle_kib,
        rss_after_kib,
    })
}

/// `requests` exchanges of the one token, `concurrency` in flight; every one must succeed.
async fn burst(stack: &Stack, requests: usize, concurrency: usize, cpu: &Cpu) -> Result<Burst> {
    let url = format!("{}/token", stack.hub.url());
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("client_id", "tetherctl"),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("subject_token", stack.token.as_str()),
            ("audience", SPOKE),
        ])
        .finish();
    let body = Arc::new(body);
    let permits = Arc::new(Semaphore::new(concurrency));
    let cpu_before = cpu.seconds()?;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..requests {
        let http = stack.hub.http().clone();
        let (url, body, permits) = (url.clone(), Arc::clone(&body), Arc::clone(&permits));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let sent = Instant::now();
            let response = http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.as_str().to_owned())
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .context("POST /token")?;
            let status = response.status();
            let text = response.text().await.context("reading the answer")?;
            let elapsed = sent.elapsed();
            ensure!(status.is_success(), "POST /token: {status}: {text}");
            Ok::<Duration, anyhow::Error>(elapsed)
        });
    }
    let results = tokio::time::timeout(BURST_LIMIT, tasks.join_all())
        .await
        .map_err(|_| anyhow!("the burst took longer than {BURST_LIMIT:?}"))?;
    let wall = started.elapsed();
    let cpu_s = cpu.seconds()? - cpu_before;
    let mut latencies_ms = Vec::with_capacity(results.len());
    for result in results {
        latencies_ms.push(result?.as_secs_f64() * 1000.0);
    }
    latencies_ms.sort_by(f64::total_cmp);
    Ok(Burst {
        latencies_ms,
        wall,
        cpu_s,
    })
}

/// The `p`-th percentile (nearest rank) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    fn print(
        &self,
        requests: usize,
        concurrency: usize,
        setup: Duration,
        wall: Duration,
        hub_bin: &std::path::Path,
    ) {
        let profile = if hub_bin.components().any(|c| c.as_os_str() == "release") {
            "RELEASE"
        } else {
            "DEBUG"
        };
        println!(
            "tether-bench-machine: {requests} requests per burst, {concurrency} in flight, one ServiceAccount token, {profile} build ({})",
            hub_bin.display()
        );
        println!("burst  requests  p50 ms  p99 ms  max ms   req/s  hub CPU s");
        for (name, burst) in [("cold", &self.cold), ("warm", &self.warm)] {
            println!(
                "{name:<5}  {:>8}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6.0}  {:>9.2}",
                burst.latencies_ms.len(),
                burst.percentile(50.0),
                burst.percentile(99.0),
                burst.percentile(100.0),
                burst.per_second(),
                burst.cpu_s,
            );
        }
        println!(
            "TokenReview calls to the apiserver (tether_hub_token_reviews_total): {}",
            self.reviews
        );
        println!(
            "hub RSS: {} KiB idle, {} KiB after the bursts",
            self.rss_idle_kib, self.rss_after_kib
        );
        println!("setup {setup:.1?}, total {wall:.1?}");
    }
}
