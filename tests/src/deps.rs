//! Where the installed parts are: the stamp written by `scripts/test-deps.sh`
//! (`$TETHER_DEPS/deps.env`, default `<repo>/.deps`), and this workspace's own binaries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Installed third-party parts. Every accessor fails at once, naming the part, when the
/// file is missing.
#[derive(Debug, Clone)]
pub struct Deps {
    prefix: PathBuf,
    vars: HashMap<String, String>,
}

impl Deps {
    /// The parts of this run: `TETHER_DEPS` or `<repo>/.deps`, read once.
    pub fn get() -> &'static Deps {
        static DEPS: OnceLock<Deps> = OnceLock::new();
        DEPS.get_or_init(|| {
            let prefix = std::env::var_os("TETHER_DEPS")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo_root().join(".deps"));
            Deps::load(&prefix)
        })
    }

    /// Reads `PREFIX/deps.env` if present; defaults otherwise.
    pub fn load(prefix: &Path) -> Deps {
        let mut vars = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(prefix.join("deps.env")) {
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                if let Some((k, v)) = line.split_once('=') {
                    vars.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        Deps {
            prefix: prefix.to_path_buf(),
            vars,
        }
    }

    /// The install prefix.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    fn part(&self, part: &str, key: &str, default: PathBuf) -> Result<PathBuf> {
        let path = self.vars.get(key).map(PathBuf::from).unwrap_or(default);
        if path.exists() {
            Ok(path)
        } else {
            Err(Error::MissingPart {
                part: part.to_string(),
                path,
            })
        }
    }

    /// `kube-apiserver` v1.20.2.
    pub fn kube_apiserver(&self) -> Result<PathBuf> {
        self.part(
            "kube-apiserver",
            "KUBE_APISERVER",
            self.prefix.join("bin/kube-apiserver"),
        )
    }

    /// `test-kubelet` (streaming endpoints only).
    pub fn test_kubelet(&self) -> Result<PathBuf> {
        self.part(
            "test-kubelet",
            "TEST_KUBELET",
            self.prefix.join("bin/test-kubelet"),
        )
    }

    /// `kubectl` v1.35.
    pub fn kubectl(&self) -> Result<PathBuf> {
        self.part("kubectl", "KUBECTL", self.prefix.join("bin/kubectl"))
    }

    /// `helm` v4.
    pub fn helm(&self) -> Result<PathBuf> {
        self.part("helm", "HELM", self.prefix.join("bin/helm"))
    }

    /// `etcd` (Debian etcd-server).
    pub fn etcd(&self) -> Result<PathBuf> {
        self.part("etcd", "ETCD", PathBuf::from("/usr/bin/etcd"))
    }

    /// A PostgreSQL server binary (`initdb`, `postgres`, `pg_isready`).
    pub fn postgres_bin(&self, name: &str) -> Result<PathBuf> {
        let dir = self
            .vars
            .get("PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(default_pg_bin);
        let path = dir.join(name);
        if path.exists() {
            Ok(path)
        } else {
            Err(Error::MissingPart {
                part: format!("postgresql ({name})"),
                path,
            })
        }
    }

    /// `node`.
    pub fn node(&self) -> Result<PathBuf> {
        self.part("node", "NODE", PathBuf::from("/usr/bin/node"))
    }

    /// Debian's chromium.
    pub fn chromium(&self) -> Result<PathBuf> {
        self.part("chromium", "CHROMIUM", PathBuf::from("/usr/bin/chromium"))
    }

    /// An installed Node fixture dir (`idp`, `rp`, `browser`), with its `node_modules`.
    pub fn node_fixture(&self, name: &str) -> Result<PathBuf> {
        let base = self
            .vars
            .get("FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("tests/fixtures"));
        let dir = base.join(name);
        self.part(
            &format!("node fixture {name} (npm ci)"),
            "",
            dir.join("node_modules"),
        )?;
        Ok(dir)
    }
}

/// The repository root (parent of the `tests` crate).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A binary of this workspace, e.g. `tether-hub`: `target/<profile>/NAME` next to the
/// running test executable (`target/<profile>/deps/e2e-*`). Fails, naming it, if not built.
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(Error::io("locating the test executable"))?;
    // target/debug/deps/e2e-HASH -> target/debug; target/debug/tether-demo -> target/debug
    let parent = exe.parent();
    let profile_dir = match parent {
        Some(p) if p.file_name().is_some_and(|n| n == "deps") => p.parent(),
        other => other,
    }
    .map(Path::to_path_buf);
    let dir = profile_dir.unwrap_or_else(|| repo_root().join("target/debug"));
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingWorkspaceBin {
            name: name.to_string(),
            path,
        })
    }
}

fn default_pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}
