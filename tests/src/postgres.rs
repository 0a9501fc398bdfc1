//! A throwaway PostgreSQL server (Debian postgresql 15): initdb in the test dir as the
//! `postgres` OS user when running as root (initdb refuses root), loopback TCP on a free
//! port, unix socket in the test dir, trust auth. Fast shutdown (SIGINT) on `Drop`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::Signal;

use crate::deps::Deps;
use crate::error::{Error, Result};
use crate::ports::port_for;
use crate::process::ProcessGuard;
use crate::testdir::TestDir;

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    _guard: ProcessGuard,
    port: u16,
    data: PathBuf,
    _dir: TestDir,
}

impl Postgres {
    /// initdb + start on a free port.
    pub async fn start(dir: &TestDir) -> Result<Self> {
        Self::start_on(dir, None).await
    }

    /// initdb + start on `port` (or a free one).
    pub async fn start_on(dir: &TestDir, port: Option<u16>) -> Result<Self> {
        let part = "postgres";
        let deps = Deps::get();
        let (initdb, postgres, isready) = (
            deps.postgres_bin("initdb")?,
            deps.postgres_bin("postgres")?,
            deps.postgres_bin("pg_isready")?,
        );
        let port = port_for(part, port)?;
        let base = dir.subdir(&format!("postgres-{port}"))?;
        let data = base.join("data");
        let owner = pg_owner()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&base, Some(uid), Some(gid))
                .map_err(Error::io(format!("chown {}", base.display())))?;
        }

        let mut init = as_owner(Command::new(initdb), owner);
        init.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        ]);
        let init_log = dir.path().join(format!("postgres-{port}-initdb.log"));
        let log_file =
            std::fs::File::create(&init_log).map_err(Error::io("creating the initdb log"))?;
        let log_err = log_file
            .try_clone()
            .map_err(Error::io("cloning the initdb log handle"))?;
        init.stdin(Stdio::null()).stdout(log_file).stderr(log_err);
        dir.register_log(&init_log);
        let status = tokio::task::spawn_blocking(move || init.status())
            .await
            .map_err(|e| Error::Failed(format!("initdb task: {e}")))?
            .map_err(Error::io("running initdb"))?;
        if !status.success() {
            return Err(Error::EarlyExit {
                part: "postgres (initdb)".into(),
                status: status.to_string(),
                tail: crate::process::log_tail(&init_log, 30),
                log: init_log,
            });
        }

        let mut cmd = as_owner(Command::new(postgres), owner);
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", base.display()))
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        let mut guard = ProcessGuard::spawn(part, cmd, dir, &format!("postgres-{port}.log"))?
            .with_stop_signal(Signal::INT);
        let port_s = port.to_string();
        guard
            .wait_ready("pg_isready", Duration::from_secs(30), || {
                let mut c = tokio::process::Command::new(&isready);
                c.args(["-q", "-h", "127.0.0.1", "-p", &port_s, "-U", "postgres"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true);
                async move { c.status().await.is_ok_and(|s| s.success()) }
            })
            .await?;
        Ok(Self {
            _guard: guard,
            port,
            data,
            _dir: dir.clone(),
        })
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres` (trust auth, no password).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
}

/// The `postgres` user's uid/gid when we run as root (None otherwise: run as ourselves).
fn pg_owner() -> Result<Option<(u32, u32)>> {
    if !rustix::process::getuid().is_root() {
        return Ok(None);
    }
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(Error::io("reading /etc/passwd"))?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "postgres" {
            let uid = f[2]
                .parse()
                .map_err(|_| Error::Failed("bad uid for postgres".into()))?;
            let gid = f[3]
                .parse()
                .map_err(|_| Error::Failed("bad gid for postgres".into()))?;
            return Ok(Some((uid, gid)));
        }
    }
    Err(Error::MissingPart {
        part: "postgres OS user (Debian postgresql package)".into(),
        path: "/etc/passwd".into(),
    })
}

/// Runs `cmd` as the postgres user when we are root (std drops supplementary groups).
fn as_owner(mut cmd: Command, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        cmd.uid(uid)
            .gid(gid)
            .env("HOME", "/var/lib/postgresql")
            .env_remove("PGDATA");
    }
    cmd
}
