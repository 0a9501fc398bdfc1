//! The test node: a `test-kubelet` (streaming endpoints only, see
//! `tests/fixtures/test-kubelet/`) plus a Node and a "running" Pod registered on it, so
//! `kubectl exec/attach/port-forward/logs` go apiserver -> test-kubelet for real.
//! Exec runs the command as a local process of this host (no container).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cluster::{Cluster, write};
use crate::deps::Deps;
use crate::error::{Error, Result};
use crate::http::tls_client;
use crate::pki::Ca;
use crate::ports::free_port;
use crate::process::ProcessGuard;
use crate::testdir::TestDir;

/// Node name.
pub const NODE_NAME: &str = "test-node";
/// Namespace of the test pod.
pub const POD_NAMESPACE: &str = "default";
/// Name of the test pod.
pub const POD_NAME: &str = "test-pod";
/// Its single container.
pub const CONTAINER: &str = "main";

/// A running test-kubelet registered as a Node of its cluster.
#[derive(Debug)]
pub struct TestNode {
    _guard: ProcessGuard,
    port: u16,
    root: PathBuf,
    flags: Vec<String>,
}

impl TestNode {
    /// Issues the kubelet serving cert and the apiserver's kubelet-client cert from `ca`
    /// (files in `cluster_dir`), starts test-kubelet, waits for `/healthz`.
    pub(crate) async fn start(dir: &TestDir, cluster_dir: &Path, ca: &Ca) -> Result<Self> {
        let part = "test-kubelet";
        let bin = Deps::get().test_kubelet()?;
        let port = free_port()?;
        let serving = ca.issue_server(NODE_NAME, &["127.0.0.1", "localhost"])?;
        let client = ca.issue_client("kube-apiserver-kubelet-client", Some("system:masters"))?;
        let f = |n: &str| cluster_dir.join(n);
        write(&f("kubelet.crt"), &serving.cert_pem)?;
        write(&f("kubelet.key"), &serving.key_pem)?;
        write(&f("kubelet-client.crt"), &client.cert_pem)?;
        write(&f("kubelet-client.key"), &client.key_pem)?;
        let root = cluster_dir.join("kubelet-root");
        std::fs::create_dir_all(root.join("logs"))
            .map_err(Error::io(format!("creating {}", root.display())))?;
        let s = |p: PathBuf| p.display().to_string();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--listen=127.0.0.1:{port}"))
            .args([
                "--tls-cert-file",
                &s(f("kubelet.crt")),
                "--tls-private-key-file",
                &s(f("kubelet.key")),
            ])
            .args([
                "--client-ca-file",
                &s(f("ca.crt")),
                "--root-dir",
                &s(root.clone()),
            ]);
        let name = cluster_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut guard = ProcessGuard::spawn(part, cmd, dir, &format!("{name}/test-kubelet.log"))?;
        let http = tls_client(&ca.cert_pem(), Some((&client.cert_pem, &client.key_pem)))?;
        let url = format!("https://127.0.0.1:{port}/healthz");
        guard
            .wait_ready(&format!("GET {url}"), Duration::from_secs(15), || async {
                matches!(http.get(&url).send().await, Ok(r) if r.status().is_success())
            })
            .await?;
        let flags = vec![
            "--kubelet-preferred-address-types=InternalIP".to_string(),
            format!("--kubelet-certificate-authority={}", s(f("ca.crt"))),
            format!(
                "--kubelet-client-certificate={}",
                s(f("kubelet-client.crt"))
            ),
            format!("--kubelet-client-key={}", s(f("kubelet-client.key"))),
        ];
        Ok(Self {
            _guard: guard,
            port,
            root,
            flags,
        })
    }

    /// Flags the apiserver needs to reach this kubelet.
    pub(crate) fn apiserver_flags(&self) -> &[String] {
        &self.flags
    }

    /// Creates the Node and the Pod and patches their status (Ready, Running).
    pub(crate) async fn register(&self, cluster: &Cluster) -> Result<()> {
        cluster
            .apply_yaml(&format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: {NODE_NAME}\n---\n\
                 apiVersion: v1\nkind: Pod\nmetadata:\n  name: {POD_NAME}\n  namespace: {POD_NAMESPACE}\n\
                 spec:\n  nodeName: {NODE_NAME}\n  automountServiceAccountToken: false\n  \
                 containers:\n  - name: {CONTAINER}\n    image: test-image\n"
            ))
            .await?;
        let now = "2026-01-01T00:00:00Z";
        let node_status = serde_json::json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "test-kubelet", "lastHeartbeatTime": now, "lastTransitionTime": now}],
        }});
        let pod_status = serde_json::json!({"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
            "containerStatuses": [{"name": CONTAINER, "ready": true, "started": true, "restartCount": 0,
                "image": "test-image", "imageID": "test-image", "containerID": "test://main",
                "state": {"running": {"startedAt": now}}}],
        }});
        let ns = format!("--namespace={POD_NAMESPACE}");
        for (kind, name, patch) in [
            ("node", NODE_NAME, node_status),
            ("pod", POD_NAME, pod_status),
        ] {
            cluster
                .kubectl_ok(&[
                    &ns,
                    "patch",
                    kind,
                    name,
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    &patch.to_string(),
                ])
                .await?;
        }
        Ok(())
    }

    /// The kubelet's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Node name.
    pub fn node_name(&self) -> &str {
        NODE_NAME
    }

    /// Namespace of the test pod.
    pub fn namespace(&self) -> &str {
        POD_NAMESPACE
    }

    /// Name of the test pod.
    pub fn pod(&self) -> &str {
        POD_NAME
    }

    /// Its container.
    pub fn container(&self) -> &str {
        CONTAINER
    }

    /// Writes the container log that `kubectl logs` serves.
    pub fn write_container_log(&self, text: &str) -> Result<()> {
        let dir = self.root.join("logs").join(POD_NAMESPACE).join(POD_NAME);
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let f = dir.join(format!("{CONTAINER}.log"));
        std::fs::write(&f, text).map_err(Error::io(format!("writing {}", f.display())))
    }
}
