//! Admin commands over the hub's gRPC `Admin` service.
//!
//! - [`AdminArgs`]: the connection flags every admin command shares, resolved once (flags
//!   first, then the environment) into an [`AdminConfig`].
//! - [`connect`]: TLS (CA file or pin), the bearer token, timeouts, and status mapping.
//! - [`pin`]: trust by `sha256:` pin of a chain certificate's SubjectPublicKeyInfo.
//! - [`cluster`]: `tetherctl cluster add|list|remove`.
//! - [`argocd`]: `tetherctl argocd secret`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tether_common::secret::Secret;
use tonic::transport::Uri;

use crate::error::{Error, Result};
use tether_common::pin::CaPin;

pub mod argocd;
pub mod cluster;
pub mod connect;

/// Environment variable: the hub's gRPC URL (`--hub`).
pub const ENV_HUB_URL: &str = "TETHER_HUB_GRPC_URL";
/// Environment variable: PEM file of the CA to trust for the hub (`--ca-file`).
pub const ENV_HUB_CA: &str = "TETHER_HUB_GRPC_CA";
/// Environment variable: pin to trust the hub by (`--ca-hash`).
pub const ENV_HUB_CA_HASH: &str = "TETHER_HUB_CA_HASH";
/// Environment variable: the admin token itself (there is deliberately no `--token` flag:
/// it would land in shell history and `ps`).
pub const ENV_ADMIN_TOKEN: &str = "TETHER_ADMIN_TOKEN";

/// Limit on connecting to the hub and on each call.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A source of environment variables, so tests resolve config without touching the process
/// environment.
pub trait Env {
    /// The variable's value; unset and empty are both `None`.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.is_empty())
    }
}

/// Connection flags shared by the admin commands.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AdminArgs {
    /// The hub's gRPC URL, e.g. https://hub.example.com:8443 [env: TETHER_HUB_GRPC_URL]
    #[arg(
        long,
        value_name = "URL",
        global = true,
        help_heading = "Admin commands: hub connection"
    )]
    pub hub: Option<String>,

    /// PEM file with the CA certificate(s) to trust for the hub [env: TETHER_HUB_GRPC_CA]
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        help_heading = "Admin commands: hub connection"
    )]
    pub ca_file: Option<PathBuf>,

    /// Trust the hub by pin: SHA-256 of a certificate's SubjectPublicKeyInfo in the hub's
    /// chain [env: TETHER_HUB_CA_HASH]
    #[arg(
        long,
        value_name = "sha256:PIN",
        global = true,
        help_heading = "Admin commands: hub connection"
    )]
    pub ca_hash: Option<String>,

    /// File holding the admin token (or set TETHER_ADMIN_TOKEN to the token itself)
    #[arg(
        long,
        value_name = "FILE",
        global = true,
        help_heading = "Admin commands: hub connection"
    )]
    pub token_file: Option<PathBuf>,
}

/// Resolved, validated admin connection settings.
#[derive(Debug)]
pub struct AdminConfig {
    /// The hub's gRPC URL as given (for messages).
    pub url: String,
    /// The parsed URL.
    pub uri: Uri,
    /// How the hub's certificate is trusted.
    pub trust: Trust,
    /// The admin token.
    pub token: Secret,
    /// Limit on connecting and on each call.
    pub timeout: Duration,
}

/// How the hub's TLS certificate is trusted.
#[derive(Clone, Debug)]
pub enum Trust {
    /// CA certificates (PEM) from `--ca-file`, already checked to contain one.
    CaPem(Vec<u8>),
    /// A `--ca-hash` pin.
    Pin(CaPin),
}

impl AdminConfig {
    /// Resolves `args`, falling back to `env` for each unset flag. A flag beats the
    /// environment; `--ca-file` and `--ca-hash` exclude each other.
    pub fn resolve(args: &AdminArgs, env: &dyn Env) -> Result<Self> {
        let url = args
            .hub
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| env.var(ENV_HUB_URL))
            .ok_or(Error::Missing(
                "the hub's gRPC URL is needed: pass --hub URL or set TETHER_HUB_GRPC_URL",
            ))?;
        let uri = parse_hub_url(&url)?;
        let trust = resolve_trust(args, env)?;
        let token = resolve_token(args, env)?;
        Ok(Self {
            url,
            uri,
            trust,
            token,
            timeout: TIMEOUT,
        })
    }
}

/// Checks the hub URL: `https://host[:port]`, nothing after the authority.
pub fn parse_hub_url(url: &str) -> Result<Uri> {
    let invalid = |reason: &str| Error::invalid("hub URL", url, reason);
    let uri = url.parse::<Uri>().map_err(|e| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            return Err(invalid(
                "plain http would send the admin token unencrypted: use https://",
            ));
        }
        _ => return Err(invalid("expected https://host[:port]")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(invalid("expected no path: https://host[:port]"));
    }
    Ok(uri)
}

fn resolve_trust(args: &AdminArgs, env: &dyn Env) -> Result<Trust> {
    const BOTH: &str = "give either --ca-file or --ca-hash, not both";
    let (file, hash) = match (&args.ca_file, &args.ca_hash) {
        (Some(_), Some(_)) => return Err(Error::Conflict(BOTH)),
        (Some(file), None) => (Some(file.clone()), None),
        (None, Some(hash)) => (None, Some(hash.clone())),
        (None, None) => match (env.var(ENV_HUB_CA), env.var(ENV_HUB_CA_HASH)) {
            (Some(_), Some(_)) => {
                return Err(Error::Conflict(
                    "both TETHER_HUB_GRPC_CA and TETHER_HUB_CA_HASH are set: unset one",
                ));
            }
            (file, hash) => (file.map(PathBuf::from), hash),
        },
    };
    match (file, hash) {
        (Some(file), _) => read_ca_file(&file).map(Trust::CaPem),
        (None, Some(hash)) => hash
            .parse::<CaPin>()
            .map(Trust::Pin)
            .map_err(|reason| Error::invalid("--ca-hash", hash, reason.to_string())),
        (None, None) => Err(Error::Missing(
            "the hub's CA is needed: pass --ca-file FILE (or set TETHER_HUB_GRPC_CA) or --ca-hash \
             sha256:PIN (or set TETHER_HUB_CA_HASH)",
        )),
    }
}

/// Reads a PEM file and checks that it holds at least one certificate (tonic would
/// otherwise skip unparsable ones silently and fail later with a vaguer error).
pub fn read_ca_file(path: &Path) -> Result<Vec<u8>> {
    const WHAT: &str = "--ca-file";
    let pem = std::fs::read(path).map_err(|source| Error::ReadFile {
        what: WHAT,
        path: path.to_owned(),
        source,
    })?;
    let bad = |reason: String| Error::BadFile {
        what: WHAT,
        path: path.to_owned(),
        reason,
    };
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| bad(format!("bad PEM: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(bad("no CERTIFICATE block in it".to_owned()));
    }
    Ok(pem)
}

fn resolve_token(args: &AdminArgs, env: &dyn Env) -> Result<Secret> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
                what: "--token-file",
                path: path.clone(),
                source,
            })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(Error::BadFile {
                    what: "--token-file",
                    path: path.clone(),
                    reason: "it is empty".to_owned(),
                });
            }
            token.to_owned()
        }
        None => env
            .var(ENV_ADMIN_TOKEN)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or(Error::Missing(
                "an admin token is needed: pass --token-file FILE or set TETHER_ADMIN_TOKEN \
                 (mint one with `tether-hub admin-token`)",
            ))?,
    };
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::BadToken(
            "it contains spaces or non-ASCII characters",
        ));
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests;
