//! The real `tether-hub` binary (from `target/<profile>`), started in dev mode or with a
//! configuration file, on free loopback ports, trusted through the CA it generated.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::deps::workspace_bin;
use crate::error::{Error, Result};
use crate::http::tls_client;
use crate::ports::port_for;
use crate::process::ProcessGuard;
use crate::testdir::TestDir;

/// Upper bound for the hub to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The hub's client id at the upstream IdP in hubs made by [`HubOptions::with_login`].
pub const UPSTREAM_CLIENT_ID: &str = "tether-hub";

/// How to start a [`Hub`].
#[derive(Debug, Clone)]
pub struct HubOptions {
    name: String,
    port: Option<u16>,
    metrics_port: Option<u16>,
    grpc_port: Option<u16>,
    config_yaml: Option<String>,
    env: Vec<(String, String)>,
    /// Files written into the hub's directory before it starts (name, content), mode 0600.
    files: Vec<(String, Vec<u8>)>,
}

/// A hub that logs users in through an upstream IdP: SQLite, a self-signed CA and a random
/// KEK in its own directory, and the given `clients:` / `sessions:` YAML.
#[derive(Debug, Clone)]
pub struct LoginHub {
    /// The HTTPS port (the issuer is `https://127.0.0.1:PORT`, its callback `/callback`).
    pub port: u16,
    /// The upstream IdP's issuer (plain http on loopback is allowed for it).
    pub idp_issuer: String,
    /// The hub's client secret at the IdP (client id [`UPSTREAM_CLIENT_ID`]).
    pub upstream_secret: String,
    /// `upstream.recheck_interval`, e.g. `5m`.
    pub recheck_interval: String,
    /// More top-level YAML (`clients:`, `sessions:` ...), appended as is.
    pub extra_yaml: String,
    /// `tokens.cluster_token_lifetime` (the product default is `60s`).
    pub cluster_token_lifetime: String,
    /// `keys.clock_skew`, also the leeway agents allow (the product default is `30s`).
    pub clock_skew: String,
}

impl LoginHub {
    /// The issuer this hub will have.
    pub fn issuer(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The redirect URI to register for the hub at the IdP.
    pub fn callback(&self) -> String {
        format!("{}/callback", self.issuer())
    }
}

impl HubOptions {
    /// A dev-mode hub (`serve --dev`) whose data directory is the subdirectory `name`.
    pub fn dev(name: &str) -> Self {
        Self {
            name: name.to_string(),
            port: None,
            metrics_port: None,
            grpc_port: None,
            config_yaml: None,
            env: Vec::new(),
            files: Vec::new(),
        }
    }

    /// A hub started from the configuration [`LoginHub`] describes.
    pub fn with_login(name: &str, login: &LoginHub) -> Result<Self> {
        let yaml = format!(
            r#"issuer: {issuer}
listen: 127.0.0.1:{port}
tls: {{self_signed: true, self_signed_dir: "@DIR@/tls"}}
metrics: {{listen: "127.0.0.1:0"}}
storage: {{url: "sqlite://@DIR@/hub.db"}}
keys: {{kek_file: "@DIR@/kek", clock_skew: {skew}}}
tokens: {{cluster_token_lifetime: {lifetime}}}
upstream:
  issuer: {idp}
  client_id: {UPSTREAM_CLIENT_ID}
  client_secret_file: "@DIR@/upstream-secret"
  dangerous_allow_http_issuer: true
  recheck_interval: {recheck}
{extra}
telemetry: {{log_format: text, log_level: info}}
"#,
            issuer = login.issuer(),
            port = login.port,
            idp = login.idp_issuer,
            recheck = login.recheck_interval,
            extra = login.extra_yaml,
            skew = login.clock_skew,
            lifetime = login.cluster_token_lifetime,
        );
        let mut kek = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut kek)
            .map_err(|_| Error::Failed("no system randomness for the KEK".into()))?;
        let mut options = Self::with_config(name, &yaml).port(login.port);
        options.files.push(("kek".into(), kek));
        options.files.push((
            "upstream-secret".into(),
            login.upstream_secret.clone().into_bytes(),
        ));
        Ok(options)
    }

