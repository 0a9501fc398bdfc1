//! A real kube-apiserver 1.20 on loopback with its own PKI (generated with rcgen), RBAC on,
//! ServiceAccount tokens (TokenRequest/TokenReview), an admin kubeconfig, and optionally a
//! test node (test-kubelet) so `kubectl exec/attach/port-forward/logs` work.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::deps::Deps;
use crate::error::{Error, Result};
use crate::etcd::Etcd;
use crate::http::tls_client;
use crate::kubelet::TestNode;
use crate::pki::{Ca, IssuedCert, SigningKeyPair};
use crate::ports::port_for;
use crate::process::ProcessGuard;
use crate::testdir::TestDir;

/// Issuer and audience of ServiceAccount tokens.
pub const SA_ISSUER: &str = "https://kubernetes.default.svc";
/// Upper bound for one kubectl call.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for the apiserver to become ready (after its start permit).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How to start a [`Cluster`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    name: String,
    etcd: Option<Etcd>,
    port: Option<u16>,
    extra_flags: Vec<String>,
    test_node: bool,
}

impl ClusterOptions {
    /// A cluster called `name` (also its subdirectory and etcd prefix).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            etcd: None,
            port: None,
            extra_flags: Vec::new(),
            test_node: false,
        }
    }

    /// Shares `etcd` (otherwise the cluster starts its own).
    pub fn etcd(mut self, etcd: &Etcd) -> Self {
        self.etcd = Some(etcd.clone());
        self
    }

    /// Serves on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Adds a kube-apiserver flag, e.g. `--oidc-issuer-url=...`.
    pub fn flag(mut self, flag: impl Into<String>) -> Self {
        self.extra_flags.push(flag.into());
        self
    }

    /// Starts a test-kubelet and registers a Node and a running Pod on it.
    pub fn with_test_node(mut self) -> Self {
        self.test_node = true;
        self
    }
}

/// A running kube-apiserver (fields drop in order: node, apiserver, etcd, dir).
#[derive(Debug)]
pub struct Cluster {
    node: Option<TestNode>,
    _apiserver: ProcessGuard,
    etcd: Etcd,
    name: String,
    port: u16,
    cluster_dir: PathBuf,
    ca: Ca,
    admin: IssuedCert,
    sa_key: SigningKeyPair,
    http: reqwest::Client,
    dir: TestDir,
}

/// Output of a command, as text.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CmdOutput {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Its exit code (None if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

fn start_permits() -> &'static Semaphore {
    // kube-apiserver start-up is CPU heavy: on a small machine, start them one at a time.
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let n = std::env::var("TETHER_E2E_APISERVER_STARTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or((cores / 2).max(1));
        Semaphore::new(n)
    })
}

