//! A dev hub and spoke apiservers on one etcd; joining goes through the fixtures'
//! operator path (`tether_e2e::agent`).

use std::time::{Duration, Instant};

use serde_json::Value;
use tether_e2e::{
    Agent, Cluster, ClusterOptions, CmdOutput, Etcd, Hub, HubOptions, TestDir, agent,
};

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

    pub async fn tetherctl(&self, args: &[&str]) -> CmdOutput {
        agent::tetherctl(&self.hub, &self.admin_token, args)
            .await
            .expect("tetherctl")
    }

    pub async fn add_cluster(&self, name: &str, extra: &[&str]) -> Vec<String> {
        agent::add_cluster(&self.hub, &self.admin_token, name, extra)
            .await
            .expect("cluster add")
    }

    /// `tetherctl cluster list -o json`, by cluster name.
    pub async fn cluster(&self, name: &str) -> Value {
        let out = self.tetherctl(&["cluster", "list", "-o", "json"]).await;
        assert!(out.success(), "cluster list: {}", out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).expect("json");
        v["clusters"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} not listed: {v}"))
    }

    pub async fn join(&self, words: &[String], spoke: &Cluster) -> CmdOutput {
        agent::join(words, spoke)
            .await
            .expect("run the join command")
    }

    pub fn run_agent(&self, spoke: &Cluster) -> Agent {
        Agent::start(&self.dir, spoke).expect("agent")
    }
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
