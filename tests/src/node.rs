//! Running the Node fixture scripts (`tests/fixtures/{idp,rp,browser}/*.mjs`) with their
//! installed `node_modules`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::cluster::CmdOutput;
use crate::deps::Deps;
use crate::error::{Error, Result};

/// A script of a Node fixture dir, run with cwd = that dir and `NODE_PATH` = its
/// `node_modules`.
#[derive(Debug, Clone)]
pub struct NodeScript {
    dir: PathBuf,
    script: String,
    env: Vec<(String, String)>,
    timeout: Duration,
}

impl NodeScript {
    /// `fixture` is `idp`, `rp` or `browser`; `script` a file in it (e.g. `rp_full.mjs`).
    pub fn new(fixture: &str, script: &str) -> Result<Self> {
        let dir = Deps::get().node_fixture(fixture)?;
        if !dir.join(script).is_file() {
            return Err(Error::Failed(format!(
                "no script {script} in {}",
                dir.display()
            )));
        }
        Ok(Self {
            dir,
            script: script.to_string(),
            env: Vec::new(),
            timeout: Duration::from_secs(60),
        })
    }

    /// Sets an environment variable (e.g. `CHROMIUM`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Bounds the run (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The fixture directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Runs `node SCRIPT ARGS...` to completion and returns its output.
    pub async fn run(&self, args: &[&str]) -> Result<CmdOutput> {
        let deps = Deps::get();
        let mut cmd = tokio::process::Command::new(deps.node()?);
        cmd.current_dir(&self.dir)
            .arg(self.dir.join(&self.script))
            .args(args)
            .env("NODE_PATH", self.dir.join("node_modules"))
            .env("NODE_NO_WARNINGS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Ok(chromium) = deps.chromium() {
            cmd.env("CHROMIUM", chromium);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = cmd
            .spawn()
            .map_err(Error::io(format!("spawning node {}", self.script)))?;
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                Error::Failed(format!(
                    "node {} did not finish in {:?}",
                    self.script, self.timeout
                ))
            })?
            .map_err(Error::io(format!("waiting for node {}", self.script)))?;
        Ok(CmdOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}