    /// A hub without login whose machine path reviews ServiceAccount tokens on the cluster
    /// behind `hub_kubeconfig` (`hub_cluster.kubeconfig`): issuer `https://127.0.0.1:PORT`,
    /// SQLite, a self-signed CA and a random KEK in its own directory. `machine_yaml` is the
    /// top-level `machine:` section (and anything else to add), appended as is.
    pub fn with_machine(
        name: &str,
        port: u16,
        hub_kubeconfig: &Path,
        machine_yaml: &str,
    ) -> Result<Self> {
        let yaml = format!(
            r#"issuer: https://127.0.0.1:{port}
listen: 127.0.0.1:{port}
tls: {{self_signed: true, self_signed_dir: "@DIR@/tls"}}
metrics: {{listen: "127.0.0.1:0"}}
storage: {{url: "sqlite://@DIR@/hub.db"}}
keys: {{kek_file: "@DIR@/kek"}}
hub_cluster: {{kubeconfig: "{kubeconfig}"}}
{machine_yaml}
telemetry: {{log_format: text, log_level: info}}
"#,
            kubeconfig = hub_kubeconfig.display(),
        );
        let mut kek = vec![0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut kek)
            .map_err(|_| Error::Failed("no system randomness for the KEK".into()))?;
        let mut options = Self::with_config(name, &yaml).port(port);
        options.files.push(("kek".into(), kek));
        Ok(options)
    }

    /// A hub started with `serve --config FILE`, FILE holding `yaml`. In `yaml`, the
    /// placeholder `@DIR@` stands for the hub's own directory (for the KEK, the TLS
    /// directory, a SQLite file). The configuration must use `tls.self_signed` with
    /// `self_signed_dir: @DIR@/tls` so the fixture can trust the hub.
    pub fn with_config(name: &str, yaml: &str) -> Self {
        Self {
            config_yaml: Some(yaml.to_string()),
            ..Self::dev(name)
        }
    }

    /// Serves HTTPS on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Serves metrics on this port instead of a free one.
    pub fn metrics_port(mut self, port: u16) -> Self {
        self.metrics_port = Some(port);
        self
    }

    /// Sets an environment variable for the hub process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running hub.
#[derive(Debug)]
pub struct Hub {
    guard: ProcessGuard,
    options: HubOptions,
    dir: TestDir,
    data_dir: PathBuf,
    port: u16,
    metrics_port: u16,
    grpc_port: u16,
    http: reqwest::Client,
}

impl Hub {
    /// Starts the hub and waits until `/readyz` answers 200.
    pub async fn start(dir: &TestDir, options: HubOptions) -> Result<Self> {
        let part = format!("tether-hub {}", options.name);
        let port = port_for(&part, options.port)?;
        let metrics_port = port_for(&format!("{part} metrics"), options.metrics_port)?;
        let grpc_port = port_for(&format!("{part} gRPC"), options.grpc_port)?;
        let data_dir = dir.subdir(&options.name)?;
        for (name, content) in &options.files {
            // The hub refuses a KEK readable by others.
            crate::write_private(&data_dir.join(name), content)?;
        }
        Self::spawn(dir, options, data_dir, [port, metrics_port, grpc_port]).await
    }

    async fn spawn(
        dir: &TestDir,
        options: HubOptions,
        data_dir: PathBuf,
        [port, metrics_port, grpc_port]: [u16; 3],
    ) -> Result<Self> {
        let part = format!("tether-hub {}", options.name);
        let bin = workspace_bin("tether-hub")?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve");
        let ca_file = match &options.config_yaml {
            None => {
                cmd.arg("--dev").arg("--data-dir").arg(&data_dir);
                data_dir.join("ca.crt")
            }
            Some(yaml) => {
                let file = data_dir.join("hub.yaml");
                let text = yaml.replace("@DIR@", &data_dir.display().to_string());
                std::fs::write(&file, text)
                    .map_err(Error::io(format!("writing {}", file.display())))?;
                cmd.arg("--config").arg(&file);
                data_dir.join("tls").join("ca.crt")
            }
        };
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--grpc-listen")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .env("RUST_LOG", "info,tether_hub=debug")
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let log = format!("hub-{}.log", options.name);
        let mut guard = ProcessGuard::spawn(&part, cmd, dir, &log)?;

        // The CA appears once the hub has prepared its TLS; until then there is nothing
        // to trust, so wait for the file first, then for /readyz.
        let ca_path = ca_file.clone();
        guard
            .wait_ready("its TLS CA file", READY_TIMEOUT, || {
                let exists = ca_path.is_file();
                async move { exists }
            })
            .await?;
        let ca_pem = std::fs::read_to_string(&ca_file)
            .map_err(Error::io(format!("reading {}", ca_file.display())))?;
        let http = tls_client(&ca_pem, None)?;
        let ready = format!("https://127.0.0.1:{port}/readyz");
        guard
            .wait_ready("/readyz to answer 200", READY_TIMEOUT, || {
                let http = http.clone();
                let ready = ready.clone();
                async move {
                    matches!(http.get(&ready).send().await, Ok(r) if r.status().is_success())
                }
            })
            .await?;
        Ok(Self {
            guard,
            options,
            dir: dir.clone(),
            data_dir,
            port,
            metrics_port,
            grpc_port,
            http,
        })
    }

