//! The proxy's TLS: its server certificate, from `--proxy-cert`/`--proxy-key` or generated
//! (a proxy CA and a server certificate signed by it, kept in the state directory and reused
//! on restart), and the rustls server config (ALPN `h2`, `http/1.1`).
//!
//! Also the setup error shared by the proxy's listener and upstream configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::identity::write_atomic;

/// File names in the state directory.
pub mod files {
    /// The generated proxy CA certificate (PEM), sent to the hub in heartbeats.
    pub const CA_CRT: &str = "proxy-ca.crt";
    /// The generated proxy CA key (PKCS#8 PEM).
    pub const CA_KEY: &str = "proxy-ca.key";
    /// The generated server certificate (PEM).
    pub const SERVER_CRT: &str = "proxy.crt";
    /// The generated server key (PKCS#8 PEM).
    pub const SERVER_KEY: &str = "proxy.key";
    /// The names the generated server certificate was made for, one per line.
    pub const SERVER_HOSTS: &str = "proxy.hosts";
}

/// A generated server certificate is replaced when less than this remains (seconds).
const RENEW_BEFORE: i64 = 30 * 24 * 3600;
/// Validity of a generated server certificate (days).
const SERVER_DAYS: i64 = 365;
/// Validity of the generated CA (days).
const CA_DAYS: i64 = 10 * 365;

/// Why the proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A PEM object could not be used.
    #[error("invalid {what}: {detail}")]
    Pem {
        /// Which object.
        what: String,
        /// Why.
        detail: String,
    },
    /// Generating a key or certificate failed.
    #[error("generating the proxy certificate: {0}")]
    Generate(#[source] rcgen::Error),
    /// rustls refused the certificate, key or protocol versions.
    #[error("proxy TLS configuration: {0}")]
    Rustls(#[source] rustls::Error),
    /// A setting is missing or wrong; the message names the flag.
    #[error("{0}")]
    Config(String),
    /// The Kubernetes client for access reviews could not be built.
    #[error("kubernetes client for the proxy: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

impl SetupError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl From<crate::Error> for SetupError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Io { path, source } => Self::Io { path, source },
            other => Self::Config(other.to_string()),
        }
    }
}

/// The proxy's serving certificate.
#[derive(Clone)]
pub struct ServerCert {
    /// Certificate chain (PEM).
    pub cert_pem: String,
    /// Private key (PEM).
    pub key_pem: String,
    /// The CA clients should trust (PEM): the generated proxy CA, or the given certificate
    /// file's last certificate when `--proxy-cert` is used.
    pub ca_pem: String,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl ServerCert {
    /// Reads `--proxy-cert` / `--proxy-key`. The CA advertised to the hub is the last
    /// certificate of the chain (the issuer, when the file holds the chain).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, SetupError> {
        let cert_pem = std::fs::read_to_string(cert).map_err(|e| SetupError::io(cert, e))?;
        let key_pem = std::fs::read_to_string(key).map_err(|e| SetupError::io(key, e))?;
        let blocks = pem_blocks(&cert_pem, "CERTIFICATE");
        let ca_pem = blocks.last().cloned().ok_or_else(|| SetupError::Pem {
            what: format!("--proxy-cert {}", cert.display()),
            detail: "no CERTIFICATE block".to_owned(),
        })?;
        Ok(Self {
            cert_pem,
            key_pem,
            ca_pem,
        })
    }

