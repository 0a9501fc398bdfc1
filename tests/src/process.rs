//! A child process in its own process group, logging to a file, killed (with its whole
//! group) on `Drop`.

use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::error::{Error, Result};
use crate::testdir::TestDir;

/// How long `Drop` waits after the stop signal before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Upper bound for one probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A running part. Dropping it stops the whole process group (stop signal, then SIGKILL
/// after 5 s) and reaps the child.
#[derive(Debug)]
pub struct ProcessGuard {
    part: String,
    child: Child,
    log: PathBuf,
    stop_signal: Signal,
    stopped: bool,
}

impl ProcessGuard {
    /// Spawns `cmd` as `part`: own process group, stdin null, stdout+stderr appended to
    /// `dir/LOG_NAME`. A program that does not exist fails naming the part and
    /// `scripts/test-deps.sh`.
    pub fn spawn(part: &str, mut cmd: Command, dir: &TestDir, log_name: &str) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let log = dir.path().join(log_name);
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(Error::io(format!("{part}: creating log {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io("cloning the log handle"))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        dir.register_log(&log);
        let child = cmd.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::MissingPart {
                    part: part.to_string(),
                    path: PathBuf::from(cmd.get_program()),
                }
            } else {
                Error::Io {
                    context: format!("{part}: spawning {:?}", cmd.get_program()),
                    source,
                }
            }
        })?;
        Ok(Self {
            part: part.to_string(),
            child,
            log,
            stop_signal: Signal::TERM,
            stopped: false,
        })
    }

    /// Uses `sig` instead of SIGTERM to ask the group to stop (e.g. SIGINT for PostgreSQL's
    /// fast shutdown).
    pub fn with_stop_signal(mut self, sig: Signal) -> Self {
        self.stop_signal = sig;
        self
    }

    /// The part's name.
    pub fn part(&self) -> &str {
        &self.part
    }

    /// The child's pid (= its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Fails (with the log tail) if the child has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exit_error(status.to_string())),
            Err(e) => Err(Error::Io {
                context: format!("{}: waiting for the child", self.part),
                source: e,
            }),
        }
    }

    /// Polls `probe` every 100 ms (each call bounded to 3 s) until it returns true, the
    /// child exits (error with log tail), or `timeout` passes (error with log tail).
    pub async fn wait_ready<F, Fut>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let start = Instant::now();
        let max_attempts = (timeout.as_millis() / PROBE_INTERVAL.as_millis()).max(1) + 1;
        for _ in 0..max_attempts {
            self.check_running()?;
            if tokio::time::timeout(PROBE_TIMEOUT, probe())
                .await
                .unwrap_or(false)
            {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                break;
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
        self.check_running()?;
        let tail = self.log_tail(40);
        if tail.contains("address already in use") {
            return Err(Error::AddressInUse {
                part: self.part.clone(),
                log: self.log.clone(),
                tail,
            });
        }
        Err(Error::NotReady {
            part: self.part.clone(),
            waited: start.elapsed(),
            probe: what.to_string(),
            log: self.log.clone(),
            tail,
        })
    }

    /// Stops the group now (what `Drop` does).
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = Pid::from_child(&self.child);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill_process_group(pgid, self.stop_signal);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left of the group (the leader, or children it left behind).
        let _ = kill_process_group(pgid, Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn exit_error(&self, status: String) -> Error {
        let tail = self.log_tail(40);
        if tail.contains("address already in use") || tail.contains("EADDRINUSE") {
            Error::AddressInUse {
                part: self.part.clone(),
                log: self.log.clone(),
                tail,
            }
        } else {
            Error::EarlyExit {
                part: self.part.clone(),
                status,
                log: self.log.clone(),
                tail,
            }
        }
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a file (at most its last 64 KiB).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
