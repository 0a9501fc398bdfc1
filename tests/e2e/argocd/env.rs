//! A hub cluster (a real kube-apiserver with the `argocd` namespace), hubs configured with
//! `hub_cluster.kubeconfig` pointing at it and an `argocd` section, and spokes joined the
//! operator's way (`tetherctl cluster add`, `tether-agent join`, `tether-agent run` with
//! its proxy, so that heartbeats carry a proxy URL and CA).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_e2e::{
    Agent, Cluster, ClusterOptions, CmdOutput, Etcd, Hub, HubOptions, TestDir, agent, free_port,
};

/// The namespace the hubs write cluster Secrets into.
pub const NAMESPACE: &str = "argocd";
/// The name of the Secret for `cluster`.
pub fn secret_name(cluster: &str) -> String {
    format!("tether-cluster-{cluster}")
}

/// The `argocd:` section (indented body) shared by the tests' hubs.
pub fn argocd_yaml(resync: &str, extra: &str) -> String {
    format!("argocd:\n  namespace: {NAMESPACE}\n  resync_interval: {resync}\n{extra}")
}

/// A hub configuration on SQLite in the hub's directory, issuer on `port`, with `extra`
/// top-level YAML (`hub_cluster`, `argocd`).
pub fn sqlite_config(port: u16, extra: &str) -> String {
    format!(
        r#"issuer: https://127.0.0.1:{port}
listen: 127.0.0.1:{port}
tls: {{self_signed: true, self_signed_dir: "@DIR@/tls"}}
metrics: {{listen: "127.0.0.1:0"}}
storage: {{url: "sqlite://@DIR@/hub.db"}}
keys: {{kek_file: "@DIR@/../kek"}}
{extra}
telemetry: {{log_format: text, log_level: info}}
"#
    )
}

/// `hub_cluster:` pointing at `cluster`'s admin kubeconfig.
pub fn hub_cluster_yaml(cluster: &Cluster) -> String {
    format!(
        "hub_cluster:\n  kubeconfig: {:?}\n",
        cluster.admin_kubeconfig().display().to_string()
    )
}

pub struct ArgoEnv {
    pub dir: TestDir,
    pub etcd: Etcd,
    /// The cluster the hub runs on: where ArgoCD (here: its namespace) lives.
    pub hub_cluster: Cluster,
}

impl ArgoEnv {
    /// etcd, the hub cluster and its `argocd` namespace; the KEK hubs share (`@DIR@/../kek`).
    pub async fn start(name: &str) -> Self {
        let dir = TestDir::new(name).expect("test dir");
        crate::hub::support::write_kek(&dir.path().join("kek"));
        let etcd = Etcd::start(&dir).await.expect("etcd");
        let hub_cluster = Cluster::start(&dir, ClusterOptions::new("hub-k8s").etcd(&etcd))
            .await
            .expect("hub cluster apiserver");
        hub_cluster
            .kubectl_ok(&["create", "namespace", NAMESPACE])
            .await
            .expect("argocd namespace");
        Self {
            dir,
            etcd,
            hub_cluster,
        }
    }

    /// A hub started from `yaml` (see [`sqlite_config`]) on HTTPS port `port`.
    pub async fn hub(&self, name: &str, port: u16, yaml: &str) -> Hub {
        Hub::start(&self.dir, HubOptions::with_config(name, yaml).port(port))
            .await
            .expect("hub")
    }

    /// A new spoke apiserver sharing the etcd.
    pub async fn spoke(&self, name: &str) -> Cluster {
        Cluster::start(&self.dir, ClusterOptions::new(name).etcd(&self.etcd))
            .await
            .expect("spoke apiserver")
    }

    /// `cluster add` with `labels` at `hub`, the join against `spoke`, and the agent with its
    /// proxy, connected.
    pub async fn join(&self, hub: &Hub, admin: &str, spoke: &Cluster, labels: &[&str]) -> Agent {
        let mut extra = Vec::new();
        for label in labels {
            extra.extend(["--label", label]);
        }
        let words = agent::add_cluster(hub, admin, spoke.name(), &extra)
            .await
            .expect("cluster add");
        let joined = agent::join(&words, spoke).await.expect("join");
        assert!(joined.success(), "join: {}", joined.stderr);
        let port = free_port().expect("port");
        let mut agent = Agent::start_with_proxy(&self.dir, spoke, port)
            .await
            .expect("agent");
        agent
            .wait_connected(true, Duration::from_secs(30))
            .await
            .expect("agent connected");
        agent
    }

    /// The Secret `name` in the `argocd` namespace of the hub cluster, if it exists.
    pub async fn secret(&self, name: &str) -> Option<Value> {
        let out = self
            .hub_cluster
            .kubectl(&["get", "secret", "-n", NAMESPACE, name, "-o", "json"])
            .await
            .expect("kubectl");
        if !out.success() {
            assert!(
                out.stderr.contains("NotFound") || out.stderr.contains("not found"),
                "kubectl get secret {name}: {}",
                out.stderr
            );
            return None;
        }
        Some(serde_json::from_str(&out.stdout).expect("secret json"))
    }

    /// Polls (every 200 ms, at most `limit`) until the Secret `name` satisfies `check`
    /// (`None` = absent); returns it.
    pub async fn wait_secret(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let start = Instant::now();
        loop {
            let secret = self.secret(name).await;
            if check(secret.as_ref()) {
                return secret;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}; last seen: {secret:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The Secret names the hubs manage in the namespace.
    pub async fn managed_secrets(&self) -> Vec<String> {
        let out = self
            .hub_cluster
            .kubectl_ok(&[
                "get",
                "secret",
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/managed-by=tether-hub,argocd.argoproj.io/secret-type=cluster",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])
            .await
            .expect("list secrets");
        out.split_whitespace().map(str::to_owned).collect()
    }
}

pub async fn tetherctl(hub: &Hub, admin: &str, args: &[&str]) -> CmdOutput {
    agent::tetherctl(hub, admin, args).await.expect("tetherctl")
}

/// `data[key]` of a Secret as JSON, decoded.
pub fn data(secret: &Value, key: &str) -> String {
    use base64::Engine as _;
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no data.{key}: {secret}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

/// base64 of a file's content.
pub fn base64_file(path: &Path) -> String {
    use base64::Engine as _;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The sum of `tether_hub_argocd_secret_writes_total{op=OP}` on `hub`.
pub async fn writes(hub: &Hub, op: &str) -> u64 {
    let series = format!("tether_hub_argocd_secret_writes_total{{op=\"{op}\"}}");
    hub.metric(&series).await.expect("metrics").unwrap_or(0.0) as u64
}