    /// The generated certificate in `dir` for `hosts` (DNS names or IP addresses): the CA
    /// is created once and reused; the server certificate is reused unless the names
    /// changed or it is close to expiry.
    pub fn generated(dir: &Path, hosts: &[String]) -> Result<Self, SetupError> {
        std::fs::create_dir_all(dir).map_err(|e| SetupError::io(dir, e))?;
        let read = |name: &str| -> Result<Option<String>, SetupError> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(SetupError::io(&path, e)),
            }
        };
        let write = |name: &str, text: &str, private: bool| -> Result<(), SetupError> {
            Ok(write_atomic(&dir.join(name), text.as_bytes(), private)?)
        };

        let (ca_pem, ca_key) = match (read(files::CA_CRT)?, read(files::CA_KEY)?) {
            (Some(cert), Some(key)) => {
                let pair = KeyPair::from_pem(&key).map_err(|e| SetupError::Pem {
                    what: dir.join(files::CA_KEY).display().to_string(),
                    detail: e.to_string(),
                })?;
                (cert, pair)
            }
            _ => {
                let pair = KeyPair::generate().map_err(SetupError::Generate)?;
                let cert = ca_params()
                    .self_signed(&pair)
                    .map_err(SetupError::Generate)?;
                write(files::CA_KEY, &pair.serialize_pem(), true)?;
                write(files::CA_CRT, &cert.pem(), false)?;
                // A new CA invalidates the old server certificate.
                let _ = std::fs::remove_file(dir.join(files::SERVER_CRT));
                tracing::info!(dir = %dir.display(), "generated the proxy CA");
                (cert.pem(), pair)
            }
        };
        let wanted = hosts.join("\n");
        if let (Some(cert_pem), Some(key_pem), Some(had)) = (
            read(files::SERVER_CRT)?,
            read(files::SERVER_KEY)?,
            read(files::SERVER_HOSTS)?,
        ) {
            let fresh = crate::tls::validity(&cert_pem)
                .map(|(_, not_after)| not_after - now_secs() > RENEW_BEFORE)
                .unwrap_or(false);
            if fresh && had == wanted {
                return Ok(Self {
                    cert_pem,
                    key_pem,
                    ca_pem,
                });
            }
        }
        let issuer = Issuer::new(ca_params(), ca_key);
        let key = KeyPair::generate().map_err(SetupError::Generate)?;
        let mut params = CertificateParams::new(hosts.to_vec()).map_err(SetupError::Generate)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "tether-agent proxy");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = rcgen::date_time_ymd(1970, 1, 1)
            + std::time::Duration::from_secs(u64::try_from(now_secs() - 3600).unwrap_or(0));
        params.not_before = now;
        params.not_after = now + std::time::Duration::from_secs((SERVER_DAYS * 86400) as u64);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(SetupError::Generate)?;
        write(files::SERVER_KEY, &key.serialize_pem(), true)?;
        write(files::SERVER_CRT, &cert.pem(), false)?;
        write(files::SERVER_HOSTS, &wanted, false)?;
        tracing::info!(?hosts, "generated the proxy server certificate");
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem,
        })
    }

    /// The rustls server config: this certificate, ALPN `h2` then `http/1.1`.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, SetupError> {
        let chain = crate::tls::certs_from_pem(&self.cert_pem, "proxy certificate")?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| {
            SetupError::Pem {
                what: "proxy key".to_owned(),
                detail: e.to_string(),
            }
        })?;
        let mut config = ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(SetupError::Rustls)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(SetupError::Rustls)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The names a generated certificate carries: loopback, the Service's DNS names in
/// `namespace`, then `extra` (`--proxy-host`), without duplicates.
pub fn default_hosts(namespace: &str, extra: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    let base = [
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        format!("tether-agent.{namespace}.svc"),
        format!("tether-agent.{namespace}.svc.cluster.local"),
    ];
    for h in extra.iter().chain(base.iter()) {
        if !h.is_empty() && !hosts.contains(h) {
            hosts.push(h.clone());
        }
    }
    hosts
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "tether-agent proxy CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let start = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::Duration::from_secs(u64::try_from(now_secs() - 3600).unwrap_or(0));
    params.not_before = start;
    params.not_after = start + std::time::Duration::from_secs((CA_DAYS * 86400) as u64);
    params
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Each `-----BEGIN {label}-----` block of `pem`, re-encoded as its own PEM string.
fn pem_blocks(pem: &str, label: &str) -> Vec<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(&begin) {
        let Some(stop) = rest[start..].find(&end) else {
            break;
        };
        let stop = start + stop + end.len();
        out.push(format!("{}\n", &rest[start..stop]));
        rest = &rest[stop..];
    }
    out
}

#[cfg(test)]
mod tests;
