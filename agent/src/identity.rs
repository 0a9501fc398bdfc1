//! The agent's identity: its private key and hub-signed certificate, the CAs, and what it
//! needs to dial the hub. Kept either in a directory of files or in the
//! `tether-agent-identity` Secret; both use the same key names ([`keys`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::error::{Error, Result};

/// Name of the identity Secret in the agent's namespace.
pub const SECRET_NAME: &str = "tether-agent-identity";
/// Field manager used for every server-side apply the agent does.
pub const FIELD_MANAGER: &str = "tether-agent";

/// Key names, shared by the Secret's `data` and the files of `--identity-dir`.
pub mod keys {
    /// The agent's client certificate (PEM), CN = cluster.
    pub const TLS_CRT: &str = "tls.crt";
    /// The agent's private key (PKCS#8 PEM).
    pub const TLS_KEY: &str = "tls.key";
    /// The hub's cluster CA (PEM): signs agent certificates.
    pub const CA_CRT: &str = "ca.crt";
    /// The hub's gRPC CA (PEM): the only root trusted when dialling the hub.
    pub const HUB_CA_CRT: &str = "hub-ca.crt";
    /// The hub's gRPC URL.
    pub const HUB_URL: &str = "hub-url";
    /// The cluster name.
    pub const CLUSTER: &str = "cluster";
    /// The hub's OIDC issuer (optional in a directory; the hub also sends it).
    pub const ISSUER: &str = "issuer";
    /// This cluster's token audience (optional in a directory; the hub also sends it).
    pub const AUDIENCE: &str = "audience";
}

/// The agent's identity. `Debug` never shows the key.
#[derive(Clone)]
pub struct Identity {
    /// Client certificate (PEM).
    pub cert_pem: String,
    /// Private key (PKCS#8 PEM).
    pub key_pem: String,
    /// Cluster CA (PEM).
    pub cluster_ca_pem: String,
    /// Hub gRPC CA (PEM).
    pub hub_ca_pem: String,
    /// Hub gRPC URL.
    pub hub_url: String,
    /// Cluster name.
    pub cluster: String,
    /// OIDC issuer, when known.
    pub issuer: String,
    /// Token audience, when known.
    pub audience: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cluster", &self.cluster)
            .field("hub_url", &self.hub_url)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A stand-in for `--dry-run`: the Secret's shape with no key material.
    pub fn placeholder(cluster: &str, hub_url: &str) -> Self {
        let issued = "<issued by the hub at join>".to_owned();
        Self {
            cert_pem: issued.clone(),
            key_pem: "<generated in the spoke at join>".to_owned(),
            cluster_ca_pem: issued.clone(),
            hub_ca_pem: issued.clone(),
            hub_url: hub_url.to_owned(),
            cluster: cluster.to_owned(),
            issuer: issued.clone(),
            audience: issued,
        }
    }

    /// The identity as key → value, in the Secret / directory layout.
    pub fn to_map(&self) -> BTreeMap<&'static str, &str> {
        BTreeMap::from([
            (keys::TLS_CRT, self.cert_pem.as_str()),
            (keys::TLS_KEY, self.key_pem.as_str()),
            (keys::CA_CRT, self.cluster_ca_pem.as_str()),
            (keys::HUB_CA_CRT, self.hub_ca_pem.as_str()),
            (keys::HUB_URL, self.hub_url.as_str()),
            (keys::CLUSTER, self.cluster.as_str()),
            (keys::ISSUER, self.issuer.as_str()),
            (keys::AUDIENCE, self.audience.as_str()),
        ])
    }

    /// Builds an identity from key → value; `issuer` and `audience` may be absent.
    pub fn from_lookup(mut get: impl FnMut(&'static str) -> Option<String>) -> Result<Self> {
        let mut required = |key: &'static str| {
            get(key)
                .map(|v| v.trim_end_matches('\n').to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::Identity(format!("{key} is missing or empty")))
        };
        let cert_pem = required(keys::TLS_CRT)?;
        let key_pem = required(keys::TLS_KEY)?;
        let cluster_ca_pem = required(keys::CA_CRT)?;
        let hub_ca_pem = required(keys::HUB_CA_CRT)?;
        let hub_url = required(keys::HUB_URL)?;
        let cluster = required(keys::CLUSTER)?;
        let mut optional = |key| get(key).map(|v| v.trim().to_owned()).unwrap_or_default();
        Ok(Self {
            cert_pem,
            key_pem,
            cluster_ca_pem,
            hub_ca_pem,
            hub_url,
            cluster,
            issuer: optional(keys::ISSUER),
            audience: optional(keys::AUDIENCE),
        })
    }

    /// The identity's Secret `data`.
    pub fn secret_data(&self) -> BTreeMap<String, ByteString> {
        self.to_map()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }
}

/// Where the identity is kept.
#[derive(Clone)]
pub enum IdentityStore {
    /// Files named after [`keys`] in a directory (`--identity-dir`).
    Dir(PathBuf),
    /// The `tether-agent-identity` Secret in the agent's namespace.
    Secret(Box<Api<Secret>>),
}

impl std::fmt::Debug for IdentityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "IdentityStore::Dir({})", dir.display()),
            Self::Secret(_) => write!(f, "IdentityStore::Secret({SECRET_NAME})"),
        }
    }
}

impl IdentityStore {
    /// Reads the identity.
    pub async fn load(&self) -> Result<Identity> {
        match self {
            Self::Dir(dir) => {
                Identity::from_lookup(|key| std::fs::read_to_string(dir.join(key)).ok())
            }
            Self::Secret(api) => {
                let secret = api.get_opt(SECRET_NAME).await?.ok_or_else(|| {
                    Error::Identity(format!(
                        "Secret {SECRET_NAME} not found: run `tether-agent join` first"
                    ))
                })?;
                let data = secret.data.unwrap_or_default();
                Identity::from_lookup(|key| {
                    data.get(key)
                        .and_then(|v| String::from_utf8(v.0.clone()).ok())
                })
            }
        }
    }

    /// Writes the identity (after a renewal). Files are replaced atomically, the key with
    /// mode 0600; the Secret is server-side applied.
    pub async fn save(&self, identity: &Identity) -> Result<()> {
        match self {
            Self::Dir(dir) => {
                for (key, value) in identity.to_map() {
                    write_atomic(&dir.join(key), value.as_bytes(), key == keys::TLS_KEY)?;
                }
                Ok(())
            }
            Self::Secret(api) => {
                let secret = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(SECRET_NAME.to_owned()),
                        ..Default::default()
                    },
                    type_: Some("Opaque".to_owned()),
                    data: Some(identity.secret_data()),
                    ..Default::default()
                };
                api.patch(
                    SECRET_NAME,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&secret),
                )
                .await?;
                Ok(())
            }
        }
    }
}

/// Writes `path` through a temporary file and a rename; `private` files get mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    use std::io::Write as _;

    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.tmp", name.unwrap_or_default()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
