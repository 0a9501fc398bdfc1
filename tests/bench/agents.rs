//! `tether-bench-agents`: one real `tether-hub` and N simulated agents on loopback.
//!
//! Measures (a) the hub's resident memory per connected agent and (b) how long an emergency
//! key rotation takes to reach every agent over its `Control.Connect` stream. Run it through
//! `scripts/bench-agents [N]`, which raises the open-file limit and builds the binaries.
//!
//! Each simulated agent does what `tether-agent` does, with the agent crate's own code
//! ([`tether_agent::join::csr`], [`tether_agent::tls`]): `Admin.AddCluster`, a P-256 key and
//! CSR, `Registration.Join` over TLS pinned to the hub's gRPC CA, then its own TCP + mTLS
//! connection for `Control.Connect`, one heartbeat, and a task that timestamps every `Jwks`
//! message. Every phase is bounded in time; the hub (and the test directory) go away on
//! drop, also on error or on SIGINT/SIGTERM.

#[path = "harness.rs"]
mod harness;
#[path = "procstat.rs"]
mod procstat;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use clap::Parser;
use procstat::{Cpu, rss_median};
use tether_agent::join::csr;
use tether_agent::tls::{self, HubAddr};
use tether_common::pin::{CaPin, PinnedVerifier};
use tether_e2e::{Hub, HubOptions, TestDir, workspace_bin};
use tether_proto::v1::admin_client::AdminClient;
use tether_proto::v1::control_client::ControlClient;
use tether_proto::v1::registration_client::RegistrationClient;
use tether_proto::v1::{
    AddClusterRequest, AgentMessage, Heartbeat, JoinRequest, agent_message, hub_message,
};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Upper bound for adding and joining all agents.
const JOIN_LIMIT: Duration = Duration::from_secs(600);
/// Upper bound for all control streams to be open and to have the first JWKS.
const CONNECT_LIMIT: Duration = Duration::from_secs(300);
/// Upper bound from `keys rotate --emergency` to the last agent holding the new keys.
const ROTATION_LIMIT: Duration = Duration::from_secs(60);
/// Upper bound for one unary call (AddCluster, Join).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Quiet time before memory is sampled.
const SETTLE: Duration = Duration::from_secs(2);
/// Memory samples per measurement (the median is kept) and the gap between them.
/// How often the hub's JWKS endpoint is polled while waiting for the rotation.
const JWKS_POLL: Duration = Duration::from_millis(5);
/// The most agents one run may simulate.
const MAX_AGENTS: usize = 5_000;

/// Hub memory per connected agent and key-rotation push latency, against a real hub.
#[derive(Debug, Parser)]
#[command(name = "tether-bench-agents", version, about, long_about = None)]
struct Args {
    /// How many simulated agents.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_AGENTS as u64))]
    agents: u64,
    /// How many joins / connects are in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=256))]
    concurrency: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    harness::main_with("tether-bench-agents", run(&args))
}

/// The whole benchmark: hub, joins, streams, memory, rotation, report.
async fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let n = usize::try_from(args.agents).context("--agents")?;
    let concurrency = usize::try_from(args.concurrency).context("--concurrency")?;
    let bench = Bench::start().await?;
    let result = bench.measure(n, concurrency).await;
    if result.is_err() {
        eprintln!(
            "--- last lines of the hub log ---\n{}",
            bench.hub.process().log_tail(30)
        );
    }
    let mut report = result?;
    report.wall = started.elapsed();
    report.print(n);
    Ok(())
}

/// The hub under test and what agents need to reach it.
#[derive(Debug)]
struct Bench {
    /// Declared before `dir`: the hub stops before its directory is removed.
    hub: Hub,
    _dir: TestDir,
    addr: HubAddr,
    pid: u32,
    /// The join TLS config: the hub's gRPC CA pinned, as `tether-agent join` does.
    pinned: rustls::ClientConfig,
}

