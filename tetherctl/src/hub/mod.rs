//! The hub's HTTP API as the user commands see it: which hub (`--hub`), how to trust it
//! (`--hub-ca`, `TETHER_HUB_CA_DATA`, or the system's roots), and the [`client`] that talks
//! OAuth to it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use url::{Host, Url};

use crate::admin::Env;
use crate::error::{Error, Result};

pub mod client;

pub use client::{
    CLIENT_ID, Discovery, HubClient, OfferedCluster, TokenResponse, grant_type, token_type,
};

/// Environment variable: the hub's CA bundle, PEM, base64-encoded (what ArgoCD cluster
/// Secrets pass). `--hub-ca` wins over it.
pub const ENV_HUB_CA_DATA: &str = "TETHER_HUB_CA_DATA";

/// `--hub` and `--hub-ca`, shared by `login`, `credential` and `logout`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct HubArgs {
    /// The hub's URL, e.g. https://tether.example.com
    // The id `hub` is shared with the admin commands' global `--hub`, so clap does not see
    // two `--hub` flags; either spelling position works.
    #[arg(long, value_name = "URL")]
    pub hub: Option<String>,

    /// PEM file with the CA certificate(s) of the hub's TLS certificate (default: the
    /// system's trusted CAs) [env: TETHER_HUB_CA_DATA, the PEM base64-encoded]
    #[arg(long, value_name = "FILE")]
    pub hub_ca: Option<PathBuf>,
}

/// The hub's base URL, normalized: scheme, lowercase host, port if not the default, path
/// without a trailing `/`. It names the session cache and goes into kubeconfig entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HubUrl(String);

impl HubUrl {
    /// Parses `https://host[:port][/path]`. Plain `http://` is accepted only for a loopback
    /// host (a hub on this machine), where nothing crosses a network.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::invalid("hub URL", text, reason);
        let url = Url::parse(text.trim()).map_err(|e| invalid(&e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(invalid(
                    "plain http would send tokens unencrypted: use https://",
                ));
            }
            _ => return Err(invalid("expected https://host[:port]")),
        }
        if url.host().is_none() {
            return Err(invalid("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials do not belong in the URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("expected no query or fragment"));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `path` (starting with `/`) under the hub.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The name of this hub's session cache directory: the first 16 hex digits of the
    /// SHA-256 of the URL.
    pub fn cache_key(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Display for HubUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a URL's host is this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks that an endpoint the hub advertised (discovery) may carry tokens: https, or http
/// to loopback.
pub fn check_endpoint(what: &'static str, url: &str) -> Result<Url> {
    let bad = |reason: String| Error::BadResponse {
        url: what.to_owned(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|e| bad(format!("{url:?}: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        _ => Err(bad(format!("{url:?} is not an https:// URL"))),
    }
}

/// Which CAs the hub's TLS certificate is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubCa {
    /// The system's trusted roots (a hub with a public certificate).
    System,
    /// A PEM file given with `--hub-ca` (absolute path, so the kubeconfig can name it).
    File {
        /// The file.
        path: PathBuf,
        /// Its content, checked to hold at least one certificate.
        pem: Vec<u8>,
    },
    /// PEM given base64-encoded in `TETHER_HUB_CA_DATA`.
    EnvData {
        /// The variable's value, as given.
        base64: String,
        /// The decoded PEM, checked to hold at least one certificate.
        pem: Vec<u8>,
    },
}

impl HubCa {
    /// The PEM to trust exclusively, if not the system roots.
    pub fn pem(&self) -> Option<&[u8]> {
        match self {
            Self::System => None,
            Self::File { pem, .. } | Self::EnvData { pem, .. } => Some(pem),
        }
    }
}

/// A resolved `--hub` and `--hub-ca`.
#[derive(Clone, Debug)]
pub struct HubTarget {
    /// The hub.
    pub url: HubUrl,
    /// How it is trusted.
    pub ca: HubCa,
}

impl HubTarget {
    /// Resolves the flags; `--hub-ca` beats `TETHER_HUB_CA_DATA`, which beats the system
    /// roots.
    pub fn resolve(args: &HubArgs, env: &dyn Env) -> Result<Self> {
        let text = args
            .hub
            .as_deref()
            .filter(|h| !h.is_empty())
            .ok_or(Error::Missing(
                "the hub's URL is needed: pass --hub https://tether.example.com",
            ))?;
        let url = HubUrl::parse(text)?;
        let ca = match (&args.hub_ca, env.var(ENV_HUB_CA_DATA)) {
            (Some(path), _) => {
                let pem = read_ca_file(path)?;
                let path = std::path::absolute(path).map_err(|source| Error::ReadFile {
                    what: "--hub-ca",
                    path: path.clone(),
                    source,
                })?;
                HubCa::File { path, pem }
            }
            (None, Some(data)) => {
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| {
                        Error::invalid(ENV_HUB_CA_DATA, "(not shown)", format!("not base64: {e}"))
                    })?;
                check_pem(&pem)
                    .map_err(|reason| Error::invalid(ENV_HUB_CA_DATA, "(not shown)", reason))?;
                HubCa::EnvData { base64: data, pem }
            }
            (None, None) => HubCa::System,
        };
        Ok(Self { url, ca })
    }
}

/// Reads a `--hub-ca` file and checks it holds at least one certificate.
fn read_ca_file(path: &Path) -> Result<Vec<u8>> {
    let pem = std::fs::read(path).map_err(|source| Error::ReadFile {
        what: "--hub-ca",
        path: path.to_owned(),
        source,
    })?;
    check_pem(&pem).map_err(|reason| Error::BadFile {
        what: "--hub-ca",
        path: path.to_owned(),
        reason,
    })?;
    Ok(pem)
}

/// At least one parsable `CERTIFICATE` block.
fn check_pem(pem: &[u8]) -> Result<(), String> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| format!("bad PEM: {e}"))?;
        count += 1;
    }
    if count == 0 {
        return Err("no CERTIFICATE block in it".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
