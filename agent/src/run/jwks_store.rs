//! The agent's state files in `--state-dir`:
//! - `jwks.json`: the last JWKS and verification settings from the hub, loaded at start so
//!   tokens still verify while the hub is unreachable;
//! - `status.json`: what the agent knows now, rewritten on every change (the e2e tests
//!   poll it).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tether_common::token::Jwks;

use crate::error::{Error, Result};
use crate::identity::write_atomic;

/// File name of the stored JWKS.
pub const JWKS_FILE: &str = "jwks.json";
/// File name of the status.
pub const STATUS_FILE: &str = "status.json";

/// What `jwks.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredJwks {
    /// The hub's key generation.
    pub generation: i64,
    /// The JWKS document.
    pub jwks: Jwks,
    /// Required `iss` (empty when not known yet).
    #[serde(default)]
    pub issuer: String,
    /// Required `aud` (empty when not known yet).
    #[serde(default)]
    pub audience: String,
    /// Allowed clock skew, seconds.
    #[serde(default)]
    pub leeway_seconds: i64,
}

/// What `status.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Whether the control stream is up.
    pub connected: bool,
    /// Generation of the JWKS in use (0: none).
    pub jwks_generation: i64,
    /// Key ids of the JWKS in use, sorted.
    pub kids: Vec<String>,
    /// Revoked session ids still in force, sorted.
    pub revoked_sids: Vec<String>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// Uses (and creates) `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Self(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The stored JWKS, if any. A corrupt file is an error (the caller logs and ignores it).
    pub fn load_jwks(&self) -> Result<Option<StoredJwks>> {
        let path = self.0.join(JWKS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Replaces the stored JWKS.
    pub fn save_jwks(&self, stored: &StoredJwks) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(stored)?;
        write_atomic(&self.0.join(JWKS_FILE), &bytes, false)
    }

    /// Replaces `status.json`.
    pub fn save_status(&self, status: &Status) -> Result<()> {
        let bytes = serde_json::to_vec(status)?;
        write_atomic(&self.0.join(STATUS_FILE), &bytes, false)
    }

    /// Reads `status.json`.
    pub fn load_status(&self) -> Result<Status> {
        let path = self.0.join(STATUS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(path, e))?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use tether_common::token::{Algorithm, SigningKey};

    use super::*;

    #[test]
    fn jwks_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        assert_eq!(state.load_jwks().unwrap(), None);
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let stored = StoredJwks {
            generation: 7,
            jwks: std::iter::once(key.public_jwk()).collect(),
            issuer: "https://hub.example".to_owned(),
            audience: "tether:cluster:prod".to_owned(),
            leeway_seconds: 30,
        };
        state.save_jwks(&stored).unwrap();
        assert_eq!(state.load_jwks().unwrap(), Some(stored));
        std::fs::write(dir.path().join("state").join(JWKS_FILE), b"{").unwrap();
        assert!(state.load_jwks().is_err());
    }

    #[test]
    fn status_file_format() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let status = Status {
            connected: true,
            jwks_generation: 3,
            kids: vec!["a".to_owned(), "b".to_owned()],
            revoked_sids: vec!["s1".to_owned()],
        };
        state.save_status(&status).unwrap();
        let text = std::fs::read_to_string(dir.path().join(STATUS_FILE)).unwrap();
        assert_eq!(
            text,
            r#"{"connected":true,"jwks_generation":3,"kids":["a","b"],"revoked_sids":["s1"]}"#
        );
        assert_eq!(state.load_status().unwrap(), status);
    }
}
