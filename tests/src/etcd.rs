//! A throwaway etcd (Debian etcd-server 3.4) on loopback. Clone it to share one etcd
//! between several clusters (each uses its own `--etcd-prefix`); it stops when the last
//! clone is dropped.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crate::deps::Deps;
use crate::error::Result;
use crate::http::plain_client;
use crate::ports::port_for;
use crate::process::ProcessGuard;
use crate::testdir::TestDir;

/// A running etcd.
#[derive(Debug, Clone)]
pub struct Etcd {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    port: u16,
    _guard: ProcessGuard,
    _dir: TestDir,
}

impl Etcd {
    /// Starts etcd on a free port.
    pub async fn start(dir: &TestDir) -> Result<Self> {
        Self::start_on(dir, None).await
    }

    /// Starts etcd on `port` (client port; the peer port is picked free), or a free port.
    pub async fn start_on(dir: &TestDir, port: Option<u16>) -> Result<Self> {
        let part = "etcd";
        let bin = Deps::get().etcd()?;
        let port = port_for(part, port)?;
        let peer = port_for(part, None)?;
        let data = dir.subdir(&format!("etcd-{port}"))?;
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(bin);
        cmd.arg("--name")
            .arg(format!("e2e-{port}"))
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .arg("--initial-cluster")
            .arg(format!("e2e-{port}={peer_url}"))
            .args(["--unsafe-no-fsync", "--log-level", "warn"]);
        let mut guard = ProcessGuard::spawn(part, cmd, dir, &format!("etcd-{port}.log"))?;
        let http = plain_client()?;
        let health = format!("{client_url}/health");
        guard
            .wait_ready(
                &format!("GET {health}"),
                Duration::from_secs(20),
                || async {
                    match http.get(&health).send().await {
                        Ok(r) => r.text().await.is_ok_and(|t| t.contains("true")),
                        Err(_) => false,
                    }
                },
            )
            .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                port,
                _guard: guard,
                _dir: dir.clone(),
            }),
        })
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.inner.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.inner.port
    }
}
