//! OAuth clients: the configured ones (`clients:`) and the built-in public `tetherctl`.
//!
//! - [`config`]: [`ClientConfig`] and [`validate_clients`].
//!
//! Confidential clients authenticate with a secret whose SHA-256 is configured; the
//! comparison runs in constant time. Redirect URIs match as exact strings, except that a
//! `native` client's loopback-IP URIs match on any port (RFC 8252 §7.3).

pub mod config;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom as _, SystemRandom};
use tether_common::secret::{Secret, ct_eq};
use url::{Host, Url};

pub use config::{ClientConfig, ClientKind, RESERVED_ID_PREFIX, validate_clients};

use crate::registry::ClusterName;
use crate::sessions::secrets::hex;

/// The id of the built-in public, native client used by `tetherctl`.
pub const TETHERCTL_CLIENT_ID: &str = "tetherctl";
/// The path of `tetherctl`'s loopback redirect URIs (`http://127.0.0.1:<port>/callback`).
pub const TETHERCTL_REDIRECT_PATH: &str = "/callback";
/// Prefix of a configured secret hash.
pub const SECRET_HASH_PREFIX: &str = "sha256:";

/// `sha256:<hex>` of a client secret: what goes into `clients[].secret_hash`.
pub fn hash_secret(secret: &Secret) -> String {
    format!(
        "{SECRET_HASH_PREFIX}{}",
        hex(digest(&SHA256, secret.expose().as_bytes()).as_ref())
    )
}

/// A new random client secret (256 bits, base64url), for `tether-hub hash-secret --generate`.
pub fn generate_secret() -> Result<Secret, ClientError> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ClientError::Random)?;
    Ok(Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}

/// Why a client was refused. Every variant maps to RFC 6749 `invalid_client`; do not tell
/// the client which one.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No client has this id.
    #[error("unknown client {0:?}")]
    UnknownClient(String),
    /// A confidential client presented no secret.
    #[error("client {0:?} must authenticate with its secret")]
    MissingSecret(String),
    /// A confidential client presented a wrong secret.
    #[error("client {0:?} presented a wrong secret")]
    InvalidSecret(String),
    /// A public client presented a secret.
    #[error("client {0:?} is public and must not present a secret")]
    UnexpectedSecret(String),
    /// The `clients:` configuration is invalid.
    #[error("{field}: {reason}")]
    InvalidConfig {
        /// Dotted field path (`clients[0].id`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The hub's OAuth clients, by id. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Clients {
    by_id: BTreeMap<String, Client>,
}

impl Clients {
    /// The configured clients plus the built-in `tetherctl`.
    pub fn new(configs: &[ClientConfig]) -> Result<Self, ClientError> {
        validate_clients(configs)
            .map_err(|(field, reason)| ClientError::InvalidConfig { field, reason })?;
        let mut by_id = BTreeMap::new();
        let tetherctl = Client::tetherctl();
        by_id.insert(tetherctl.id.clone(), tetherctl);
        for config in configs {
            by_id.insert(config.id.clone(), Client::from_config(config));
        }
        Ok(Self { by_id })
    }

    /// The client `id`.
    pub fn get(&self, id: &str) -> Option<&Client> {
        self.by_id.get(id)
    }

    /// Every client, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.by_id.values()
    }

    /// Authenticates `id`: a confidential client must present its secret (compared as
    /// SHA-256 in constant time); a public client must present none.
    pub fn authenticate(
        &self,
        id: &str,
        presented: Option<&Secret>,
    ) -> Result<&Client, ClientError> {
        let Some(client) = self.get(id) else {
            // Spend the same hashing time as for a known client.
            if let Some(secret) = presented {
                let _ = digest(&SHA256, secret.expose().as_bytes());
            }
            return Err(ClientError::UnknownClient(id.to_owned()));
        };
        match (&client.secret_digest, presented) {
            (Some(expected), Some(secret)) => {
                let actual = digest(&SHA256, secret.expose().as_bytes());
                if ct_eq(actual.as_ref(), expected) {
                    Ok(client)
                } else {
                    Err(ClientError::InvalidSecret(id.to_owned()))
                }
            }
            (Some(_), None) => Err(ClientError::MissingSecret(id.to_owned())),
            (None, Some(_)) => Err(ClientError::UnexpectedSecret(id.to_owned())),
            (None, None) => Ok(client),
        }
    }
}

/// One OAuth client. `Debug` shows whether it has a secret, not its hash.
#[derive(Clone)]
pub struct Client {
    id: String,
    kind: ClientKind,
    secret_digest: Option<[u8; 32]>,
    redirect_uris: Vec<String>,
    native: bool,
    token_exchange: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    device_grant: bool,
}