    /// Stops the hub and starts it again on the same ports with the same data directory.
    pub async fn restart(self) -> Result<Self> {
        let Self {
            mut guard,
            options,
            dir,
            data_dir,
            port,
            metrics_port,
            grpc_port,
            ..
        } = self;
        guard.stop();
        drop(guard);
        Self::spawn(&dir, options, data_dir, [port, metrics_port, grpc_port]).await
    }

    /// The base URL (`https://127.0.0.1:PORT`), which is also the issuer in dev mode.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The HTTPS port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The gRPC URL agents and `tetherctl` dial (`https://127.0.0.1:PORT`).
    pub fn grpc_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.grpc_port)
    }

    /// The gRPC CA certificate the hub writes beside its HTTPS CA (`tetherctl --ca-file`).
    pub fn grpc_ca_file(&self) -> PathBuf {
        self.ca_file().with_file_name("grpc-ca.crt")
    }

    /// The effective configuration file (dev mode writes one too), for offline commands
    /// such as `tether-hub admin-token --config FILE`.
    pub fn config_file(&self) -> PathBuf {
        self.data_dir.join("hub.yaml")
    }

    /// A fresh admin token from `tether-hub admin-token` (for `tetherctl` and the Admin API).
    pub async fn admin_token(&self) -> Result<String> {
        let bin = workspace_bin("tether-hub")?;
        let out = tokio::process::Command::new(bin)
            .arg("admin-token")
            .arg("--name")
            .arg("e2e")
            .arg("--config")
            .arg(self.config_file())
            .output()
            .await
            .map_err(Error::io("running tether-hub admin-token"))?;
        if !out.status.success() {
            return Err(Error::Failed(format!(
                "tether-hub admin-token: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The metrics URL (`http://127.0.0.1:PORT/metrics`).
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_port)
    }

    /// The hub's data directory (dev mode: SQLite file, KEK, CA).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The CA certificate file that HTTPS clients must trust.
    pub fn ca_file(&self) -> PathBuf {
        match self.options.config_yaml {
            None => self.data_dir.join("ca.crt"),
            Some(_) => self.data_dir.join("tls").join("ca.crt"),
        }
    }

    /// An HTTPS client trusting the hub's CA.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The process guard (log path, pid).
    pub fn process(&self) -> &ProcessGuard {
        &self.guard
    }

    /// GETs `path` and parses JSON; a non-2xx status is an error naming the status.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.url());
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(Error::http(format!("GET {url}")))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(Error::http(format!("reading {url}")))?;
        if !status.is_success() {
            return Err(Error::Failed(format!("GET {url}: {status}: {body}")));
        }
        serde_json::from_str(&body).map_err(|e| Error::Failed(format!("GET {url}: {e}: {body}")))
    }

    /// The Prometheus text exposition from the metrics listener.
    pub async fn metrics(&self) -> Result<String> {
        let url = self.metrics_url();
        let client = crate::http::plain_client()?;
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(Error::http(format!("GET {url}")))?;
        resp.text()
            .await
            .map_err(Error::http(format!("reading {url}")))
    }

    /// The value of an unlabelled (or exactly-labelled) sample in [`Hub::metrics`]:
    /// `series` is the full series as printed, e.g. `tether_hub_keys_published` or
    /// `tether_hub_key_rotations_total{kind="scheduled"}`. Absent = `None`.
    pub async fn metric(&self, series: &str) -> Result<Option<f64>> {
        let text = self.metrics().await?;
        Ok(text.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?;
            let value = rest.strip_prefix(' ')?;
            value.trim().parse().ok()
        }))
    }
}
