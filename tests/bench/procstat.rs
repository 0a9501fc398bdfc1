//! Reading a process's memory and CPU time from `/proc`, shared by the benchmark binaries
//! (`#[path]`-included, so each stays one binary with no extra crate).

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

/// RSS readings per median.
const RSS_SAMPLES: usize = 5;
/// Pause between RSS readings.
const RSS_GAP: Duration = Duration::from_millis(200);

/// A process's RSS (KiB): the median of [`RSS_SAMPLES`] readings.
pub async fn rss_median(pid: u32) -> Result<u64> {
    let mut samples = Vec::with_capacity(RSS_SAMPLES);
    for _ in 0..RSS_SAMPLES {
        samples.push(rss_kib(pid)?);
        tokio::time::sleep(RSS_GAP).await;
    }
    samples.sort_unstable();
    Ok(samples[samples.len() / 2])
}

/// `VmRSS` from `/proc/PID/status`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .with_context(|| format!("no VmRSS in {path}"))?;
    let kib = line.trim().trim_end_matches("kB").trim();
    kib.parse()
        .with_context(|| format!("unreadable VmRSS {line:?} in {path}"))
}

/// A process's CPU time (user + system) from `/proc/PID/stat`.
#[derive(Debug)]
pub struct Cpu {
    path: String,
    ticks_per_s: f64,
}

impl Cpu {
    /// The CPU clock of `pid`.
    pub fn new(pid: u32) -> Result<Self> {
        let ticks = rustix::param::clock_ticks_per_second();
        ensure!(ticks > 0, "the kernel reports no clock tick rate");
        #[allow(clippy::cast_precision_loss)]
        let ticks_per_s = ticks as f64;
        Ok(Self {
            path: format!("/proc/{pid}/stat"),
            ticks_per_s,
        })
    }

    /// utime + stime so far, in seconds.
    pub fn seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(&self.path)
            .with_context(|| format!("reading {}", self.path))?;
        // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14,
        // stime 15 (1-based), so utime and stime are the 12th and 13th after it.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .with_context(|| format!("unreadable {}", self.path))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| -> Result<u64> {
            let field = fields
                .get(i)
                .with_context(|| format!("{} is too short", self.path))?;
            field
                .parse()
                .with_context(|| format!("unreadable CPU time in {}", self.path))
        };
        #[allow(clippy::cast_precision_loss)]
        let ticks = (tick(11)? + tick(12)?) as f64;
        Ok(ticks / self.ticks_per_s)
    }
}

/// The pid of this process's direct child whose command line has the arguments `args` in a
/// row (e.g. `["--secure-port=6443"]`): how the benches find the processes the fixtures
/// started without asking the fixtures for them.
#[allow(
    dead_code,
    reason = "tether-bench-agents includes this file too and does not use it"
)]
pub fn child_with_args(args: &[&str]) -> Result<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes may exit while we look: unreadable entries are skipped.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After `(comm)`: state, then ppid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(me) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if words
            .windows(args.len())
            .any(|w| w.iter().zip(args).all(|(a, b)| *a == b.as_bytes()))
        {
            found.push(pid);
        }
    }
    ensure!(
        found.len() == 1,
        "expected one child process with the arguments {args:?}, found {found:?}"
    );
    Ok(found[0])
}