impl Bench {
    /// Starts a dev hub in a fresh test directory.
    async fn start() -> Result<Self> {
        let dir = TestDir::new("bench-agents")?;
        let hub = Hub::start(&dir, HubOptions::dev("hub")).await?;
        let addr = HubAddr::parse(&hub.grpc_url())?;
        let ca_file = hub.grpc_ca_file();
        let ca_pem = std::fs::read_to_string(&ca_file)
            .with_context(|| format!("reading {}", ca_file.display()))?;
        let ca = tls::certs_from_pem(&ca_pem, "hub gRPC CA")?;
        let pin = CaPin::of_cert(ca[0].as_ref())
            .context("the hub's gRPC CA has no readable public key")?;
        let verifier = Arc::new(PinnedVerifier::new(pin, tls::provider()));
        let pinned = tls::config_with_verifier(verifier)?;
        let pid = hub.process().pid();
        eprintln!("hub pid {pid}, gRPC {}", hub.grpc_url());
        Ok(Self {
            hub,
            _dir: dir,
            addr,
            pid,
            pinned,
        })
    }

    /// Every phase, in order.
    async fn measure(&self, n: usize, concurrency: usize) -> Result<Report> {
        let cpu = Cpu::new(self.pid)?;
        tokio::time::sleep(SETTLE).await;
        let idle_kib = rss_median(self.pid).await?;
        eprintln!("idle hub RSS {idle_kib} KiB; joining {n} agents ...");

        let phase = Instant::now();
        let cpu_before = cpu.seconds()?;
        let joined = self.join_all(n, concurrency).await?;
        let join_time = phase.elapsed();
        let join_cpu = cpu.seconds()? - cpu_before;
        tokio::time::sleep(SETTLE).await;
        let joined_kib = rss_median(self.pid).await?;
        eprintln!("joined in {join_time:.1?}; hub RSS {joined_kib} KiB; opening {n} streams ...");

        let phase = Instant::now();
        let mut fleet = self.connect_all(joined, concurrency).await?;
        let connect_time = phase.elapsed();
        let connected_gauge = self.hub.metric("tether_hub_agents_connected").await?;
        let cpu_before = cpu.seconds()?;
        let sampled = Instant::now();
        tokio::time::sleep(SETTLE).await;
        let connected_kib = rss_median(self.pid).await?;
        let idle_cpu_per_s = (cpu.seconds()? - cpu_before) / sampled.elapsed().as_secs_f64();
        eprintln!(
            "{n} streams up in {connect_time:.1?}; hub RSS {connected_kib} KiB; rotating ..."
        );

        let cpu_before = cpu.seconds()?;
        let rotation = self.rotate(&mut fleet).await?;
        let rotation_cpu = cpu.seconds()? - cpu_before;
        fleet.ensure_all_alive()?;
        Ok(Report {
            idle_kib,
            joined_kib,
            connected_kib,
            connected_gauge,
            join_time,
            join_cpu,
            connect_time,
            idle_cpu_per_s,
            rotation,
            rotation_cpu,
            wall: Duration::ZERO,
        })
    }

    /// Adds and joins `n` clusters `bench-0 ...`, `concurrency` at a time.
    async fn join_all(&self, n: usize, concurrency: usize) -> Result<Vec<Joined>> {
        let token = self.hub.admin_token().await?;
        let admin = self.addr.channel(self.pinned.clone())?;
        let work = bounded(n, concurrency, |i| {
            let admin = admin.clone();
            let token = token.clone();
            let addr = self.addr.clone();
            let pinned = self.pinned.clone();
            async move {
                let name = format!("bench-{i}");
                let join_token = add_cluster(admin, &token, &name).await?;
                join(&addr, pinned, &name, join_token).await
            }
        });
        tokio::time::timeout(JOIN_LIMIT, work)
            .await
            .map_err(|_| anyhow!("joining {n} agents took longer than {JOIN_LIMIT:?}"))?
    }