impl Cluster {
    /// Starts the cluster and waits until `/readyz` answers ok.
    pub async fn start(dir: &TestDir, opts: ClusterOptions) -> Result<Self> {
        let part = format!("kube-apiserver ({})", opts.name);
        let bin = Deps::get().kube_apiserver()?;
        Deps::get().kubectl()?;
        let port = port_for(&part, opts.port)?;
        let cdir = dir.subdir(&opts.name)?;
        let ca = Ca::new(&format!("{}-ca", opts.name))?;
        let serving = ca.issue_server(
            "kube-apiserver",
            &["127.0.0.1", "localhost", "kubernetes.default.svc"],
        )?;
        let admin = ca.issue_client("admin", Some("system:masters"))?;
        let sa_key = SigningKeyPair::generate()?;
        write(&cdir.join("ca.crt"), &ca.cert_pem())?;
        write(&cdir.join("apiserver.crt"), &serving.cert_pem)?;
        write(&cdir.join("apiserver.key"), &serving.key_pem)?;
        write(&cdir.join("admin.crt"), &admin.cert_pem)?;
        write(&cdir.join("admin.key"), &admin.key_pem)?;
        write(&cdir.join("sa.key"), &sa_key.private_pem)?;
        write(&cdir.join("sa.pub"), &sa_key.public_pem)?;
        write(
            &cdir.join("admin.kubeconfig"),
            &kubeconfig(&opts.name, port, &ca.cert_pem(), &admin),
        )?;

        let etcd = match &opts.etcd {
            Some(e) => e.clone(),
            None => Etcd::start(dir).await?,
        };
        let mut node = if opts.test_node {
            Some(TestNode::start(dir, &cdir, &ca).await?)
        } else {
            None
        };

        let p = |f: &str| cdir.join(f).display().to_string();
        let mut cmd = Command::new(bin);
        cmd.args(["--etcd-servers", &etcd.url()])
            .arg(format!("--etcd-prefix=/tether-e2e/{}-{port}", opts.name))
            .arg(format!("--secure-port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--insecure-port=0",
            ])
            .args([
                "--tls-cert-file",
                &p("apiserver.crt"),
                "--tls-private-key-file",
                &p("apiserver.key"),
            ])
            .args(["--client-ca-file", &p("ca.crt")])
            .args(["--service-account-key-file", &p("sa.pub")])
            .args(["--service-account-signing-key-file", &p("sa.key")])
            .args([
                "--service-account-issuer",
                SA_ISSUER,
                "--api-audiences",
                SA_ISSUER,
            ])
            .args([
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.96.0.0/16",
            ])
            .args([
                "--disable-admission-plugins=ServiceAccount",
                "--profiling=false",
            ]);
        if let Some(n) = &node {
            cmd.args(n.apiserver_flags());
        }
        cmd.args(&opts.extra_flags);
        let http = tls_client(&ca.cert_pem(), Some((&admin.cert_pem, &admin.key_pem)))?;

        let permit = start_permits()
            .acquire()
            .await
            .map_err(|_| Error::Failed("start permits closed".into()))?;
        let mut guard =
            ProcessGuard::spawn(&part, cmd, dir, &format!("{}/apiserver.log", opts.name))?;
        let readyz = format!("https://127.0.0.1:{port}/readyz");
        guard
            .wait_ready(&format!("GET {readyz}"), READY_TIMEOUT, || async {
                matches!(http.get(&readyz).send().await, Ok(r) if r.status().is_success())
            })
            .await?;
        drop(permit);

        let mut cluster = Self {
            node: None,
            _apiserver: guard,
            etcd,
            name: opts.name,
            port,
            cluster_dir: cdir,
            ca,
            admin,
            sa_key,
            http,
            dir: dir.clone(),
        };
        cluster.aggregate_cluster_roles().await?;
        if let Some(n) = &mut node {
            n.register(&cluster).await?;
        }
        cluster.node = node;
        Ok(cluster)
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `https://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The apiserver's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster CA (PEM): it signed the serving cert and is the client CA.
    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem()
    }

    /// The cluster CA, to issue more client certificates.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// `DIR/ca.crt`.
    pub fn ca_file(&self) -> PathBuf {
        self.cluster_dir.join("ca.crt")
    }

    /// The admin client cert (CN admin, O system:masters).
    pub fn admin_cert(&self) -> &IssuedCert {
        &self.admin
    }

    /// The ServiceAccount token signing key pair.
    pub fn sa_signing_key(&self) -> &SigningKeyPair {
        &self.sa_key
    }

    /// The admin kubeconfig file (certs inline).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.cluster_dir.join("admin.kubeconfig")
    }

    /// This cluster's directory (certs, kubeconfig, logs).
    pub fn dir(&self) -> &Path {
        &self.cluster_dir
    }

    /// The etcd it uses.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// An HTTP client presenting the admin cert and trusting only the cluster CA.
    pub fn admin_http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The test node, if started [`ClusterOptions::with_test_node`].
    pub fn test_node(&self) -> Option<&TestNode> {
        self.node.as_ref()
    }

    /// `namespace/name` of the test pod, if any.
    pub fn test_pod(&self) -> Option<String> {
        self.node
            .as_ref()
            .map(|n| format!("{}/{}", n.namespace(), n.pod()))
    }

    /// Runs the installed kubectl with the admin kubeconfig (60 s bound).
    pub async fn kubectl(&self, args: &[&str]) -> Result<CmdOutput> {
        self.kubectl_with(args, &[], None).await
    }

    /// Like [`Cluster::kubectl`], failing with its stderr unless it exits 0; returns stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(Error::Failed(format!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                out.stderr
            )))
        }
    }

    /// `kubectl apply -f -` with `yaml` on stdin; fails with its stderr.
    pub async fn apply_yaml(&self, yaml: &str) -> Result<String> {
        let out = self
            .kubectl_with(&["apply", "-f", "-"], &[], Some(yaml))
            .await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(Error::Failed(format!(
                "kubectl apply failed ({}): {}",
                out.status, out.stderr
            )))
        }
    }

    /// Runs kubectl with the admin kubeconfig, extra env vars and optional stdin.
    pub async fn kubectl_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Result<CmdOutput> {
        let kubeconfig = self.admin_kubeconfig();
        run_kubectl(&kubeconfig, &self.cluster_dir, args, env, stdin).await
    }

    /// Does once what kube-controller-manager's clusterrole-aggregation controller would do
    /// (there is no controller-manager here): fills the rules of aggregated ClusterRoles
    /// (`admin`, `edit`, `view`, ...) from the roles their `matchLabels` select.
    pub async fn aggregate_cluster_roles(&self) -> Result<()> {
        let url = format!(
            "{}/apis/rbac.authorization.k8s.io/v1/clusterroles",
            self.api_url()
        );
        let list: serde_json::Value = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(Error::http("listing clusterroles"))?
            .json()
            .await
            .map_err(Error::http("listing clusterroles: body"))?;
        let mut roles: Vec<serde_json::Value> =
            list["items"].as_array().cloned().unwrap_or_default();
        let matches = |role: &serde_json::Value, sel: &serde_json::Value| {
            sel["matchLabels"].as_object().is_some_and(|want| {
                !want.is_empty()
                    && want
                        .iter()
                        .all(|(k, v)| &role["metadata"]["labels"][k] == v)
            })
        };
        // Aggregated roles select other aggregated roles: iterate to a fixpoint (bounded).
        for _ in 0..4 {
            let mut changed = false;
            for i in 0..roles.len() {
                let Some(selectors) = roles[i]["aggregationRule"]["clusterRoleSelectors"]
                    .as_array()
                    .cloned()
                else {
                    continue;
                };
                let mut rules: Vec<serde_json::Value> = Vec::new();
                for other in roles
                    .iter()
                    .filter(|r| selectors.iter().any(|s| matches(r, s)))
                {
                    for rule in other["rules"].as_array().into_iter().flatten() {
                        if !rules.contains(rule) {
                            rules.push(rule.clone());
                        }
                    }
                }
                if roles[i]["rules"].as_array().map(Vec::len).unwrap_or(0) != rules.len() {
                    roles[i]["rules"] = serde_json::Value::Array(rules);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for role in roles.iter().filter(|r| r.get("aggregationRule").is_some()) {
            let name = role["metadata"]["name"].as_str().unwrap_or_default();
            let resp = self
                .http
                .patch(format!("{url}/{name}"))
                .header("content-type", "application/merge-patch+json")
                .body(serde_json::json!({"rules": role["rules"]}).to_string())
                .send()
                .await
                .map_err(Error::http(format!("patching clusterrole {name}")))?;
            if !resp.status().is_success() {
                return Err(Error::Failed(format!(
                    "patching clusterrole {name}: {}",
                    resp.status()
                )));
            }
        }
        Ok(())
    }

    /// The test dir this cluster lives in.
    pub fn test_dir(&self) -> &TestDir {
        &self.dir
    }
}

/// Runs the installed kubectl with `kubeconfig` (e.g. one pointing at the hub), HOME set to
/// `home` (its cache goes there), bounded to 60 s.
pub async fn run_kubectl(
    kubeconfig: &Path,
    home: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Result<CmdOutput> {
    let bin = Deps::get().kubectl()?;
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", home)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(Error::io("spawning kubectl"))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes())
            .await
            .map_err(Error::io("writing kubectl stdin"))?;
        drop(w);
    }
    let start = Instant::now();
    let out = tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            Error::Failed(format!(
                "kubectl {} timed out after {:?}",
                args.join(" "),
                start.elapsed()
            ))
        })?
        .map_err(Error::io("waiting for kubectl"))?;
    Ok(CmdOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn kubeconfig(name: &str, port: u16, ca_pem: &str, admin: &IssuedCert) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: {name}\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {}\n\
         users:\n- name: {name}-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-admin\n\
         current-context: {name}\n",
        b64(ca_pem),
        b64(&admin.cert_pem),
        b64(&admin.key_pem),
    )
}

/// Writes a file (0600), naming it on error.
pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    crate::write_private(path, text.as_bytes())
}
