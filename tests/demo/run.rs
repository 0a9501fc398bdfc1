//! `up` and `down`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};
use tether_e2e::agent;
use tether_e2e::{
    Agent, Cluster, ClusterOptions, Etcd, Hub, HubOptions, IdpClient, IdpOptions, LoginHub,
    TestDir, UPSTREAM_CLIENT_ID, UpstreamIdp, free_port,
};
use tether_hub::clients::{generate_secret, hash_secret};

use crate::env::{EnvFile, var_name};

/// RBAC every demo spoke gets: `k8s-admins` are cluster-admin; `k8s-viewers` may view the
/// `default` namespace (a RoleBinding: they cannot list namespaces); ArgoCD's identity
/// `tether:argocd` is cluster-admin.
const SPOKE_RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: tether-demo-k8s-admins}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: k8s-admins}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: tether-demo-k8s-viewers, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: k8s-viewers}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: tether-demo-argocd}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "tether:argocd"}]
"#;

/// What the hub cluster gets: ArgoCD's namespace and its application controller's
/// ServiceAccount (whose tokens the hub exchanges for spoke tokens).
const HUB_ARGOCD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: argocd}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: argocd-application-controller, namespace: argocd}
"#;

/// The hub's policies: people in `k8s-admins` or `k8s-viewers` may reach every spoke (carol,
/// in neither, none); ArgoCD's controller reaches every spoke as `tether:argocd`.
const HUB_POLICY: &str = r#"access:
  rules:
    - groups: [k8s-admins, k8s-viewers]
      clusters: {names: ["*"]}
machine:
  policies:
    - name: argocd
      serviceaccount: {namespace: argocd, name: argocd-application-controller}
      clusters: {names: ["*"]}
      identity: {username: "tether:argocd", groups: []}
"#;

/// The example confidential client standing for ArgoCD or any web app.
const DEMO_CLIENT_ID: &str = "tether-demo-app";

/// How long `down` waits for `up` to stop its parts before killing it.
const DOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything `up` started; dropping it stops every process.
struct Running {
    _agents: Vec<(Agent, String)>,
    _hub: Hub,
    _idp: UpstreamIdp,
    _spokes: Vec<Cluster>,
    _hub_cluster: Cluster,
    _etcd: Etcd,
}

/// Removes the pid file (and the env file) when `up` ends, however it ends.
struct PidFile {
    pid: PathBuf,
    env: PathBuf,
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.env);
        let _ = std::fs::remove_file(&self.pid);
    }
}

/// Starts the demo and waits for SIGINT/SIGTERM.
pub async fn up(state_dir: &Path, spokes: u8) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let state_dir = state_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", state_dir.display()))?;
    let pid_path = state_dir.join("demo.pid");
    if let Some(pid) = running_pid(&pid_path) {
        bail!(
            "a demo is already running from {} (pid {pid}); stop it with `scripts/demo down --state-dir {}`",
            state_dir.display(),
            state_dir.display()
        );
    }
    let env_path = state_dir.join("env");
    let _ = std::fs::remove_file(&env_path);
    std::fs::write(&pid_path, std::process::id().to_string())
        .with_context(|| format!("writing {}", pid_path.display()))?;
    let _pid_file = PidFile {
        pid: pid_path,
        env: env_path.clone(),
    };

    // Listen for signals before starting anything: every part runs in its own process
    // group, so a Ctrl-C must reach this process and be turned into an orderly stop.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let stop = async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tokio::pin!(stop);

    let started = Instant::now();
    let running = tokio::select! {
        r = start(&state_dir, spokes) => r?,
        () = &mut stop => {
            println!("interrupted while starting; stopping what was started");
            return Ok(());
        }
    };
    let (running, env) = running;
    env.write(&env_path)
        .with_context(|| format!("writing {}", env_path.display()))?;
    println!(
        "\nready in {}s. Shell variables: {}\n  source {}\nStop with: scripts/demo down --state-dir {}",
        started.elapsed().as_secs(),
        env_path.display(),
        env_path.display(),
        state_dir.display()
    );
    stop.await;
    println!("stopping");
    drop(running);
    Ok(())
}