    /// Opens one mTLS control stream per agent (each on its own connection) and waits
    /// until every one has received the hub's JWKS.
    async fn connect_all(&self, joined: Vec<Joined>, concurrency: usize) -> Result<Fleet> {
        let n = joined.len();
        let (events, rx) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(concurrency));
        let mut tasks = JoinSet::new();
        for (agent, identity) in joined.into_iter().enumerate() {
            let config =
                tls::mtls_config(&identity.hub_ca_pem, &identity.cert_pem, &identity.key_pem)?;
            let channel = self.addr.channel(config)?;
            tasks.spawn(stream_agent(agent, channel, gate.clone(), events.clone()));
        }
        drop(events);
        let mut fleet = Fleet::new(n, rx, tasks);
        tokio::time::timeout(CONNECT_LIMIT, fleet.wait_all(|_| true))
            .await
            .map_err(|_| {
                anyhow!(
                    "only {} of {n} agents had the JWKS after {CONNECT_LIMIT:?}",
                    fleet.count(|_| true)
                )
            })??;
        Ok(fleet)
    }

    /// Emergency rotation: from the hub publishing the new key set to the last agent.
    async fn rotate(&self, fleet: &mut Fleet) -> Result<Rotation> {
        let baseline = fleet.max_generation();
        let before = self.kids().await?;
        let command = Instant::now();
        tokio::time::timeout(ROTATION_LIMIT, self.rotate_command())
            .await
            .map_err(|_| anyhow!("`tether-hub keys rotate` ran past {ROTATION_LIMIT:?}"))??;
        let command_time = command.elapsed();
        let remaining = ROTATION_LIMIT.saturating_sub(command.elapsed());
        let (published, window) = tokio::time::timeout(remaining, self.wait_published(&before))
            .await
            .map_err(|_| anyhow!("the hub did not publish new keys within {ROTATION_LIMIT:?}"))??;
        let remaining = ROTATION_LIMIT.saturating_sub(command.elapsed());
        let is_new = move |arrivals: &[(i64, Instant)]| arrivals.iter().any(|(g, _)| *g > baseline);
        tokio::time::timeout(remaining, fleet.wait_all(is_new))
            .await
            .map_err(|_| {
                anyhow!(
                    "only {} of {} agents had JWKS generation > {baseline} within {ROTATION_LIMIT:?} of the rotation",
                    fleet.count(is_new),
                    fleet.len()
                )
            })??;
        let mut latencies_ms = fleet.first_after(baseline, published);
        latencies_ms.sort_by(f64::total_cmp);
        Ok(Rotation {
            baseline,
            new_generation: fleet.max_generation(),
            command_time,
            published_after_command: published.duration_since(command),
            publish_window: window,
            latencies_ms,
        })
    }

    /// Runs `tether-hub keys rotate --emergency --config FILE`.
    async fn rotate_command(&self) -> Result<()> {
        let bin = workspace_bin("tether-hub")?;
        let out = tokio::process::Command::new(bin)
            .args(["keys", "rotate", "--emergency", "--config"])
            .arg(self.hub.config_file())
            .kill_on_drop(true)
            .output()
            .await
            .context("running tether-hub keys rotate")?;
        ensure!(
            out.status.success(),
            "tether-hub keys rotate --emergency: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Polls the JWKS endpoint until its kid set differs from `before`. Returns when the
    /// first poll that saw the new set was sent (t0: the hub published within one poll of it).
    /// Also returns how long before t0 the last poll that still saw the old set was sent
    /// (the window in which the hub actually published).
    async fn wait_published(&self, before: &[String]) -> Result<(Instant, Duration)> {
        let mut previous = Instant::now();
        loop {
            let sent = Instant::now();
            if self.kids().await? != before {
                return Ok((sent, sent.duration_since(previous)));
            }
            previous = sent;
            tokio::time::sleep(JWKS_POLL).await;
        }
    }

    /// The sorted kids the hub serves at `/.well-known/jwks.json`.
    async fn kids(&self) -> Result<Vec<String>> {
        let jwks = self.hub.get_json("/.well-known/jwks.json").await?;
        let mut kids: Vec<String> = jwks["keys"]
            .as_array()
            .context("the JWKS has no `keys` array")?
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect();
        kids.sort();
        Ok(kids)
    }
}

/// One joined agent's identity.
#[derive(Debug)]
struct Joined {
    cert_pem: String,
    key_pem: String,
    hub_ca_pem: String,
}

/// `Admin.AddCluster(name)`; the join token.
async fn add_cluster(channel: Channel, admin_token: &str, name: &str) -> Result<String> {
    let mut request = tonic::Request::new(AddClusterRequest {
        name: name.to_owned(),
        ..Default::default()
    });
    request.set_timeout(CALL_TIMEOUT);
    let bearer = format!("Bearer {admin_token}")
        .parse()
        .context("the admin token is not a valid header value")?;
    request.metadata_mut().insert("authorization", bearer);
    let response = AdminClient::new(channel)
        .add_cluster(request)
        .await
        .with_context(|| format!("Admin.AddCluster({name})"))?;
    Ok(response.into_inner().join_token)
}

/// Key, CSR and `Registration.Join` for `name`, on a connection of its own.
async fn join(
    addr: &HubAddr,
    pinned: rustls::ClientConfig,
    name: &str,
    token: String,
) -> Result<Joined> {
    let key = csr::generate(name)?;
    let mut request = tonic::Request::new(JoinRequest {
        token,
        cluster: name.to_owned(),
        csr_pem: key.csr_pem,
        agent_version: tether_agent::VERSION.to_owned(),
    });
    request.set_timeout(CALL_TIMEOUT);
    let response = RegistrationClient::new(addr.channel(pinned)?)
        .join(request)
        .await
        .with_context(|| format!("Registration.Join({name})"))?
        .into_inner();
    Ok(Joined {
        cert_pem: response.certificate_pem,
        key_pem: key.key_pem,
        hub_ca_pem: response.hub_ca_pem,
    })
}

/// Runs `make(i)` for `i in 0..n`, at most `limit` at once on the runtime's threads;
/// the results in order, or the first error.
async fn bounded<T, F, Fut>(n: usize, limit: usize, make: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    let gate = Arc::new(Semaphore::new(limit));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let gate = gate.clone();
        let work = make(i);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            work.await.map(|t| (i, t))
        });
    }
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, t) = done.context("a worker task panicked")??;
        out[i] = Some(t);
    }
    out.into_iter()
        .map(|t| t.context("a worker produced no result"))
        .collect()
}

