//! The session cache: one directory per hub holding `session.json` (refresh token, hub
//! access token, cluster tokens, each with its expiry) and a `lock` file.
//!
//! Location: `${TETHER_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/tether}/<first 16 hex of
//! sha256(hub URL)>/`, directories `0700`, files `0600`, written atomically.
//!
//! The hub rotates the refresh token on every use and ends the session if a spent one is
//! presented again, so everything that reads the session and may refresh it holds the
//! exclusive [`SessionLock`] from the read to the write: [`SessionStore::load`] and
//! [`SessionStore::save`] take the lock as a parameter to make that impossible to forget.
//! Twenty kubectl processes started together therefore share one refresh.

use std::collections::BTreeMap;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tether_common::secret::Secret;
use tether_common::time::UnixTime;

use crate::admin::Env;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hub::HubUrl;

/// Environment variable: the cache root (default `$XDG_CACHE_HOME/tether`).
pub const ENV_CACHE_DIR: &str = "TETHER_CACHE_DIR";
/// The session file in a hub's directory.
pub const SESSION_FILE: &str = "session.json";
/// The lock file in a hub's directory.
pub const LOCK_FILE: &str = "lock";
/// How long to wait for another `tetherctl` to release the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(60);
/// Pause between attempts to take the lock.
const LOCK_RETRY: Duration = Duration::from_millis(25);
/// Version of the `session.json` format.
pub const FORMAT_VERSION: u32 = 1;

/// The cache root: `TETHER_CACHE_DIR`, else `$XDG_CACHE_HOME/tether`, else
/// `$HOME/.cache/tether`.
pub fn cache_root(env: &dyn Env) -> Result<PathBuf> {
    if let Some(dir) = env.var(ENV_CACHE_DIR) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = env
        .var("XDG_CACHE_HOME")
        .filter(|d| Path::new(d).is_absolute())
    {
        return Ok(Path::new(&dir).join("tether"));
    }
    env.var("HOME")
        .map(|home| Path::new(&home).join(".cache").join("tether"))
        .ok_or(Error::Missing(
            "cannot find a cache directory: set TETHER_CACHE_DIR, XDG_CACHE_HOME or HOME",
        ))
}

/// A token and when it expires.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedToken {
    /// The token.
    #[serde(serialize_with = "expose", deserialize_with = "secret")]
    pub token: Secret,
    /// Its expiry.
    pub expires_at: UnixTime,
}

impl CachedToken {
    /// A token valid for `expires_in` seconds from `now`.
    pub fn new(token: Secret, now: UnixTime, expires_in: u64) -> Self {
        Self {
            token,
            expires_at: now.saturating_add(Duration::from_secs(expires_in)),
        }
    }

    /// Whether it is still valid for at least `margin` after `now`.
    pub fn valid_for(&self, now: UnixTime, margin: Duration) -> bool {
        now.saturating_add(margin) <= self.expires_at
    }
}

/// What `session.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The hub this session belongs to.
    pub hub: String,
    /// Its token endpoint (saves a discovery round trip on every refresh).
    pub token_endpoint: String,
    /// Its revocation endpoint, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// The refresh token (rotated on every use).
    #[serde(serialize_with = "expose", deserialize_with = "secret")]
    pub refresh_token: Secret,
    /// The current hub access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<CachedToken>,
    /// Cluster tokens by cluster name.
    #[serde(default)]
    pub clusters: BTreeMap<String, CachedToken>,
}

impl Session {
    /// Drops cluster tokens that expired before `now`.
    pub fn prune(&mut self, now: UnixTime) {
        self.clusters.retain(|_, t| t.expires_at > now);
    }
}

/// The cache directory of one hub.
#[derive(Clone, Debug)]
pub struct SessionStore {
    dir: PathBuf,
}

/// Proof that this process holds a hub's session lock; released on drop.
#[derive(Debug)]
pub struct SessionLock {
    // Closing the file releases the lock.
    _file: File,
}

impl SessionStore {
    /// The store of `hub` under `root`.
    pub fn new(root: &Path, hub: &HubUrl) -> Self {
        Self {
            dir: root.join(hub.cache_key()),
        }
    }

    /// The hub's cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The session file.
    pub fn session_path(&self) -> PathBuf {
        self.dir.join(SESSION_FILE)
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// Takes the exclusive lock, creating the directory (`0700`) and lock file (`0600`) if
    /// needed; waits at most `wait` for another process to release it.
    pub async fn lock(&self, wait: Duration) -> Result<SessionLock> {
        let cache_err = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Cache { path, source }
        };
        fsutil::create_private_dir_all(&self.dir).map_err(cache_err(&self.dir))?;
        fsutil::set_mode(&self.dir, fsutil::DIR_MODE).map_err(cache_err(&self.dir))?;
        let path = self.lock_path();
        let started = tokio::time::Instant::now();
        // Bounded in time; each attempt is quick.
        loop {
            let file = fsutil::open_private(&path).map_err(cache_err(&path))?;
            match file.try_lock() {
                Ok(()) => {
                    // A `logout` may have removed the file we locked: lock the one on disk.
                    if same_file(&file, &path) {
                        return Ok(SessionLock { _file: file });
                    }
                }
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(source)) => {
                    return Err(Error::Cache { path, source });
                }
            }
            if started.elapsed() >= wait {
                return Err(Error::LockTimeout {
                    path,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }

    /// The cached session, if any.
    pub fn load(&self, _lock: &SessionLock) -> Result<Option<Session>> {
        let path = self.session_path();
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Cache { path, source }),
        };
        let session: Session = serde_json::from_slice(&text).map_err(|e| Error::CorruptCache {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if session.version != FORMAT_VERSION {
            return Err(Error::CorruptCache {
                path,
                reason: format!("format version {} is not {FORMAT_VERSION}", session.version),
            });
        }
        Ok(Some(session))
    }

    /// Writes `session` (atomically, `0600`).
    pub fn save(&self, _lock: &SessionLock, session: &Session) -> Result<()> {
        let path = self.session_path();
        let json = serde_json::to_vec_pretty(session).map_err(|e| Error::CorruptCache {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        fsutil::write_atomic(&path, &json).map_err(|source| Error::Cache { path, source })
    }

    /// Deletes the session file (the session has ended); the directory and lock stay.
    pub fn forget(&self, _lock: &SessionLock) -> Result<()> {
        let path = self.session_path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Cache { path, source }),
        }
    }

    /// Deletes the hub's whole cache directory (`logout`).
    pub fn wipe(&self, lock: SessionLock) -> Result<()> {
        let result = match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Cache {
                path: self.dir.clone(),
                source,
            }),
        };
        drop(lock);
        result
    }
}

/// Whether the open `file` is still the one at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

fn expose<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

fn secret<'de, D: Deserializer<'de>>(de: D) -> Result<Secret, D::Error> {
    String::deserialize(de).map(Secret::new)
}

#[cfg(test)]
mod tests;
