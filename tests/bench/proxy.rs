//! `tether-bench-proxy`: the agent's impersonating proxy against the spoke apiserver it fronts.
//!
//! Starts real processes on loopback (the IdP, a hub logging users in through it, etcd, a
//! spoke kube-apiserver, `tether-agent run` with its proxy), then measures:
//!
//! * latency and throughput of `GET /api/v1/namespaces/default/configmaps/bench`, DIRECT to
//!   the apiserver with the cluster admin client certificate and through the PROXY with
//!   alice's cluster token (alice is in `k8s-admins`, bound to `cluster-admin`), at
//!   concurrency 1, 16 and 64 for a fixed time each; both paths use one HTTP/2 connection
//!   (one reqwest client each, prior knowledge over TLS), the levels interleaved
//!   (direct, proxy, direct, proxy ...) so drift hits both alike;
//! * the agent's resident memory idle and with N watches requested through the proxy
//!   (HTTP/2, [`STREAMS_PER_CONNECTION`] streams per connection), the open ones checked live
//!   by one change. Watches that get no response headers within 1 s are counted as stalled
//!   and kept pending while memory is sampled; a GET through the proxy probes whether the
//!   proxy still serves other requests meanwhile. Stalls are reported, not fatal.
//!
//! Run it through `scripts/bench-proxy`, which raises the open-file limit and builds the
//! binaries. Every phase is bounded in time; the processes (and the test directory) go away
//! on drop, also on error or on SIGINT/SIGTERM.

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
use serde_json::{Value, json};
use tether_common::secret::Secret;
use tether_e2e::{
    Agent, Cluster, ClusterOptions, Etcd, Hub, HubOptions, IdpClient, IdpOptions, LoginHub, Pkce,
    TestDir, UpstreamIdp, agent, form_login_via, free_port, workspace_bin,
};
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
/// Concurrency levels measured.
const LEVELS: [usize; 3] = [1, 16, 64];
/// Requests per path before measuring (at concurrency 16).
const WARMUP: usize = 500;
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
/// Memory samples per measurement (the median is kept) and the gap between them.
/// The most watches one run may open.
const MAX_WATCHES: u64 = 5_000;

/// Added latency and throughput of the agent's proxy, and its memory per watch.
#[derive(Debug, Parser)]
#[command(name = "tether-bench-proxy", version, about, long_about = None)]
struct Args {
    /// Seconds measured per path and concurrency level (a cluster token lives 60 s).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=30))]
    seconds: u64,
    /// Watches held open through the proxy for the memory figure.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_WATCHES))]
    watches: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether-bench-proxy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run_until_signal(&args));
    // Streams still in flight on error must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether-bench-proxy: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the bench; SIGINT or SIGTERM ends it as an error, so every guard still drops.
async fn run_until_signal(args: &Args) -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (SIGINT)")),
        _ = term.recv() => Err(anyhow!("terminated (SIGTERM)")),
    }
}

/// The whole benchmark: processes, latency levels, watches, report.
async fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let watches = usize::try_from(args.watches).context("--watches")?;
    let duration = Duration::from_secs(args.seconds);
    let stack = tokio::time::timeout(SETUP_LIMIT, Stack::start())
        .await
        .map_err(|_| anyhow!("starting the processes took longer than {SETUP_LIMIT:?}"))??;
    let setup = started.elapsed();
    eprintln!("stack up in {setup:.1?}; agent pid {}", stack.agent_pid);
    let result = measure(&stack, duration, watches).await;
    if result.is_err() {
        eprintln!(
            "--- last lines of the agent log ---\n{}",
            stack.agent.process().log_tail(30)
        );
    }
    let mut report = result?;
    report.setup = setup;
    report.wall = started.elapsed();
    report.print(duration, &stack.agent_bin);
    Ok(())
}