/// What an agent's stream task reports.
#[derive(Debug)]
enum Event {
    /// A `Jwks` message arrived.
    Jwks {
        agent: usize,
        generation: i64,
        at: Instant,
    },
    /// The stream failed or closed.
    Ended { agent: usize, why: String },
}

/// One agent's control stream: connect (holding a `gate` permit), one heartbeat, then a
/// timestamp for every `Jwks` until the stream ends. The outbound half stays open.
async fn stream_agent(
    agent: usize,
    channel: Channel,
    gate: Arc<Semaphore>,
    events: mpsc::UnboundedSender<Event>,
) {
    let why = match stream_messages(agent, channel, gate, &events).await {
        Ok(()) => "the hub closed the stream".to_owned(),
        Err(e) => format!("{e:#}"),
    };
    let _ = events.send(Event::Ended { agent, why });
}

/// The body of [`stream_agent`]; returns when the stream ends.
async fn stream_messages(
    agent: usize,
    channel: Channel,
    gate: Arc<Semaphore>,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<()> {
    let (tx, rx) = mpsc::channel::<AgentMessage>(4);
    tx.send(heartbeat())
        .await
        .context("queueing the heartbeat")?;
    let permit = gate.acquire_owned().await?;
    let mut inbound = ControlClient::new(channel)
        .connect(ReceiverStream::new(rx))
        .await
        .context("Control.Connect")?
        .into_inner();
    drop(permit);
    while let Some(message) = inbound.message().await.context("reading the stream")? {
        if let Some(hub_message::Kind::Jwks(jwks)) = message.kind {
            let at = Instant::now();
            let _ = events.send(Event::Jwks {
                agent,
                generation: jwks.generation,
                at,
            });
        }
    }
    drop(tx);
    Ok(())
}

/// The heartbeat a fresh agent sends (as `tether-agent run` does, without a proxy yet).
fn heartbeat() -> AgentMessage {
    AgentMessage {
        kind: Some(agent_message::Kind::Heartbeat(Heartbeat {
            agent_version: tether_agent::VERSION.to_owned(),
            health: "ok".to_owned(),
            ..Default::default()
        })),
    }
}

/// The connected agents: their stream tasks (aborted on drop) and every `Jwks` arrival.
#[derive(Debug)]
struct Fleet {
    events: mpsc::UnboundedReceiver<Event>,
    _tasks: JoinSet<()>,
    /// Per agent: `(generation, arrival)` of each `Jwks` message.
    arrivals: Vec<Vec<(i64, Instant)>>,
    /// The first stream that ended, if any.
    ended: Option<(usize, String)>,
}

impl Fleet {
    fn new(n: usize, events: mpsc::UnboundedReceiver<Event>, tasks: JoinSet<()>) -> Self {
        Self {
            events,
            _tasks: tasks,
            arrivals: vec![Vec::new(); n],
            ended: None,
        }
    }

    fn len(&self) -> usize {
        self.arrivals.len()
    }

    /// How many agents have at least one arrival and satisfy `done`.
    fn count(&self, done: impl Fn(&[(i64, Instant)]) -> bool) -> usize {
        self.arrivals
            .iter()
            .filter(|a| !a.is_empty() && done(a))
            .count()
    }

    /// Takes events until every agent has an arrival and satisfies `done`; fails as soon as
    /// a stream ends.
    async fn wait_all(&mut self, done: impl Fn(&[(i64, Instant)]) -> bool) -> Result<()> {
        self.ensure_all_alive()?;
        let mut remaining = self.len() - self.count(&done);
        while remaining > 0 {
            let event = self
                .events
                .recv()
                .await
                .context("every stream task is gone")?;
            if let Some(agent) = self.record(event) {
                let a = &self.arrivals[agent];
                // Counted the first time it satisfies `done` (arrivals only grow).
                let before = a.len() > 1 && done(&a[..a.len() - 1]);
                if done(a) && !before {
                    remaining -= 1;
                }
            }
            self.check_ended()?;
        }
        Ok(())
    }

    /// Records any events already queued.
    fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.record(event);
        }
    }

    /// Records one event; the agent that got a `Jwks`, if it was one.
    fn record(&mut self, event: Event) -> Option<usize> {
        match event {
            Event::Jwks {
                agent,
                generation,
                at,
            } => {
                self.arrivals[agent].push((generation, at));
                Some(agent)
            }
            Event::Ended { agent, why } => {
                self.ended.get_or_insert((agent, why));
                None
            }
        }
    }

    /// Records queued events; an error if any stream has ended.
    fn ensure_all_alive(&mut self) -> Result<()> {
        self.drain();
        self.check_ended()
    }

    /// An error if a stream has ended (among the events recorded so far).
    fn check_ended(&self) -> Result<()> {
        match &self.ended {
            Some((agent, why)) => bail!("the control stream of bench-{agent} ended: {why}"),
            None => Ok(()),
        }
    }

    /// The highest generation any agent has received.
    fn max_generation(&self) -> i64 {
        self.arrivals
            .iter()
            .flatten()
            .map(|(g, _)| *g)
            .max()
            .unwrap_or(0)
    }

    /// Per agent: ms from `t0` to its first `Jwks` newer than `baseline` (negative if it
    /// arrived before `t0` was observed).
    fn first_after(&self, baseline: i64, t0: Instant) -> Vec<f64> {
        self.arrivals
            .iter()
            .filter_map(|a| a.iter().find(|(g, _)| *g > baseline))
            .map(|(_, at)| signed_ms(*at, t0))
            .collect()
    }
}