async fn start(state_dir: &Path, spokes: u8) -> anyhow::Result<(Running, EnvFile)> {
    let run_dir = state_dir.join("run");
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("removing the previous run in {}", run_dir.display()))?;
    }
    let dir = TestDir::persistent(&run_dir)?;
    let bin_dir = tether_e2e::workspace_bin("tether-hub")?
        .parent()
        .map(Path::to_path_buf)
        .context("locating the binaries")?;

    step("etcd");
    let etcd = Etcd::start(&dir).await?;
    step("hub cluster (kube-apiserver)");
    let hub_cluster = Cluster::start(&dir, ClusterOptions::new("hub").etcd(&etcd)).await?;
    hub_cluster.apply_yaml(HUB_ARGOCD).await?;
    let mut spoke_clusters = Vec::new();
    for i in 1..=spokes {
        let name = format!("spoke-{i}");
        step(&format!("{name} (kube-apiserver + test node)"));
        let spoke = Cluster::start(
            &dir,
            ClusterOptions::new(&name).etcd(&etcd).with_test_node(),
        )
        .await?;
        spoke.apply_yaml(SPOKE_RBAC).await?;
        spoke_clusters.push(spoke);
    }
    let hub_port = free_port()?;
    let upstream_secret = generate_secret().context("generating the hub's upstream secret")?;
    let login = LoginHub {
        port: hub_port,
        idp_issuer: String::new(),
        upstream_secret: upstream_secret.expose().to_owned(),
        recheck_interval: "1m".into(),
        cluster_token_lifetime: "60s".into(),
        clock_skew: "30s".into(),
        extra_yaml: String::new(),
    };
    step("upstream IdP (alice, bob, carol)");
    let idp = UpstreamIdp::start(
        &dir,
        IdpOptions::new().client(IdpClient::new(
            UPSTREAM_CLIENT_ID,
            upstream_secret.expose(),
            &[&login.callback()],
        )),
    )
    .await?;

    // The example web app: a confidential client allowed to exchange for every demo spoke.
    let demo_secret = generate_secret().context("generating the demo client's secret")?;
    let demo_redirect = format!("http://127.0.0.1:{}/callback", free_port()?);
    // ArgoCD's cluster Secrets run the credential plugin with the controller's token; in a
    // pod that is the projected token, here a TokenRequest token in the state directory.
    let argocd_token = argocd_token(&dir, &hub_cluster).await?;
    let login = LoginHub {
        idp_issuer: idp.issuer().to_owned(),
        extra_yaml: format!(
            "clients:\n  - id: {DEMO_CLIENT_ID}\n    kind: confidential\n    secret_hash: \"{}\"\n    redirect_uris: [\"{demo_redirect}\"]\n    token_exchange: [\"spoke-*\"]\n{HUB_POLICY}hub_cluster:\n  kubeconfig: \"{}\"\nargocd:\n  namespace: argocd\n  credential_command: \"{}\"\n  token_file: \"{}\"\n  resync_interval: 10s\n",
            hash_secret(&demo_secret),
            hub_cluster.admin_kubeconfig().display(),
            bin_dir.join("tetherctl").display(),
            argocd_token.display(),
        ),
        ..login
    };
    step("tether-hub (SQLite, logging in through the IdP)");
    let hub = Hub::start(&dir, HubOptions::with_login("tether-hub", &login)?).await?;
    let agents = join_spokes(&dir, &hub, &spoke_clusters).await?;

    let mut env = EnvFile::default();
    env.set("TETHER_STATE_DIR", state_dir.display().to_string());
    env.set("TETHER_BIN_DIR", bin_dir.display().to_string());
    env.set("TETHER_HUB_URL", hub.url());
    env.set("TETHER_HUB_GRPC_URL", hub.grpc_url());
    env.set(
        "TETHER_HUB_GRPC_CA",
        hub.grpc_ca_file().display().to_string(),
    );
    env.set("TETHER_HUB_CA", hub.ca_file().display().to_string());
    env.set("TETHER_HUB_METRICS_URL", hub.metrics_url());
    env.set("TETHER_IDP_URL", idp.issuer());
    env.set("TETHER_DEMO_CLIENT_ID", DEMO_CLIENT_ID);
    env.set("TETHER_DEMO_CLIENT_SECRET", demo_secret.expose());
    env.set("TETHER_DEMO_REDIRECT_URI", &demo_redirect);
    let hub_bin = bin_dir.join("tether-hub");
    env.set(
        "TETHER_ADMIN_TOKEN_CMD",
        format!(
            "{} admin-token --config {}",
            hub_bin.display(),
            hub.data_dir().join("hub.yaml").display()
        ),
    );
    env.set(
        "TETHER_ARGOCD_TOKEN_FILE",
        argocd_token.display().to_string(),
    );
    env.set(
        "HUB_ADMIN_KUBECONFIG",
        hub_cluster.admin_kubeconfig().display().to_string(),
    );
    let names: Vec<&str> = spoke_clusters.iter().map(Cluster::name).collect();
    env.set("TETHER_SPOKES", names.join(" "));
    for (spoke, (agent, proxy_url)) in spoke_clusters.iter().zip(&agents) {
        let var = var_name(spoke.name());
        env.set(&format!("SPOKE_{var}_PROXY_URL"), proxy_url);
        env.set(
            &format!("SPOKE_{var}_PROXY_CA"),
            agent.proxy_ca_file().display().to_string(),
        );
        env.set(
            &format!("SPOKE_{var}_ADMIN_KUBECONFIG"),
            spoke.admin_kubeconfig().display().to_string(),
        );
        if let Some(pod) = spoke.test_pod() {
            env.set(&format!("SPOKE_{var}_TEST_POD"), pod);
        }
    }

    println!("\nTether demo");
    println!(
        "  hub:        {}  (CA {})",
        hub.url(),
        hub.ca_file().display()
    );
    println!(
        "  discovery:  {}/.well-known/openid-configuration",
        hub.url()
    );
    println!("  metrics:    {}", hub.metrics_url());
    println!(
        "  IdP:        {}  (alice/alice-pass, bob/bob-pass, carol/carol-pass)",
        idp.issuer()
    );
    println!(
        "  hub cluster: kubectl --kubeconfig {} get ns",
        hub_cluster.admin_kubeconfig().display()
    );
    for spoke in &spoke_clusters {
        println!(
            "  {}:    kubectl --kubeconfig {} exec -n {} -- echo hello",
            spoke.name(),
            spoke.admin_kubeconfig().display(),
            spoke.test_pod().unwrap_or_default().replace('/', " ")
        );
    }
    let tetherctl = bin_dir.join("tetherctl");
    println!(
        "  log in with kubectl (a browser opens at the IdP; --no-browser for a device code):\n    source {env}\n    {tetherctl} login --hub $TETHER_HUB_URL --hub-ca $TETHER_HUB_CA\n    {kubectl} --context tether-spoke-1 exec -n default test-pod -- echo hello",
        env = state_dir.join("env").display(),
        tetherctl = tetherctl.display(),
        kubectl = tether_e2e::Deps::get().kubectl()?.display(),
    );
    println!(
        "  ArgoCD's cluster Secrets (one per spoke, written by the hub):\n    kubectl --kubeconfig $HUB_ADMIN_KUBECONFIG -n argocd get secrets -l argocd.argoproj.io/secret-type=cluster\n    {tetherctl} credential --hub $TETHER_HUB_URL --hub-ca $TETHER_HUB_CA --cluster spoke-1 --token-file $TETHER_ARGOCD_TOKEN_FILE",
        tetherctl = tetherctl.display(),
    );
    println!(
        "  log in as alice through the hub with a certified OIDC client (as ArgoCD would) and\n  exchange her session for a 60-second spoke-1 token (bob and carol work too):\n    source {env}\n    NODE_EXTRA_CA_CERTS=$TETHER_HUB_CA node {rp} $TETHER_HUB_URL \\\n      $TETHER_DEMO_CLIENT_ID $TETHER_DEMO_CLIENT_SECRET $TETHER_DEMO_REDIRECT_URI alice alice-pass spoke-1",
        env = state_dir.join("env").display(),
        rp = tether_e2e::deps::repo_root()
            .join("tests/fixtures/rp/hub_login.mjs")
            .display(),
    );
    println!(
        "  kubectl through spoke-1's proxy as alice (a 60-second token from the hub):\n    TOKEN=$(NODE_EXTRA_CA_CERTS=$TETHER_HUB_CA node {rp} $TETHER_HUB_URL $TETHER_DEMO_CLIENT_ID \\\n      $TETHER_DEMO_CLIENT_SECRET $TETHER_DEMO_REDIRECT_URI alice alice-pass spoke-1 | jq -r .exchange.access_token)\n    {kubectl} --server $SPOKE_SPOKE_1_PROXY_URL --certificate-authority $SPOKE_SPOKE_1_PROXY_CA \\\n      --token $TOKEN exec -n default test-pod -- echo hello",
        kubectl = tether_e2e::Deps::get().kubectl()?.display(),
        rp = tether_e2e::deps::repo_root()
            .join("tests/fixtures/rp/hub_login.mjs")
            .display(),
    );
    println!("  admin token: $TETHER_ADMIN_TOKEN_CMD");
    println!(
        "  spokes:     TETHER_ADMIN_TOKEN=$($TETHER_ADMIN_TOKEN_CMD) {} --hub $TETHER_HUB_GRPC_URL --ca-file $TETHER_HUB_GRPC_CA cluster list",
        bin_dir.join("tetherctl").display()
    );
    println!("  logs:       {}", run_dir.display());

    Ok((
        Running {
            _agents: agents,
            _hub: hub,
            _idp: idp,
            _spokes: spoke_clusters,
            _hub_cluster: hub_cluster,
            _etcd: etcd,
        },
        env,
    ))
}

