//! The user's kubeconfig: where it is, and the entries `login` writes for each cluster the
//! hub offers — a cluster (`server` = the agent's proxy, its CA), a user whose `exec`
//! plugin runs `tetherctl credential`, and a context — all named `tether-<cluster>`.
//!
//! An entry belongs to a hub when its user's `exec` runs `credential --hub <that hub>`.
//! Only such entries are changed or removed; anything else, including a `tether-*` entry of
//! another hub, is left alone (and reported). Unknown fields survive (see
//! [`tether_common::kube::kubeconfig`]), and so do fields a user added to one of our entries
//! (a context's `namespace`, say).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;
use tether_common::kube::exec_credential::API_VERSION_V1;
use tether_common::kube::{EntryKind, ExecConfig, ExecEnvVar, Kubeconfig};

use crate::admin::Env;
use crate::admin::cluster::ClusterName;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hub::{ENV_HUB_CA_DATA, HubCa, HubUrl, OfferedCluster};
use crate::session::ENV_CACHE_DIR;

/// Prefix of the names of every entry `login` writes.
pub const NAME_PREFIX: &str = "tether-";
/// Environment variable: kubectl's list of kubeconfig files.
pub const ENV_KUBECONFIG: &str = "KUBECONFIG";

/// The kubeconfig to update: `flag`, else the first path of `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn path(flag: Option<&Path>, env: &dyn Env) -> Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path.to_owned());
    }
    if let Some(list) = env.var(ENV_KUBECONFIG)
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    env.var("HOME")
        .map(|home| Path::new(&home).join(".kube").join("config"))
        .ok_or(Error::Missing(
            "cannot find the kubeconfig: pass --kubeconfig PATH or set KUBECONFIG or HOME",
        ))
}

/// The entry name for `cluster`: `tether-<cluster>`.
pub fn entry_name(cluster: &str) -> String {
    format!("{NAME_PREFIX}{cluster}")
}

/// How kubectl runs `tetherctl credential` for one hub.
#[derive(Clone, Debug)]
pub struct Plugin {
    /// The absolute path of the `tetherctl` binary.
    pub command: PathBuf,
    /// The hub.
    pub hub: HubUrl,
    /// How the hub is trusted: a file goes into `--hub-ca`, env data into `env`.
    pub hub_ca: HubCa,
    /// `TETHER_CACHE_DIR` as set at login, passed on so kubectl finds the same session.
    pub cache_dir: Option<PathBuf>,
}

impl Plugin {
    /// The plugin for `hub`, with the cache directory taken from `env` when set explicitly.
    pub fn new(command: PathBuf, hub: HubUrl, hub_ca: HubCa, env: &dyn Env) -> Self {
        let cache_dir = env
            .var(ENV_CACHE_DIR)
            .map(PathBuf::from)
            .map(|p| std::path::absolute(&p).unwrap_or(p));
        Self {
            command,
            hub,
            hub_ca,
            cache_dir,
        }
    }

    /// The `exec` section for `cluster`.
    pub fn exec(&self, cluster: &str) -> ExecConfig {
        let mut args = vec![
            "credential".to_owned(),
            "--hub".to_owned(),
            self.hub.to_string(),
            "--cluster".to_owned(),
            cluster.to_owned(),
        ];
        let mut env = Vec::new();
        match &self.hub_ca {
            HubCa::System => {}
            HubCa::File { path, .. } => {
                args.push("--hub-ca".to_owned());
                args.push(path.display().to_string());
            }
            HubCa::EnvData { base64, .. } => env.push(ExecEnvVar {
                name: ENV_HUB_CA_DATA.to_owned(),
                value: base64.clone(),
            }),
        }
        if let Some(dir) = &self.cache_dir {
            env.push(ExecEnvVar {
                name: ENV_CACHE_DIR.to_owned(),
                value: dir.display().to_string(),
            });
        }
        ExecConfig {
            api_version: API_VERSION_V1.to_owned(),
            command: self.command.display().to_string(),
            args,
            env,
            interactive_mode: "Never".to_owned(),
            provide_cluster_info: false,
            install_hint: format!(
                "tetherctl is needed to reach this cluster; install it, then run: tetherctl \
                 login --hub {}",
                self.hub
            ),
        }
    }
}

/// What [`merge`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Contexts written (created or updated), sorted.
    pub written: Vec<String>,
    /// Contexts of this hub removed because the hub no longer offers their cluster.
    pub removed: Vec<String>,
    /// Clusters not written, and why.
    pub skipped: Vec<(String, String)>,
    /// The context made current, if `current-context` was unset.
    pub current_context: Option<String>,
}

/// Whether user `name` is this hub's: its `exec` runs `credential --hub <hub>`.
pub fn owned_by(config: &Kubeconfig, hub: &HubUrl, name: &str) -> bool {
    name.starts_with(NAME_PREFIX)
        && config.user_exec(name).is_some_and(|exec| {
            exec.args.first().is_some_and(|a| a == "credential")
                && exec.arg_value("--hub") == Some(hub.as_str())
        })
}

/// Whether entry `name` of any kind already exists.
fn exists(config: &Kubeconfig, name: &str) -> bool {
    [EntryKind::Cluster, EntryKind::Context, EntryKind::User]
        .into_iter()
        .any(|kind| config.entry(kind, name).is_some())
}

