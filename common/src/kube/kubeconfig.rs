//! A kubeconfig file (`clientcmd/v1` `Config`) that survives a read–edit–write round trip.
//!
//! The top level is typed (`clusters`, `contexts`, `users`, `current-context`) and every
//! other key is kept in [`Kubeconfig::extra`]; each entry keeps all its fields in
//! [`NamedEntry::fields`]. A tool edits only the entries it owns and writes the file back
//! with everyone else's entries — including fields this crate has never heard of — intact.
//! Keys are written in kubectl's own order (alphabetical).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `apiVersion` of a kubeconfig.
pub const API_VERSION: &str = "v1";
/// `kind` of a kubeconfig.
pub const KIND: &str = "Config";

/// Why a kubeconfig cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The text is not YAML (or JSON) of a kubeconfig's shape.
    #[error("not a valid kubeconfig: {0}")]
    Parse(String),
    /// Serializing to YAML failed.
    #[error("cannot serialize the kubeconfig: {0}")]
    Serialize(String),
}

/// A kubeconfig file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    /// `apiVersion` (`v1`).
    #[serde(
        rename = "apiVersion",
        default = "api_version",
        deserialize_with = "null_as_default"
    )]
    pub api_version: String,
    /// `clusters`: where API servers are and how to trust them.
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedEntry>,
    /// `contexts`: (cluster, user, namespace) triples.
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedEntry>,
    /// `current-context`; empty means unset.
    #[serde(
        rename = "current-context",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub current_context: String,
    /// `kind` (`Config`).
    #[serde(default = "kind", deserialize_with = "null_as_default")]
    pub kind: String,
    /// Every other top-level key (`preferences`, `extensions`, ...), untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// `users`: credentials (`token`, client certificates, `exec` plugins).
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedEntry>,
}

/// One entry of `clusters`, `contexts` or `users`: its name and all its other fields
/// (`cluster:` / `context:` / `user:`, `extensions`, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedEntry {
    /// The entry's name.
    pub name: String,
    /// Its other fields, untouched.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// Which list an entry lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// `clusters[].cluster`.
    Cluster,
    /// `contexts[].context`.
    Context,
    /// `users[].user`.
    User,
}

impl EntryKind {
    /// The key of the entry's body: `cluster`, `context` or `user`.
    pub fn body_key(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::Context => "context",
            Self::User => "user",
        }
    }
}

impl Kubeconfig {
    /// An empty kubeconfig (`apiVersion: v1`, `kind: Config`).
    pub fn new() -> Self {
        Self {
            api_version: api_version(),
            kind: kind(),
            ..Self::default()
        }
    }

    /// Parses YAML (or JSON) text. Empty text (or only comments) is an empty kubeconfig.
    pub fn from_yaml(text: &str) -> Result<Self, KubeconfigError> {
        let meaningful = text
            .lines()
            .map(str::trim)
            .any(|l| !l.is_empty() && !l.starts_with('#') && l != "---");
        if !meaningful {
            return Ok(Self::new());
        }
        let mut config: Self =
            serde_saphyr::from_str(text).map_err(|e| KubeconfigError::Parse(e.to_string()))?;
        if config.api_version.is_empty() {
            config.api_version = api_version();
        }
        if config.kind.is_empty() {
            config.kind = kind();
        }
        Ok(config)
    }

    /// The kubeconfig as YAML.
    pub fn to_yaml(&self) -> Result<String, KubeconfigError> {
        serde_saphyr::to_string(self).map_err(|e| KubeconfigError::Serialize(e.to_string()))
    }

    /// The list of `kind`.
    pub fn entries(&self, kind: EntryKind) -> &[NamedEntry] {
        match kind {
            EntryKind::Cluster => &self.clusters,
            EntryKind::Context => &self.contexts,
            EntryKind::User => &self.users,
        }
    }

    fn entries_mut(&mut self, kind: EntryKind) -> &mut Vec<NamedEntry> {
        match kind {
            EntryKind::Cluster => &mut self.clusters,
            EntryKind::Context => &mut self.contexts,
            EntryKind::User => &mut self.users,
        }
    }

    /// The entry `name` of `kind`, if any.
    pub fn entry(&self, kind: EntryKind, name: &str) -> Option<&NamedEntry> {
        self.entries(kind).iter().find(|e| e.name == name)
    }

    /// The body (`cluster:`, `context:` or `user:` object) of entry `name`, if it exists
    /// and is an object.
    pub fn body(&self, kind: EntryKind, name: &str) -> Option<&Map<String, Value>> {
        self.entry(kind, name)?
            .fields
            .get(kind.body_key())?
            .as_object()
    }

    /// Edits the body of entry `name` with `edit`, creating the entry (appended) or an empty
    /// body (in place of one that is not an object) as needed. The entry's other fields
    /// are kept.
    pub fn edit_body(
        &mut self,
        kind: EntryKind,
        name: &str,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) {
        let entries = self.entries_mut(kind);
        let index = match entries.iter().position(|e| e.name == name) {
            Some(i) => i,
            None => {
                entries.push(NamedEntry {
                    name: name.to_owned(),
                    fields: Map::new(),
                });
                entries.len() - 1
            }
        };
        let fields = &mut entries[index].fields;
        let mut body = match fields.remove(kind.body_key()) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        edit(&mut body);
        fields.insert(kind.body_key().to_owned(), Value::Object(body));
    }

    /// Removes entry `name` of `kind`; whether it existed.
    pub fn remove(&mut self, kind: EntryKind, name: &str) -> bool {
        let entries = self.entries_mut(kind);
        let before = entries.len();
        entries.retain(|e| e.name != name);
        entries.len() != before
    }

    /// The `exec` plugin configuration of user `name`, if it has one that parses.
    pub fn user_exec(&self, name: &str) -> Option<ExecConfig> {
        let exec = self.body(EntryKind::User, name)?.get("exec")?;
        serde_json::from_value(exec.clone()).ok()
    }
}

/// A user's `exec` credential plugin (`users[].user.exec`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecConfig {
    /// `client.authentication.k8s.io/v1` (or `v1beta1`).
    pub api_version: String,
    /// The plugin; an absolute path, or a name looked up in `PATH`.
    pub command: String,
    /// Its arguments.
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<String>,
    /// Extra environment variables for it.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<ExecEnvVar>,
    /// `Never`, `IfAvailable` or `Always` (required by `v1`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interactive_mode: String,
    /// Whether kubectl passes the cluster's details in `KUBERNETES_EXEC_INFO`.
    #[serde(default)]
    pub provide_cluster_info: bool,
    /// What kubectl prints when `command` is not found.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub install_hint: String,
}

/// One `env` entry of an [`ExecConfig`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecEnvVar {
    /// The variable's name.
    pub name: String,
    /// Its value (may carry a CA bundle; never a token).
    pub value: String,
}

impl std::fmt::Debug for ExecEnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecEnvVar")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ExecConfig {
    /// The value following `flag` in `args` (`--hub URL`), if any.
    pub fn arg_value(&self, flag: &str) -> Option<&str> {
        self.args
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.args.get(i + 1))
            .map(String::as_str)
    }
}

fn api_version() -> String {
    API_VERSION.to_owned()
}

fn kind() -> String {
    KIND.to_owned()
}

/// `key: null` (or `key:` with nothing) reads as the default, as kubectl does.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
