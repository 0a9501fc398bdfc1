//! The HTTPS server's certificate: PEM files, or a self-signed CA and server certificate
//! generated once (ECDSA P-256, rcgen) and reused from a directory.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Issuer, TlsConfig};

/// The CA certificate clients trust in self-signed mode.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA private key in self-signed mode.
pub const CA_KEY_FILE: &str = "ca.key";
/// The server certificate in self-signed mode.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// The server private key in self-signed mode.
pub const SERVER_KEY_FILE: &str = "server.key";

/// ALPN protocols the server offers, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or decoded.
    #[error("cannot read {}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{} contains no certificate", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// Neither PEM files nor self-signed mode are configured.
    #[error("tls: set cert_file and key_file, or self_signed with self_signed_dir")]
    NotConfigured,
    /// Generating the self-signed CA or certificate failed.
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(#[source] rcgen::Error),
    /// Writing a generated file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// rustls refused the certificate or key.
    #[error("unusable certificate or key: {0}")]
    Rustls(#[source] rustls::Error),
}

/// A certificate chain and its private key.
pub struct TlsMaterial {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The server's TLS setup, ready to serve.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The rustls configuration, ALPN `h2` and `http/1.1`.
    pub config: Arc<ServerConfig>,
    /// In self-signed mode, the CA certificate clients should trust.
    pub ca_cert_file: Option<PathBuf>,
}

impl ServerTls {
    /// Builds the server TLS from configuration; self-signed certificates name the
    /// issuer's host besides `localhost`, `127.0.0.1` and `::1`.
    pub fn from_config(config: &TlsConfig, issuer: &Issuer) -> Result<Self, TlsError> {
        match (&config.cert_file, &config.key_file, &config.self_signed_dir) {
            (Some(cert), Some(key), _) if !config.self_signed => Ok(Self {
                config: server_config(load_pem_files(cert, key)?)?,
                ca_cert_file: None,
            }),
            (None, None, Some(dir)) if config.self_signed => {
                let mut hosts = vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned(),
                ];
                if let Some(host) = issuer.url().host_str() {
                    let host = host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned();
                    if !hosts.contains(&host) {
                        hosts.push(host);
                    }
                }
                let pki = SelfSignedPki::ensure(dir, &hosts)?;
                Ok(Self {
                    config: server_config(pki.material)?,
                    ca_cert_file: Some(pki.ca_cert_file),
                })
            }
            _ => Err(TlsError::NotConfigured),
        }
    }
}

/// Loads a PEM certificate chain and private key.
pub fn load_pem_files(cert_file: &Path, key_file: &Path) -> Result<TlsMaterial, TlsError> {
    let pem_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Pem { path, source }
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(pem_err(cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(cert_file))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_file.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(pem_err(key_file))?;
    Ok(TlsMaterial { chain, key })
}

/// A rustls server configuration on the ring provider, HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(material: TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(material.chain, material.key)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = ALPN.iter().map(|proto| proto.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A self-signed CA and a server certificate it signed, kept in a directory.
#[derive(Debug)]
pub struct SelfSignedPki {
    /// `DIR/ca.crt`.
    pub ca_cert_file: PathBuf,
    /// The server certificate and key.
    pub material: TlsMaterial,
    /// Whether this call generated the files (false: they were reused).
    pub generated: bool,
}

impl SelfSignedPki {
    /// Reuses `ca.crt`, `ca.key`, `server.crt`, `server.key` in `dir` when all four exist;
    /// otherwise generates all four (a partial set cannot be completed: rcgen cannot
    /// reload a CA here), the keys with mode 0600.
    pub fn ensure(dir: &Path, hosts: &[String]) -> Result<Self, TlsError> {
        let files =
            [CA_CERT_FILE, CA_KEY_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE].map(|f| dir.join(f));
        let generated = !files.iter().all(|file| file.is_file());
        if generated {
            generate(dir, hosts)?;
        }
        let material = load_pem_files(&dir.join(SERVER_CERT_FILE), &dir.join(SERVER_KEY_FILE))?;
        Ok(Self {
            ca_cert_file: dir.join(CA_CERT_FILE),
            material,
            generated,
        })
    }
}

/// Generates the CA and the server certificate into `dir`.
fn generate(dir: &Path, hosts: &[String]) -> Result<(), TlsError> {
    let ca_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(TlsError::Generate)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(TlsError::Generate)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Tether hub development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(TlsError::Generate)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(TlsError::Generate)?;
    let mut server_params = CertificateParams::new(hosts.to_vec()).map_err(TlsError::Generate)?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "tether-hub");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.use_authority_key_identifier_extension = true;
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(TlsError::Generate)?;

    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    // Keys first, certificates last: a crash in between leaves an incomplete set,
    // which the next start regenerates.
    write_file(&dir.join(CA_KEY_FILE), &ca_key_pem, 0o600)?;
    write_file(
        &dir.join(SERVER_KEY_FILE),
        &server_key.serialize_pem(),
        0o600,
    )?;
    write_file(&dir.join(SERVER_CERT_FILE), &server_cert.pem(), 0o644)?;
    write_file(&dir.join(CA_CERT_FILE), &ca_cert.pem(), 0o644)?;
    Ok(())
}

/// Writes `contents` to `path` with `mode`, replacing any previous file.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let write = || -> std::io::Result<()> {
        // Remove first so the mode applies even when an older file had a looser one.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|source| TlsError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use rustls::client::danger::ServerCertVerifier;

    use super::*;

    fn hosts() -> Vec<String> {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    }

    #[test]
    fn self_signed_is_generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = SelfSignedPki::ensure(dir.path(), &hosts()).unwrap();
        assert!(first.generated);
        let ca = std::fs::read(dir.path().join(CA_CERT_FILE)).unwrap();
        let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(dir.path().join(SERVER_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let second = SelfSignedPki::ensure(dir.path(), &hosts()).unwrap();
        assert!(!second.generated);
        assert_eq!(std::fs::read(dir.path().join(CA_CERT_FILE)).unwrap(), ca);
        assert_eq!(second.material.chain, first.material.chain);
    }

    #[test]
    fn incomplete_set_is_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        SelfSignedPki::ensure(dir.path(), &hosts()).unwrap();
        std::fs::remove_file(dir.path().join(SERVER_KEY_FILE)).unwrap();
        assert!(
            SelfSignedPki::ensure(dir.path(), &hosts())
                .unwrap()
                .generated
        );
    }

    #[test]
    fn server_certificate_chains_to_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = SelfSignedPki::ensure(dir.path(), &hosts()).unwrap();
        let ca = CertificateDer::from_pem_file(&pki.ca_cert_file).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        verifier
            .verify_server_cert(
                &pki.material.chain[0],
                &[],
                &name,
                &[],
                rustls_pki_types::UnixTime::now(),
            )
            .unwrap();
    }

    #[test]
    fn server_config_offers_h2_and_http11() {
        let dir = tempfile::tempdir().unwrap();
        let pki = SelfSignedPki::ensure(dir.path(), &hosts()).unwrap();
        let config = server_config(pki.material).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn missing_pem_file_is_named() {
        let err = load_pem_files(
            Path::new("/nonexistent/tls.crt"),
            Path::new("/nonexistent/tls.key"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/tls.crt"), "{err}");
    }
}