/// Writes an entry triple for every offered cluster and removes this hub's triples for
/// clusters no longer offered. Sets `current-context` only if it is unset (or named a
/// context removed here).
pub fn merge(config: &mut Kubeconfig, plugin: &Plugin, offered: &[OfferedCluster]) -> MergeReport {
    let mut report = MergeReport::default();
    let mut offered: Vec<&OfferedCluster> = offered.iter().collect();
    offered.sort_by(|a, b| a.name.cmp(&b.name));
    let mut kept = BTreeSet::new();

    for cluster in offered {
        if let Err(reason) = check_offered(cluster) {
            report.skipped.push((cluster.name.clone(), reason));
            continue;
        }
        let name = entry_name(&cluster.name);
        if !owned_by(config, &plugin.hub, &name) && exists(config, &name) {
            report.skipped.push((
                cluster.name.clone(),
                format!("the kubeconfig already has a {name:?} entry that is not from this hub"),
            ));
            continue;
        }
        write_entries(config, plugin, cluster, &name);
        kept.insert(name.clone());
        report.written.push(name);
    }

    let stale: Vec<String> = config
        .users
        .iter()
        .map(|u| u.name.clone())
        .filter(|n| !kept.contains(n) && owned_by(config, &plugin.hub, n))
        .collect();
    for name in stale {
        remove_entries(config, &name);
        report.removed.push(name);
    }
    if report.removed.contains(&config.current_context) {
        config.current_context.clear();
    }
    if config.current_context.is_empty()
        && let Some(first) = report.written.first()
    {
        config.current_context = first.clone();
        report.current_context = Some(first.clone());
    }
    report
}

/// Removes every entry triple of `hub`; returns the names removed. Clears
/// `current-context` if it was one of them.
pub fn remove_hub(config: &mut Kubeconfig, hub: &HubUrl) -> Vec<String> {
    let ours: Vec<String> = config
        .users
        .iter()
        .map(|u| u.name.clone())
        .filter(|n| owned_by(config, hub, n))
        .collect();
    for name in &ours {
        remove_entries(config, name);
    }
    if ours.contains(&config.current_context) {
        config.current_context.clear();
    }
    ours
}

/// Reads (or starts) the kubeconfig at `path`, applies `edit`, and writes it back
/// atomically with mode `0600`. A symlinked kubeconfig is written through to its target.
pub fn update_file<T>(path: &Path, edit: impl FnOnce(&mut Kubeconfig) -> T) -> Result<T> {
    let fail = |reason: String| Error::Kubeconfig {
        path: path.to_owned(),
        reason,
    };
    let target = match std::fs::canonicalize(path) {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(fail(e.to_string())),
    };
    let mut config = match std::fs::read_to_string(&target) {
        Ok(text) => Kubeconfig::from_yaml(&text).map_err(|e| fail(e.to_string()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Kubeconfig::new(),
        Err(e) => return Err(fail(e.to_string())),
    };
    let result = edit(&mut config);
    let yaml = config.to_yaml().map_err(|e| fail(e.to_string()))?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsutil::create_private_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    fsutil::write_atomic(&target, yaml.as_bytes()).map_err(|e| fail(e.to_string()))?;
    Ok(result)
}

/// Why an offered cluster cannot be written, if it cannot.
fn check_offered(cluster: &OfferedCluster) -> Result<(), String> {
    cluster
        .name
        .parse::<ClusterName>()
        .map_err(|e| format!("the hub sent an invalid cluster name: {e}"))?;
    let url = url::Url::parse(&cluster.proxy_url).map_err(|e| {
        format!(
            "the hub sent an invalid proxy_url {:?}: {e}",
            cluster.proxy_url
        )
    })?;
    if url.scheme() != "https" {
        return Err(format!(
            "the hub sent a proxy_url that is not https: {:?}",
            cluster.proxy_url
        ));
    }
    Ok(())
}

fn write_entries(config: &mut Kubeconfig, plugin: &Plugin, cluster: &OfferedCluster, name: &str) {
    config.edit_body(EntryKind::Cluster, name, |body| {
        body.insert("server".into(), Value::String(cluster.proxy_url.clone()));
        // Our CA decides: drop whatever could override it.
        body.remove("certificate-authority");
        body.remove("insecure-skip-tls-verify");
        if cluster.proxy_ca_pem.trim().is_empty() {
            body.remove("certificate-authority-data");
        } else {
            let data = base64::engine::general_purpose::STANDARD.encode(&cluster.proxy_ca_pem);
            body.insert("certificate-authority-data".into(), Value::String(data));
        }
    });
    let exec = serde_json::to_value(plugin.exec(&cluster.name)).unwrap_or(Value::Null);
    config.edit_body(EntryKind::User, name, |body| {
        body.insert("exec".into(), exec);
    });
    config.edit_body(EntryKind::Context, name, |body| {
        body.insert("cluster".into(), Value::String(name.to_owned()));
        body.insert("user".into(), Value::String(name.to_owned()));
    });
}

fn remove_entries(config: &mut Kubeconfig, name: &str) {
    config.remove(EntryKind::User, name);
    config.remove(EntryKind::Cluster, name);
    // Only a context that still points at our user.
    let points_at_us = config
        .body(EntryKind::Context, name)
        .is_some_and(|c| c.get("user").and_then(Value::as_str) == Some(name));
    if points_at_us {
        config.remove(EntryKind::Context, name);
    }
}

#[cfg(test)]
mod tests;