/// Every phase, in order.
async fn measure(stack: &Stack, duration: Duration, watches: usize) -> Result<Report> {
    tokio::time::sleep(SETTLE).await;
    let idle_kib = rss_median(stack.agent_pid).await?;
    eprintln!("agent RSS idle {idle_kib} KiB; warming up ...");

    let direct = Route::direct(&stack.spoke)?;
    let mut proxy = Route::proxy(stack).await?;
    direct.warm_up().await?;
    proxy.warm_up().await?;

    let cpu = Cpu::new(stack.agent_pid)?;
    let mut levels = Vec::new();
    for concurrency in LEVELS {
        let d = direct.run_level(concurrency, duration).await?;
        // A fresh token per level: cluster tokens live 60 s in this hub.
        proxy.refresh_token(stack).await?;
        let cpu_before = cpu.seconds()?;
        let p = proxy.run_level(concurrency, duration).await?;
        let agent_cpu = (cpu.seconds()? - cpu_before) / p.elapsed.as_secs_f64();
        eprintln!(
            "c={concurrency:<3} direct p50 {:.3} ms {:.0} req/s | proxy p50 {:.3} ms {:.0} req/s",
            d.percentile_ms(0.5),
            d.throughput(),
            p.percentile_ms(0.5),
            p.throughput()
        );
        levels.push(Level {
            concurrency,
            direct: d,
            proxy: p,
            agent_cpu,
        });
    }
    drop(direct);
    drop(proxy);

    tokio::time::sleep(SETTLE).await;
    let after_requests_kib = rss_median(stack.agent_pid).await?;
    eprintln!(
        "agent RSS after the request runs {after_requests_kib} KiB; opening {watches} watches ..."
    );
    let memory = watch_memory(stack, watches, after_requests_kib).await?;
    Ok(Report {
        idle_kib,
        levels,
        memory,
        setup: Duration::ZERO,
        wall: Duration::ZERO,
    })
}

/// The processes, in drop order: the agent first, the test directory last.
#[derive(Debug)]
struct Stack {
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
}

impl Stack {
    /// IdP, hub with login, etcd, spoke (RBAC, the configmap), join, agent with its proxy.
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
        Ok(Self {
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
        })
    }

    /// alice's token for the spoke: authorize at the hub, form login at the IdP, code
    /// redemption, then token exchange with `audience=SPOKE`.
    async fn cluster_token(&self) -> Result<String> {
        let pkce = Pkce::new()?;
        let mut authorize = url::Url::parse(&format!("{}/authorize", self.hub.url()))?;
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
        let callback = form_login_via(
            self.hub.http(),
            authorize.as_str(),
            USER.0,
            USER.1,
            REDIRECT_URI,
        )
        .await?;
        let query: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
        let code = query
            .get("code")
            .with_context(|| format!("no code in the callback {callback}"))?;
        let tokens = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &pkce.verifier),
            ])
            .await?;
        let access = tokens["access_token"]
            .as_str()
            .context("no access_token in the code redemption")?;
        let exchanged = self
            .token(&[
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
            ])
            .await?;
        exchanged["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no access_token in the token exchange")
    }

    /// POSTs `form` to the hub's token endpoint as the bench client; the JSON of a 200.
    async fn token(&self, form: &[(&str, &str)]) -> Result<Value> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let resp = self
            .hub
            .http()
            .post(format!("{}/token", self.hub.url()))
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
}

/// One way to the apiserver: a client (one HTTP/2 connection), a base URL and a bearer.
#[derive(Debug)]
struct Route {
    name: &'static str,
    client: reqwest::Client,
    base: String,
    bearer: Option<String>,
}

impl Route {
    /// Straight to the apiserver with the cluster admin client certificate.
    fn direct(spoke: &Cluster) -> Result<Self> {
        let cert = spoke.admin_cert();
        Ok(Self {
            name: "direct",
            client: h2_client(&spoke.ca_pem(), Some((&cert.cert_pem, &cert.key_pem)))?,
            base: spoke.api_url(),
            bearer: None,
        })
    }

    /// Through the agent's proxy with alice's cluster token.
    async fn proxy(stack: &Stack) -> Result<Self> {
        let mut route = Self {
            name: "proxy",
            client: h2_client(&stack.proxy_ca_pem, None)?,
            base: stack.proxy_url.clone(),
            bearer: None,
        };
        route.refresh_token(stack).await?;
        Ok(route)
    }

    /// A fresh cluster token for alice (they live 60 s in this hub).
    async fn refresh_token(&mut self, stack: &Stack) -> Result<()> {
        self.bearer = Some(format!("Bearer {}", stack.cluster_token().await?));
        Ok(())
    }

    /// `GET base+path`, with the bearer if any.
    fn request(&self, path: &str) -> Result<reqwest::RequestBuilder> {
        let req = self.client.get(format!("{}{path}", self.base));
        Ok(match &self.bearer {
            Some(b) => req.header("authorization", b),
            None => req,
        })
    }