/// `at - t0` in milliseconds, negative when `at` is earlier.
fn signed_ms(at: Instant, t0: Instant) -> f64 {
    match at.checked_duration_since(t0) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(t0.duration_since(at).as_secs_f64() * 1e3),
    }
}

/// The rotation's figures.
#[derive(Debug)]
struct Rotation {
    baseline: i64,
    new_generation: i64,
    command_time: Duration,
    /// From starting `keys rotate` to the JWKS endpoint serving the new kids.
    published_after_command: Duration,
    /// How long before t0 the hub was last seen serving the old keys.
    publish_window: Duration,
    /// Sorted, per agent, ms after the hub published.
    latencies_ms: Vec<f64>,
}

impl Rotation {
    /// Nearest-rank percentile `p` (0..=1) of the latencies.
    fn percentile(&self, p: f64) -> f64 {
        let n = self.latencies_ms.len();
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n.max(1));
        self.latencies_ms.get(rank - 1).copied().unwrap_or(f64::NAN)
    }

    fn max(&self) -> f64 {
        self.latencies_ms.last().copied().unwrap_or(f64::NAN)
    }

    /// From the first agent receiving the new keys to the last (no polling involved).
    fn spread(&self) -> f64 {
        match (self.latencies_ms.first(), self.latencies_ms.last()) {
            (Some(first), Some(last)) => last - first,
            _ => f64::NAN,
        }
    }
}

