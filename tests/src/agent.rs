//! Joining spokes the way an operator does: `tetherctl cluster add` at the hub, the printed
//! `tether-agent join` against the spoke, then `tether-agent run` as a local process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{Cluster, CmdOutput};
use crate::deps::workspace_bin;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::process::ProcessGuard;
use crate::testdir::TestDir;

/// Upper bound for one CLI call.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// The namespace `join` installs the agent into.
pub const AGENT_NAMESPACE: &str = "tether-system";

/// `tetherctl --hub GRPC --ca-file CA ARGS`, with `admin_token` in `TETHER_ADMIN_TOKEN`.
pub async fn tetherctl(hub: &Hub, admin_token: &str, args: &[&str]) -> Result<CmdOutput> {
    let mut cmd = tokio::process::Command::new(workspace_bin("tetherctl")?);
    cmd.arg("--hub")
        .arg(hub.grpc_url())
        .arg("--ca-file")
        .arg(hub.grpc_ca_file())
        .args(args)
        .env("TETHER_ADMIN_TOKEN", admin_token)
        .env_remove("TETHER_HUB_GRPC_CA");
    run("tetherctl", cmd).await
}

/// `tetherctl cluster add NAME EXTRA...`: the printed join command, as words.
pub async fn add_cluster(
    hub: &Hub,
    admin_token: &str,
    name: &str,
    extra: &[&str],
) -> Result<Vec<String>> {
    let mut args = vec!["cluster", "add", name];
    args.extend_from_slice(extra);
    let out = tetherctl(hub, admin_token, &args).await?;
    if !out.success() {
        return Err(Error::Failed(format!(
            "tetherctl cluster add {name}: {}",
            out.stderr
        )));
    }
    let words: Vec<String> = out.stdout.split_whitespace().map(str::to_owned).collect();
    match (words.first(), words.get(1)) {
        (Some(a), Some(b)) if a == "tether-agent" && b == "join" => Ok(words),
        _ => Err(Error::Failed(format!(
            "cluster add printed no join command: {}",
            out.stdout
        ))),
    }
}

/// Runs a join command (as printed by `cluster add`) against `spoke` with its admin kubeconfig.
pub async fn join(words: &[String], spoke: &Cluster) -> Result<CmdOutput> {
    let mut cmd = tokio::process::Command::new(workspace_bin("tether-agent")?);
    cmd.args(words.get(1..).unwrap_or_default())
        .arg("--kubeconfig")
        .arg(spoke.admin_kubeconfig())
        .env("NO_COLOR", "1");
    run("tether-agent join", cmd).await
}

/// `tether-agent run` for one spoke, reading its identity from the spoke's Secret.
#[derive(Debug)]
pub struct Agent {
    guard: ProcessGuard,
    state: PathBuf,
    proxy_url: Option<String>,
    metrics_url: Option<String>,
}

impl Agent {
    /// Starts the agent for `spoke` with its own state directory under `dir` (control loop
    /// only: no proxy).
    pub fn start(dir: &TestDir, spoke: &Cluster) -> Result<Self> {
        Self::spawn(dir, spoke, |_| Ok(()))
    }

    /// Starts the agent with its impersonating proxy on `127.0.0.1:proxy_port`, forwarding to
    /// the spoke's apiserver with a TokenRequest token of the agent's ServiceAccount (what
    /// the in-cluster agent gets from its projected token).
    pub async fn start_with_proxy(dir: &TestDir, spoke: &Cluster, proxy_port: u16) -> Result<Self> {
        let token = spoke
            .kubectl_ok(&[
                "create",
                "token",
                "tether-agent",
                "-n",
                AGENT_NAMESPACE,
                "--duration",
                "2h",
            ])
            .await?;
        let token_file = dir.path().join(format!("agent-{}-sa.token", spoke.name()));
        std::fs::write(&token_file, token.trim())
            .map_err(Error::io(format!("writing {}", token_file.display())))?;
        let api = spoke.api_url();
        let ca = spoke.ca_file();
        let metrics_port = crate::ports::free_port()?;
        let mut agent = Self::spawn(dir, spoke, |cmd| {
            cmd.arg("--metrics-listen")
                .arg(format!("127.0.0.1:{metrics_port}"))
                .arg("--proxy-listen")
                .arg(format!("127.0.0.1:{proxy_port}"))
                .arg("--proxy-host")
                .arg("127.0.0.1")
                .arg("--apiserver")
                .arg(&api)
                .arg("--apiserver-ca")
                .arg(&ca)
                .arg("--apiserver-token-file")
                .arg(&token_file);
            Ok(())
        })?;
        agent.proxy_url = Some(format!("https://127.0.0.1:{proxy_port}"));
        agent.metrics_url = Some(format!("http://127.0.0.1:{metrics_port}/metrics"));
        Ok(agent)
    }

    /// The proxy URL the agent reports (set when it runs its proxy).
    pub fn proxy_url(&self) -> Option<String> {
        self.proxy_url.clone()
    }

    /// The agent's Prometheus endpoint (set when it runs its proxy).
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics_url.clone()
    }

    /// The proxy's CA certificate (generated in the state directory).
    pub fn proxy_ca_file(&self) -> PathBuf {
        self.state.join("proxy-ca.crt")
    }

    fn spawn(
        dir: &TestDir,
        spoke: &Cluster,
        extra: impl FnOnce(&mut Command) -> Result<()>,
    ) -> Result<Self> {
        let state = dir.subdir(&format!("agent-{}", spoke.name()))?;
        let mut cmd = Command::new(workspace_bin("tether-agent")?);
        cmd.arg("run")
            .arg("--kubeconfig")
            .arg(spoke.admin_kubeconfig())
            .arg("--namespace")
            .arg(AGENT_NAMESPACE)
            .arg("--state-dir")
            .arg(&state)
            .env("NO_COLOR", "1");
        extra(&mut cmd)?;
        let guard = ProcessGuard::spawn(
            &format!("tether-agent {}", spoke.name()),
            cmd,
            dir,
            &format!("agent-{}.log", spoke.name()),
        )?;
        Ok(Self {
            guard,
            state,
            proxy_url: None,
            metrics_url: None,
        })
    }

    /// The agent's `status.json`: `connected`, `jwks_generation`, `kids`, `revoked_sids`.
    pub fn status(&self) -> Option<Value> {
        status_in(&self.state)
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The process (log path).
    pub fn process(&self) -> &ProcessGuard {
        &self.guard
    }

    /// Waits until the agent reports `connected` = `want`.
    pub async fn wait_connected(&mut self, want: bool, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let state = self.state.clone();
        self.guard
            .wait_ready(
                if want {
                    "connected to the hub"
                } else {
                    "disconnected"
                },
                timeout,
                || {
                    let ok = status_in(&state).is_some_and(|s| s["connected"] == want);
                    async move { ok }
                },
            )
            .await?;
        Ok(start.elapsed())
    }
}

fn status_in(state: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(state.join("status.json")).ok()?;
    serde_json::from_str(&text).ok()
}

async fn run(what: &str, mut cmd: tokio::process::Command) -> Result<CmdOutput> {
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .map_err(|_| Error::Failed(format!("{what} did not finish in {CLI_TIMEOUT:?}")))?
        .map_err(Error::io(format!("running {what}")))?;
    Ok(CmdOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
