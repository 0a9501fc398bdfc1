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

/// How to start a [`Hub`].
#[derive(Debug, Clone)]
pub struct HubOptions {
    name: String,
    port: Option<u16>,
    metrics_port: Option<u16>,
    config_yaml: Option<String>,
    env: Vec<(String, String)>,
}

impl HubOptions {
    /// A dev-mode hub (`serve --dev`) whose data directory is the subdirectory `name`.
    pub fn dev(name: &str) -> Self {
        Self {
            name: name.to_string(),
            port: None,
            metrics_port: None,
            config_yaml: None,
            env: Vec::new(),
        }
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
    http: reqwest::Client,
}

impl Hub {
    /// Starts the hub and waits until `/readyz` answers 200.
    pub async fn start(dir: &TestDir, options: HubOptions) -> Result<Self> {
        let part = format!("tether-hub {}", options.name);
        let port = port_for(&part, options.port)?;
        let metrics_port = port_for(&format!("{part} metrics"), options.metrics_port)?;
        let data_dir = dir.subdir(&options.name)?;
        Self::spawn(dir, options, data_dir, port, metrics_port).await
    }

    async fn spawn(
        dir: &TestDir,
        options: HubOptions,
        data_dir: PathBuf,
        port: u16,
        metrics_port: u16,
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
            ..
        } = self;
        guard.stop();
        drop(guard);
        Self::spawn(&dir, options, data_dir, port, metrics_port).await
    }

    /// The base URL (`https://127.0.0.1:PORT`), which is also the issuer in dev mode.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The HTTPS port.
    pub fn port(&self) -> u16 {
        self.port
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