impl Client {
    fn from_config(config: &ClientConfig) -> Self {
        Self {
            id: config.id.clone(),
            kind: config.kind,
            secret_digest: config
                .secret_hash
                .as_deref()
                .and_then(config::parse_secret_hash),
            redirect_uris: config.redirect_uris.iter().map(|u| u.to_string()).collect(),
            native: config.native,
            token_exchange: config.token_exchange.clone(),
            post_logout_redirect_uris: config
                .post_logout_redirect_uris
                .iter()
                .map(|u| u.to_string())
                .collect(),
            device_grant: config.device_grant,
        }
    }

    /// `tetherctl`: public, native, loopback redirects, may exchange for every cluster and
    /// use the device grant (`tetherctl login --no-browser`).
    fn tetherctl() -> Self {
        Self {
            id: TETHERCTL_CLIENT_ID.to_owned(),
            kind: ClientKind::Public,
            secret_digest: None,
            redirect_uris: vec![
                format!("http://127.0.0.1{TETHERCTL_REDIRECT_PATH}"),
                format!("http://[::1]{TETHERCTL_REDIRECT_PATH}"),
            ],
            native: true,
            token_exchange: vec!["*".to_owned()],
            post_logout_redirect_uris: Vec::new(),
            device_grant: true,
        }
    }

    /// The `client_id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Confidential or public.
    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    /// True for a public client (no secret; PKCE required).
    pub fn is_public(&self) -> bool {
        self.kind == ClientKind::Public
    }

    /// True for a native app (RFC 8252 loopback redirects on any port).
    pub fn is_native(&self) -> bool {
        self.native
    }

    /// The registered redirect URIs.
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// The cluster-name globs this client may exchange for.
    pub fn token_exchange(&self) -> &[String] {
        &self.token_exchange
    }

    /// True if `uri` may receive an authorization response: an exact string match with a
    /// registered URI or, for a native client, `http://127.0.0.1:<any port><path>` or
    /// `http://[::1]:<any port><path>` where a loopback-IP URI with that path (and query) is
    /// registered (RFC 8252 §7.3). `localhost` never gets port variance.
    pub fn redirect_allowed(&self, uri: &str) -> bool {
        if self.redirect_uris.iter().any(|r| r == uri) {
            return true;
        }
        if !self.native {
            return false;
        }
        let Some(presented) = loopback_ip_uri(uri) else {
            return false;
        };
        self.redirect_uris.iter().any(|registered| {
            loopback_ip_uri(registered).is_some_and(|registered| {
                registered.path() == presented.path() && registered.query() == presented.query()
            })
        })
    }

    /// True if `uri` is a registered post-logout redirect URI (exact string).
    pub fn post_logout_redirect_allowed(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// True if the client may use the device authorization grant (RFC 8628).
    pub fn may_use_device_grant(&self) -> bool {
        self.device_grant
    }

    /// True if one of the client's `token_exchange` globs matches `cluster`.
    pub fn may_exchange_for(&self, cluster: &ClusterName) -> bool {
        self.token_exchange
            .iter()
            .any(|glob| glob_matches(glob, cluster.as_str()))
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("has_secret", &self.secret_digest.is_some())
            .field("redirect_uris", &self.redirect_uris)
            .field("native", &self.native)
            .field("token_exchange", &self.token_exchange)
            .field("device_grant", &self.device_grant)
            .finish_non_exhaustive()
    }
}

/// `uri` parsed, if it is `http://127.0.0.1[:port]/...` or `http://[::1][:port]/...` in
/// canonical form (so `http://127.0.0.1.evil.com/`, `http://0x7f.1/`, credentials and
/// fragments are all refused).
fn loopback_ip_uri(uri: &str) -> Option<Url> {
    let url = Url::parse(uri).ok()?;
    let loopback = match url.host()? {
        Host::Ipv4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        Host::Ipv6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
        Host::Domain(_) => false,
    };
    let clean = url.scheme() == "http"
        && loopback
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && url.as_str() == uri;
    clean.then_some(url)
}

/// A glob over cluster names: lowercase letters, digits, `-`, `*` (any run) and `?` (one).
pub(crate) fn glob_is_valid(glob: &str) -> bool {
    !glob.is_empty()
        && glob.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'*' | b'?')
        })
}

/// Matches `name` against `glob` (`*` any run, `?` one character), iteratively.
pub(crate) fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n) = (glob.as_bytes(), name.as_bytes());
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match g.get(gi) {
            Some(b'*') => {
                star = Some((gi, ni));
                gi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                gi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    gi = sg + 1;
                    ni = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|&c| c == b'*')
}
