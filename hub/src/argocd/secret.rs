//! Rendering: one ArgoCD cluster Secret per joined spoke, in ArgoCD's declarative format
//! (<https://argo-cd.readthedocs.io/en/stable/operator-manual/declarative-setup/#clusters>).
//!
//! [`render`] is a pure function of the cluster record and the [`RenderSettings`]; the
//! reconciler and the Admin API (`tetherctl argocd secret`) both call it.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::{
    ANNOTATION_CLUSTER, ArgoCdError, LABEL_MANAGED_BY, LABEL_SECRET_TYPE, MANAGED_BY,
    SECRET_NAME_PREFIX, SECRET_TYPE_CLUSTER,
};
use crate::registry::{ClusterName, ClusterRecord, ClusterState};

/// The `apiVersion` of the ExecCredential ArgoCD asks `tetherctl credential` for.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";
/// The environment variable carrying the hub CA (base64 of its PEM) to `tetherctl credential`.
pub const ENV_HUB_CA_DATA: &str = "TETHER_HUB_CA_DATA";
/// Data keys of a cluster Secret.
pub const DATA_NAME: &str = "name";
/// The spoke's API URL (its proxy).
pub const DATA_SERVER: &str = "server";
/// The JSON connection config.
pub const DATA_CONFIG: &str = "config";

/// What every rendered Secret shares: resolved once from the `argocd` section at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSettings {
    /// The namespace the Secrets go to.
    pub namespace: String,
    /// `tetherctl` inside the ArgoCD images.
    pub command: String,
    /// The controller's ServiceAccount token file.
    pub token_file: String,
    /// The hub URL `tetherctl credential --hub` talks to.
    pub hub_url: String,
    /// The hub CA (PEM) the credential trusts, if not the system roots.
    pub hub_ca_pem: Option<String>,
}

/// A rendered Secret and the spoke labels left out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The cluster.
    pub cluster: ClusterName,
    /// The Secret.
    pub secret: Secret,
    /// Spoke labels not copied (invalid as Kubernetes labels, or reserved).
    pub skipped_labels: Vec<SkippedLabel>,
}

/// A spoke label that was not copied onto the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLabel {
    /// The key.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// Why a cluster has no Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotPublished {
    /// It is pending or removed.
    #[error("cluster {name} is {state}, not joined: only joined clusters have an ArgoCD Secret")]
    NotJoined {
        /// The cluster.
        name: ClusterName,
        /// Its state.
        state: &'static str,
    },
    /// Its agent has not reported a proxy URL yet.
    #[error(
        "cluster {0} has not reported its proxy URL yet: is its agent running with the proxy? \
         (see `tetherctl cluster list`)"
    )]
    NoProxyUrl(ClusterName),
}

/// The Secret's name for `cluster`: `tether-cluster-<cluster>`.
pub fn secret_name(cluster: &ClusterName) -> String {
    format!("{SECRET_NAME_PREFIX}{cluster}")
}

/// Whether `record` gets a Secret: joined, with a proxy URL.
pub fn published(record: &ClusterRecord) -> Result<(), NotPublished> {
    if record.state != ClusterState::Joined {
        return Err(NotPublished::NotJoined {
            name: record.row.name.clone(),
            state: record.state.as_str(),
        });
    }
    if record.proxy_url.is_empty() {
        return Err(NotPublished::NoProxyUrl(record.row.name.clone()));
    }
    Ok(())
}

/// The Secrets of every published cluster in `records`, by Secret name.
pub fn render_all(
    records: &[ClusterRecord],
    settings: &RenderSettings,
) -> Result<BTreeMap<String, Rendered>, ArgoCdError> {
    records
        .iter()
        .filter(|r| published(r).is_ok())
        .map(|r| render(r, settings).map(|rendered| (secret_name(&r.row.name), rendered)))
        .collect()
}

/// The cluster Secret of `record` (whatever its state: see [`published`]).
pub fn render(record: &ClusterRecord, settings: &RenderSettings) -> Result<Rendered, ArgoCdError> {
    let name = &record.row.name;
    let mut labels = BTreeMap::new();
    let mut skipped_labels = Vec::new();
    for (key, value) in &record.row.labels {
        match copyable_label(key, value) {
            Ok(()) => {
                labels.insert(key.clone(), value.clone());
            }
            Err(reason) => skipped_labels.push(SkippedLabel {
                key: key.clone(),
                reason,
            }),
        }
    }
    labels.insert(LABEL_SECRET_TYPE.to_owned(), SECRET_TYPE_CLUSTER.to_owned());
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    let annotations = BTreeMap::from([(ANNOTATION_CLUSTER.to_owned(), name.to_string())]);
    let config =
        serde_json::to_string(&cluster_config(record, settings)).map_err(ArgoCdError::Render)?;
    let data = BTreeMap::from([
        (DATA_NAME.to_owned(), bytes(name.as_str())),
        (DATA_SERVER.to_owned(), bytes(&record.proxy_url)),
        (DATA_CONFIG.to_owned(), bytes(&config)),
    ]);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(name)),
            namespace: Some(settings.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    };
    Ok(Rendered {
        cluster: name.clone(),
        secret,
        skipped_labels,
    })
}