    /// [`WARMUP`] reads at concurrency 16; checks the object and the protocol once.
    async fn warm_up(&self) -> Result<()> {
        let resp = self.request(OBJECT_PATH)?.send().await?;
        let status = resp.status();
        let version = resp.version();
        let body: Value = resp.json().await?;
        ensure!(
            status.is_success(),
            "{}: GET {OBJECT_PATH}: {status}: {body}",
            self.name
        );
        ensure!(
            body["data"]["mode"] == "benchmark",
            "{}: unexpected object {body}",
            self.name
        );
        ensure!(
            version == reqwest::Version::HTTP_2,
            "{}: spoke answered over {version:?}, not HTTP/2",
            self.name
        );
        let per = WARMUP / 16;
        let mut tasks = JoinSet::new();
        for _ in 0..16 {
            let req = self.request(OBJECT_PATH)?;
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
    async fn run_level(&self, concurrency: usize, duration: Duration) -> Result<Sample> {
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = JoinSet::new();
        for _ in 0..concurrency {
            let req = self.request(OBJECT_PATH)?;
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

/// Sends `req`, reads the whole body; an error unless 200.
async fn read_once(req: reqwest::RequestBuilder) -> Result<()> {
    let resp = req.send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "GET {OBJECT_PATH}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
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

    fn json(&self) -> Value {
        json!({
            "requests": self.latencies.len(),
            "seconds": self.elapsed.as_secs_f64(),
            "p50_ms": self.percentile_ms(0.5),
            "p99_ms": self.percentile_ms(0.99),
            "req_per_s": self.throughput(),
        })
    }
}

/// Both paths at one concurrency.
#[derive(Debug)]
struct Level {
    concurrency: usize,
    direct: Sample,
    proxy: Sample,
    /// Agent CPU seconds per second during the proxy run.
    agent_cpu: f64,
}

impl Level {
    fn added_ms(&self, p: f64) -> f64 {
        self.proxy.percentile_ms(p) - self.direct.percentile_ms(p)
    }

    fn throughput_pct(&self) -> f64 {
        100.0 * self.proxy.throughput() / self.direct.throughput()
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
    levels: Vec<Level>,
    memory: WatchMemory,
    setup: Duration,
    wall: Duration,
}

/// Targets from the issue.
const TARGET_ADDED_P50_MS: f64 = 0.5;
const TARGET_THROUGHPUT_PCT: f64 = 90.0;

impl Report {
    /// The human table, then the JSON summary on one line.
    fn print(&self, duration: Duration, agent_bin: &std::path::Path) {
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        println!(
            "build: {profile} binaries (agent {}); client: reqwest, HTTP/2 (one TLS connection per path); \
             {}s per level; {} cores",
            agent_bin.display(),
            duration.as_secs(),
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
        );
        println!(
            "{:>4} | {:>9} {:>9} {:>8} | {:>9} {:>9} {:>8} | {:>9} {:>9} {:>7} | {:>9} | targets",
            "conc",
            "dir p50",
            "dir p99",
            "dir r/s",
            "prx p50",
            "prx p99",
            "prx r/s",
            "+p50 ms",
            "+p99 ms",
            "prx/dir",
            "agent CPU"
        );
        for l in &self.levels {
            let p50_ok = l.added_ms(0.5) < TARGET_ADDED_P50_MS;
            let tp_ok = l.throughput_pct() >= TARGET_THROUGHPUT_PCT;
            println!(
                "{:>4} | {:>9.3} {:>9.3} {:>8.0} | {:>9.3} {:>9.3} {:>8.0} | {:>9.3} {:>9.3} {:>6.1}% | {:>7.2}/s | +p50<0.5ms {} ; >=90% {}",
                l.concurrency,
                l.direct.percentile_ms(0.5),
                l.direct.percentile_ms(0.99),
                l.direct.throughput(),
                l.proxy.percentile_ms(0.5),
                l.proxy.percentile_ms(0.99),
                l.proxy.throughput(),
                l.added_ms(0.5),
                l.added_ms(0.99),
                l.throughput_pct(),
                l.agent_cpu,
                if p50_ok { "met" } else { "MISSED" },
                if tp_ok { "met" } else { "MISSED" },
            );
        }
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
                json!({
                    "concurrency": l.concurrency,
                    "direct": l.direct.json(),
                    "proxy": l.proxy.json(),
                    "added_p50_ms": l.added_ms(0.5),
                    "added_p99_ms": l.added_ms(0.99),
                    "proxy_throughput_pct_of_direct": l.throughput_pct(),
                    "agent_cpu_s_per_s": l.agent_cpu,
                    "target_added_p50_met": l.added_ms(0.5) < TARGET_ADDED_P50_MS,
                    "target_throughput_met": l.throughput_pct() >= TARGET_THROUGHPUT_PCT,
                })
            })
            .collect();
        let summary = json!({
            "build": profile,
            "agent_bin": agent_bin.display().to_string(),
            "client": "reqwest, HTTP/2 prior knowledge over TLS, one connection per path",
            "request": format!("GET {OBJECT_PATH}"),
            "seconds_per_level": duration.as_secs(),
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