/// Joins every spoke the way an operator does: `tetherctl cluster add` at the hub, the
/// printed `tether-agent join` against the spoke, then `tether-agent run` with its proxy
/// (as a local process: the demo's spokes have no container runtime to run its Deployment).
async fn join_spokes(
    dir: &TestDir,
    hub: &Hub,
    spokes: &[Cluster],
) -> anyhow::Result<Vec<(Agent, String)>> {
    let token = hub.admin_token().await?;
    let mut agents = Vec::new();
    for spoke in spokes {
        step(&format!(
            "the agent of {} (tetherctl cluster add, tether-agent join, tether-agent run)",
            spoke.name()
        ));
        let words = agent::add_cluster(hub, &token, spoke.name(), &[]).await?;
        let out = agent::join(&words, spoke).await?;
        if !out.success() {
            bail!("tether-agent join {} failed: {}", spoke.name(), out.stderr);
        }
        let mut running = Agent::start_with_proxy(dir, spoke, free_port()?).await?;
        running
            .wait_connected(true, Duration::from_secs(30))
            .await?;
        let proxy_url = running.proxy_url().context("the agent runs no proxy")?;
        agents.push((running, proxy_url));
    }
    Ok(agents)
}

/// A 24-hour TokenRequest token of ArgoCD's controller ServiceAccount, in `DIR/argocd/token`.
async fn argocd_token(dir: &TestDir, hub_cluster: &Cluster) -> anyhow::Result<PathBuf> {
    let out = tether_e2e::cluster::run_kubectl(
        &hub_cluster.admin_kubeconfig(),
        dir.path(),
        &[
            "create",
            "token",
            "argocd-application-controller",
            "-n",
            "argocd",
            "--duration",
            "24h",
        ],
        &[],
        None,
    )
    .await?;
    if !out.success() {
        bail!(
            "kubectl create token for ArgoCD's controller failed: {}",
            out.stderr
        );
    }
    let folder = dir.path().join("argocd");
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let path = folder.join("token");
    tether_e2e::write_private(&path, out.stdout.trim().as_bytes())?;
    Ok(path)
}

fn step(what: &str) {
    println!("starting {what}");
}

/// Stops the demo running from `state_dir`.
pub fn down(state_dir: &Path) -> anyhow::Result<()> {
    let pid_path = state_dir.join("demo.pid");
    let Some(pid) = running_pid(&pid_path) else {
        println!("no demo is running from {}", state_dir.display());
        return Ok(());
    };
    let target = Pid::from_raw(pid).context("invalid pid in the pid file")?;
    kill_process(target, Signal::TERM).with_context(|| format!("signalling pid {pid}"))?;
    let deadline = Instant::now() + DOWN_TIMEOUT;
    while Instant::now() < deadline {
        if !alive(pid) {
            println!("demo stopped");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = kill_process(target, Signal::KILL);
    bail!(
        "the demo (pid {pid}) did not stop within {DOWN_TIMEOUT:?}; killed it: run `scripts/check-no-leftovers.sh --kill` to stop its parts"
    )
}

/// The pid in `pid_file` if that process is a live `tether-demo`.
fn running_pid(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive(pid).then_some(pid)
}

fn alive(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("tether-demo"))
}
