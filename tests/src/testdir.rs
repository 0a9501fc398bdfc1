//! Per-test temporary directory: removed when the test passes, kept (with log paths
//! printed) when it fails.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Writes `content` to `path`, readable and writable by its owner only (keys, tokens,
/// kubeconfigs): a new file is created with mode 0600, an existing one is truncated and set
/// to 0600 before anything is written.
pub fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    tether_common::fs::write_private(path, content)
        .map_err(Error::io(format!("writing {}", path.display())))
}

/// Directory name prefix of every test dir (used by `scripts/check-no-leftovers.sh`).
pub const PREFIX: &str = "tether-e2e-";

/// A test's temporary directory. Cheap to clone; every fixture holds a clone, so the
/// directory lives until the last fixture is dropped. On the last drop it is removed,
/// unless the thread is panicking (a failing test) or `TETHER_KEEP_TMP=1`: then it is
/// kept and the log files in it are listed on stderr.
#[derive(Clone, Debug)]
pub struct TestDir {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    logs: Mutex<Vec<PathBuf>>,
    /// Never removed (a state directory the user chose, e.g. the demo's).
    persistent: bool,
}

impl TestDir {
    /// Creates `$TMPDIR/tether-e2e-NAME-XXXXXX` (mode 0755 so a dropped-privilege
    /// PostgreSQL can traverse it).
    pub fn new(name: &str) -> Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{name}-"))
            .tempdir()
            .map_err(Error::io("creating the test dir"))?;
        let path = tmp.keep();
        set_mode(&path, 0o755)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                logs: Mutex::new(Vec::new()),
                persistent: false,
            }),
        })
    }

    /// Uses `path` (created if missing) as a directory that is never removed: for state
    /// that must outlive the process, such as `scripts/demo`'s state directory.
    pub fn persistent(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(Error::io(format!("creating {}", path.display())))?;
        let path = path
            .canonicalize()
            .map_err(Error::io(format!("resolving {}", path.display())))?;
        set_mode(&path, 0o755)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                logs: Mutex::new(Vec::new()),
                persistent: true,
            }),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Creates (if needed) and returns a subdirectory.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let p = self.inner.path.join(name);
        std::fs::create_dir_all(&p).map_err(Error::io(format!("creating {}", p.display())))?;
        set_mode(&p, 0o755)?;
        Ok(p)
    }

    /// Records a log file, to be listed if the test fails.
    pub fn register_log(&self, log: &Path) {
        if let Ok(mut logs) = self.inner.logs.lock() {
            logs.push(log.to_path_buf());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.persistent {
            return;
        }
        let keep = std::env::var("TETHER_KEEP_TMP").is_ok_and(|v| v == "1");
        if std::thread::panicking() || keep {
            eprintln!("tether-e2e: kept test dir {}", self.path.display());
            if let Ok(logs) = self.logs.lock() {
                for l in logs.iter() {
                    eprintln!("tether-e2e:   log {}", l.display());
                }
            }
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("tether-e2e: could not remove {}: {e}", self.path.display());
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(Error::io(format!("chmod {}", path.display())))
}