/// Everything measured.
#[derive(Debug)]
struct Report {
    idle_kib: u64,
    joined_kib: u64,
    connected_kib: u64,
    connected_gauge: Option<f64>,
    join_time: Duration,
    join_cpu: f64,
    connect_time: Duration,
    idle_cpu_per_s: f64,
    rotation: Rotation,
    rotation_cpu: f64,
    wall: Duration,
}

impl Report {
    /// KiB per agent from `from_kib` to the connected RSS.
    fn per_agent(&self, from_kib: u64, n: usize) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let delta = self.connected_kib as f64 - from_kib as f64;
        #[allow(clippy::cast_precision_loss)]
        let n = n as f64;
        delta / n
    }

    /// The human table, then the JSON summary on one line.
    fn print(&self, n: usize) {
        let r = &self.rotation;
        let rows = [
            ("build", "debug (target/debug)".to_owned()),
            ("agents", n.to_string()),
            ("hub RSS idle", format!("{} KiB", self.idle_kib)),
            (
                "hub RSS joined, no streams",
                format!("{} KiB", self.joined_kib),
            ),
            ("hub RSS connected", format!("{} KiB", self.connected_kib)),
            (
                "per agent (connected - idle)",
                format!("{:.1} KiB", self.per_agent(self.idle_kib, n)),
            ),
            (
                "per agent (connected - joined)",
                format!("{:.1} KiB", self.per_agent(self.joined_kib, n)),
            ),
            (
                "hub gauge agents_connected",
                format!("{:?}", self.connected_gauge),
            ),
            (
                "join all",
                format!("{:.1?} (hub CPU {:.1} s)", self.join_time, self.join_cpu),
            ),
            (
                "connect all + first JWKS",
                format!("{:.1?}", self.connect_time),
            ),
            (
                "hub CPU while connected, idle",
                format!("{:.3} s/s", self.idle_cpu_per_s),
            ),
            (
                "JWKS generation",
                format!("{} -> {}", r.baseline, r.new_generation),
            ),
            ("keys rotate command", format!("{:.1?}", r.command_time)),
            (
                "published after command start",
                format!("{:.1?}", r.published_after_command),
            ),
            (
                "t0 resolution (JWKS poll)",
                format!("{:.1?} (pushes may precede t0 by this)", r.publish_window),
            ),
            (
                "push p50 after publish",
                format!("{:.1} ms", r.percentile(0.5)),
            ),
            (
                "push p99 after publish",
                format!("{:.1} ms", r.percentile(0.99)),
            ),
            ("push max (all agents had it)", format!("{:.1} ms", r.max())),
            (
                "fan-out: first agent -> last",
                format!("{:.1} ms", r.spread()),
            ),
            (
                "hub CPU during rotation",
                format!("{:.2} s", self.rotation_cpu),
            ),
            ("wall time", format!("{:.1?}", self.wall)),
        ];
        for (what, value) in rows {
            println!("{what:<34} {value}");
        }
        let json = serde_json::json!({
            "build": "debug",
            "agents": n,
            "hub_rss_kib": {
                "idle": self.idle_kib,
                "joined": self.joined_kib,
                "connected": self.connected_kib,
            },
            "per_agent_kib": self.per_agent(self.idle_kib, n),
            "per_agent_kib_streams_only": self.per_agent(self.joined_kib, n),
            "hub_agents_connected_gauge": self.connected_gauge,
            "join_all_s": self.join_time.as_secs_f64(),
            "join_hub_cpu_s": self.join_cpu,
            "connect_all_s": self.connect_time.as_secs_f64(),
            "hub_cpu_connected_idle_s_per_s": self.idle_cpu_per_s,
            "rotation": {
                "generation_before": r.baseline,
                "generation_after": r.new_generation,
                "command_s": r.command_time.as_secs_f64(),
                "published_after_command_s": r.published_after_command.as_secs_f64(),
                "t0_resolution_ms": r.publish_window.as_secs_f64() * 1e3,
                "push_ms": {
                    "p50": r.percentile(0.5),
                    "p99": r.percentile(0.99),
                    "max": r.max(),
                    "all": r.max(),
                },
                "fan_out_first_to_last_ms": r.spread(),
                "hub_cpu_s": self.rotation_cpu,
            },
            "wall_s": self.wall.as_secs_f64(),
        });
        println!("{json}");
    }
}
