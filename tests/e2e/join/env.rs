//! A dev hub, spoke apiservers on one etcd, and the CLI commands that join them.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_e2e::{
    Cluster, ClusterOptions, CmdOutput, Etcd, Hub, HubOptions, ProcessGuard, TestDir, workspace_bin,
};

/// Upper bound for any CLI call.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

pub struct JoinEnv {
    pub dir: TestDir,
    pub etcd: Etcd,
    pub hub: Hub,
    admin_token: String,
}

impl JoinEnv {
    pub async fn start(name: &str) -> Self {
        let dir = TestDir::new(name).expect("test dir");
        let etcd = Etcd::start(&dir).await.expect("etcd");
        let hub = Hub::start(&dir, HubOptions::dev("hub")).await.expect("hub");
        let admin_token = hub.admin_token().await.expect("admin token");
        Self {
            dir,
            etcd,
            hub,
            admin_token,
        }
    }

    /// Restarts the hub (same ports and data) and mints a fresh admin token.
    pub async fn restart_hub(self) -> Self {
        let Self { dir, etcd, hub, .. } = self;
        let hub = hub.restart().await.expect("hub restart");
        let admin_token = hub.admin_token().await.expect("admin token");
        Self {
            dir,
            etcd,
            hub,
            admin_token,
        }
    }

    /// A new spoke apiserver sharing the etcd.
    pub async fn spoke(&self, name: &str) -> Cluster {
        Cluster::start(&self.dir, ClusterOptions::new(name).etcd(&self.etcd))
            .await
            .expect("spoke apiserver")
    }

    /// Mints a fresh admin token (after an emergency rotation the old one is refused).
    pub async fn refresh_admin_token(&mut self) {
        self.admin_token = self.hub.admin_token().await.expect("admin token");
    }

    /// `tetherctl --hub GRPC --ca-file CA ARGS` with the admin token in the environment.
    pub async fn tetherctl(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = tokio::process::Command::new(workspace_bin("tetherctl").expect("tetherctl"));
        cmd.arg("--hub")
            .arg(self.hub.grpc_url())
            .arg("--ca-file")
            .arg(self.hub.grpc_ca_file())
            .args(args)
            .env("TETHER_ADMIN_TOKEN", &self.admin_token)
            .env_remove("TETHER_HUB_CA");
        run(cmd).await
    }

    /// `tetherctl cluster add NAME EXTRA...`: the printed join command, split into words.
    pub async fn add_cluster(&self, name: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["cluster", "add", name];
        args.extend_from_slice(extra);
        let out = self.tetherctl(&args).await;
        assert!(out.success(), "cluster add: {}", out.stderr);
        let words: Vec<String> = out.stdout.split_whitespace().map(str::to_owned).collect();
        assert_eq!(
            words.first().map(String::as_str),
            Some("tether-agent"),
            "{}",
            out.stdout
        );
        assert_eq!(
            words.get(1).map(String::as_str),
            Some("join"),
            "{}",
            out.stdout
        );
        words
    }

    /// `tetherctl cluster list -o json`, by cluster name.
    pub async fn list(&self) -> Vec<Value> {
        let out = self.tetherctl(&["cluster", "list", "-o", "json"]).await;
        assert!(out.success(), "cluster list: {}", out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).expect("json");
        v["clusters"].as_array().cloned().unwrap_or_default()
    }

    pub async fn cluster(&self, name: &str) -> Value {
        self.list()
            .await
            .into_iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
    }

    /// Runs the join command `words` (from `cluster add`) against `spoke`, with `edit`
    /// applied to the words first (to tamper with a flag).
    pub async fn join(&self, words: &[String], spoke: &Cluster) -> CmdOutput {
        let mut cmd = tokio::process::Command::new(workspace_bin("tether-agent").expect("agent"));
        cmd.args(&words[1..])
            .arg("--kubeconfig")
            .arg(spoke.admin_kubeconfig())
            .env("NO_COLOR", "1");
        run(cmd).await
    }

    /// Starts `tether-agent run` for `spoke` (identity read from its Secret) with its own
    /// state directory; returns the process and the state directory.
    pub fn run_agent(&self, spoke: &Cluster) -> (ProcessGuard, PathBuf) {
        let state = self
            .dir
            .subdir(&format!("agent-{}", spoke.name()))
            .expect("state dir");
        let mut cmd = Command::new(workspace_bin("tether-agent").expect("agent"));
        cmd.arg("run")
            .arg("--kubeconfig")
            .arg(spoke.admin_kubeconfig())
            .arg("--namespace")
            .arg("tether-system")
            .arg("--state-dir")
            .arg(&state)
            .env("NO_COLOR", "1");
        let guard = ProcessGuard::spawn(
            &format!("tether-agent {}", spoke.name()),
            cmd,
            &self.dir,
            &format!("agent-{}.log", spoke.name()),
        )
        .expect("agent");
        (guard, state)
    }
}

/// The agent's `status.json` (`connected`, `jwks_generation`, `kids`, `revoked_sids`).
pub fn status(state: &std::path::Path) -> Option<Value> {
    let text = std::fs::read_to_string(state.join("status.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns how long it took.
pub async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(mut cmd: tokio::process::Command) -> CmdOutput {
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .expect("the command hung")
        .expect("run the command");
    CmdOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