/// The Secret as YAML (what `kubectl get -o yaml` shows: `data` in base64).
pub fn to_yaml(secret: &Secret) -> Result<String, ArgoCdError> {
    serde_saphyr::to_string(secret).map_err(|err| ArgoCdError::Yaml(err.to_string()))
}

/// The Secret as pretty JSON, with a trailing newline.
pub fn to_json(secret: &Secret) -> Result<String, ArgoCdError> {
    let mut json = serde_json::to_string_pretty(secret).map_err(ArgoCdError::Render)?;
    json.push('\n');
    Ok(json)
}

/// The `config` data: ArgoCD's `ClusterConfig` with an exec provider running
/// `tetherctl credential`, and the proxy's CA.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfig {
    exec_provider_config: ExecProviderConfig,
    tls_client_config: TlsClientConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecProviderConfig {
    command: String,
    args: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    api_version: &'static str,
    install_hint: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TlsClientConfig {
    insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_data: Option<String>,
}

fn cluster_config(record: &ClusterRecord, settings: &RenderSettings) -> ClusterConfig {
    let env = settings
        .hub_ca_pem
        .iter()
        .map(|pem| (ENV_HUB_CA_DATA.to_owned(), STANDARD.encode(pem)))
        .collect();
    ClusterConfig {
        exec_provider_config: ExecProviderConfig {
            command: settings.command.clone(),
            args: vec![
                "credential".to_owned(),
                "--hub".to_owned(),
                settings.hub_url.clone(),
                "--cluster".to_owned(),
                record.row.name.to_string(),
                "--token-file".to_owned(),
                settings.token_file.clone(),
            ],
            env,
            api_version: EXEC_API_VERSION,
            install_hint: format!(
                "tetherctl must be installed in the ArgoCD application controller and server \
                 images at {} (see the Tether documentation on ArgoCD)",
                settings.command
            ),
        },
        tls_client_config: TlsClientConfig {
            insecure: false,
            ca_data: (!record.proxy_ca_pem.is_empty())
                .then(|| STANDARD.encode(&record.proxy_ca_pem)),
        },
    }
}

fn bytes(text: &str) -> ByteString {
    ByteString(text.as_bytes().to_vec())
}

/// Whether a spoke label may be copied: a valid Kubernetes label that does not collide
/// with the labels the hub sets; `Err` says why not.
pub fn copyable_label(key: &str, value: &str) -> Result<(), String> {
    if key == LABEL_SECRET_TYPE || key == LABEL_MANAGED_BY {
        return Err(format!("{key} is set by the hub"));
    }
    label_key(key)?;
    if !value.is_empty() {
        label_name(value).map_err(|e| format!("value {value:?}: {e}"))?;
    }
    Ok(())
}

/// A label key: `[PREFIX/]NAME`, PREFIX a DNS-1123 subdomain.
fn label_key(key: &str) -> Result<(), String> {
    match key.split_once('/') {
        Some((prefix, name)) => {
            dns1123_subdomain(prefix).map_err(|e| format!("key prefix {prefix:?}: {e}"))?;
            label_name(name).map_err(|e| format!("key name {name:?}: {e}"))
        }
        None => label_name(key).map_err(|e| format!("key {key:?}: {e}")),
    }
}

/// A label name or non-empty value: 1-63 of `A-Za-z0-9-_.`, alphanumeric at both ends.
fn label_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters".to_owned());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may contain only letters, digits, '-', '_' and '.'".to_owned());
    }
    let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    if !alnum(s.as_bytes().first()) || !alnum(s.as_bytes().last()) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// A DNS-1123 label: 1-63 of `a-z0-9-`, alphanumeric at both ends.
pub(crate) fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err("must be 1 to 63 characters".to_owned());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may contain only lowercase letters, digits and '-'".to_owned());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 in all.
fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("must be at most 253 characters".to_owned());
    }
    s.split('.').try_for_each(dns1123_label)
}
