//! [`ClientConfig`]: one entry of the `clients:` configuration section, and its checks.

use std::collections::BTreeSet;

use serde::Deserialize;
use url::Url;

use super::{SECRET_HASH_PREFIX, TETHERCTL_CLIENT_ID, glob_is_valid};
use crate::registry::CLUSTER_AUDIENCE_PREFIX;

/// Prefix reserved for hub audiences: no client id may start with it.
pub const RESERVED_ID_PREFIX: &str = "tether:";

/// Whether a client can keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// A server-side client that authenticates with a secret (ArgoCD server).
    Confidential,
    /// A client that cannot keep a secret (CLIs, SPAs); PKCE only.
    Public,
}

/// One OAuth client of the hub (`clients:` list entry).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The `client_id`.
    pub id: String,
    /// `confidential` or `public`.
    pub kind: ClientKind,
    /// `sha256:<64 hex>` of the client secret (`tether-hub hash-secret`); the secret itself
    /// never appears in configuration. Required for confidential clients, refused for public.
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// Allowed redirect URIs, compared as exact strings.
    #[serde(default)]
    pub redirect_uris: Vec<Url>,
    /// A native app (RFC 8252): a registered `http://127.0.0.1/...` or `http://[::1]/...`
    /// redirect URI also matches on any port (§7.3).
    #[serde(default)]
    pub native: bool,
    /// Cluster-name globs (`*`, `?`) this client may exchange its session for; empty = none.
    #[serde(default)]
    pub token_exchange: Vec<String>,
    /// Where the client may send the user after logout (exact strings).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<Url>,
    /// May use the device authorization grant (RFC 8628: `/device_authorization` and the
    /// `urn:ietf:params:oauth:grant-type:device_code` grant). Off by default; the built-in
    /// `tetherctl` always may.
    #[serde(default)]
    pub device_grant: bool,
}

/// Checks the `clients:` list. Returns the offending field (`clients[1].secret_hash`) and why.
pub fn validate_clients(clients: &[ClientConfig]) -> Result<(), (String, String)> {
    let mut seen = BTreeSet::new();
    for (i, client) in clients.iter().enumerate() {
        let field = |name: &str| format!("clients[{i}].{name}");
        let err = |name: &str, reason: String| Err((field(name), reason));
        let id = client.id.as_str();
        if id.is_empty() {
            return err("id", "must not be empty".to_owned());
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return err("id", format!("{id:?} must not contain whitespace"));
        }
        if id.starts_with(RESERVED_ID_PREFIX) {
            return err(
                "id",
                format!(
                    "{id:?}: ids starting with {RESERVED_ID_PREFIX:?} are reserved (cluster \
                     audiences are {CLUSTER_AUDIENCE_PREFIX}<name>)"
                ),
            );
        }
        if id == TETHERCTL_CLIENT_ID {
            return err(
                "id",
                format!("{id:?} is the built-in tetherctl client and cannot be redefined"),
            );
        }
        if !seen.insert(id) {
            return err("id", format!("{id:?} is defined twice"));
        }
        match (client.kind, &client.secret_hash) {
            (ClientKind::Confidential, None) => {
                return err(
                    "secret_hash",
                    "required for a confidential client (generate with `tether-hub hash-secret`)"
                        .to_owned(),
                );
            }
            (ClientKind::Confidential, Some(hash)) => {
                if parse_secret_hash(hash).is_none() {
                    return err(
                        "secret_hash",
                        format!(
                            "must be {SECRET_HASH_PREFIX}<64 hex digits>, not the secret itself"
                        ),
                    );
                }
            }
            (ClientKind::Public, Some(_)) => {
                return err(
                    "secret_hash",
                    "a public client has no secret (use kind: confidential)".to_owned(),
                );
            }
            (ClientKind::Public, None) => {}
        }
        if client.redirect_uris.is_empty() {
            return err("redirect_uris", "at least one is required".to_owned());
        }
        for (j, uri) in client.redirect_uris.iter().enumerate() {
            if let Err(reason) = check_redirect_uri(uri) {
                return err(&format!("redirect_uris[{j}]"), reason);
            }
        }
        for (j, uri) in client.post_logout_redirect_uris.iter().enumerate() {
            if let Err(reason) = check_redirect_uri(uri) {
                return err(&format!("post_logout_redirect_uris[{j}]"), reason);
            }
        }
        for (j, glob) in client.token_exchange.iter().enumerate() {
            if !glob_is_valid(glob) {
                return err(
                    &format!("token_exchange[{j}]"),
                    format!(
                        "{glob:?} is not a cluster-name glob (lowercase letters, digits, '-', \
                         '*' and '?')"
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Absolute (guaranteed by [`Url`]), no fragment (RFC 6749 §3.1.2), no credentials, and a
/// host for http(s).
fn check_redirect_uri(uri: &Url) -> Result<(), String> {
    if uri.fragment().is_some() {
        return Err(format!("{uri} must not have a fragment (RFC 6749 §3.1.2)"));
    }
    if !uri.username().is_empty() || uri.password().is_some() {
        return Err(format!("{uri} must not carry credentials"));
    }
    if matches!(uri.scheme(), "http" | "https") && uri.host_str().is_none_or(str::is_empty) {
        return Err(format!("{uri} must have a host"));
    }
    if uri.cannot_be_a_base() {
        return Err(format!("{uri} must be a hierarchical URL"));
    }
    Ok(())
}

/// The 32-byte digest of a `sha256:<hex>` secret hash (either case of hex).
pub(crate) fn parse_secret_hash(hash: &str) -> Option<[u8; 32]> {
    let hex = hash.strip_prefix(SECRET_HASH_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
