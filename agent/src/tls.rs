//! TLS towards the hub: the parsed hub address, rustls client configs, and a tonic channel
//! whose connector does TLS itself (so the join can use the pinning verifier and the control
//! stream a client certificate, with one code path).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Error, Result};

/// How long to wait for TCP + TLS to the hub.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The hub's gRPC address, parsed once from `--hub` / `hub-url`.
#[derive(Debug, Clone)]
pub struct HubAddr {
    url: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
}

impl HubAddr {
    /// Parses `https://host[:port][/]`. The port defaults to 443.
    pub fn parse(url: &str) -> Result<Self> {
        let bad = || Error::InvalidHubUrl(url.to_owned());
        let parsed = url::Url::parse(url).map_err(|_| bad())?;
        if parsed.scheme() != "https" {
            return Err(bad());
        }
        let host = parsed.host_str().ok_or_else(bad)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = parsed.port_or_known_default().ok_or_else(bad)?;
        let server_name = ServerName::try_from(host.clone()).map_err(|_| bad())?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            host,
            port,
            server_name,
        })
    }

    /// The URL as given (without a trailing `/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The name the hub's certificate must carry.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// TCP connect then TLS handshake with `config`.
    pub async fn dial(&self, config: Arc<ClientConfig>) -> Result<TlsStream<TcpStream>> {
        let unreachable = |source| Error::HubUnreachable {
            url: self.url.clone(),
            source,
        };
        let connect = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
            tcp.set_nodelay(true)?;
            TlsConnector::from(config)
                .connect(self.server_name.clone(), tcp)
                .await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(unreachable(e)),
            Err(_) => Err(unreachable(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ))),
        }
    }

    /// A lazily connecting gRPC channel to the hub over TLS with `config` (ALPN h2 is added).
    ///
    /// The endpoint URI says `http://` only so that tonic does not try TLS a second time:
    /// the connector below does the TLS handshake with our own config.
    pub fn channel(&self, config: ClientConfig) -> Result<Channel> {
        let mut config = config;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let config = Arc::new(config);
        let host = match self.server_name {
            ServerName::IpAddress(rustls_pki_types::IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        let endpoint = Endpoint::from_shared(format!("http://{host}:{}", self.port))
            .map_err(Error::Transport)?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        let addr = self.clone();
        let connector = tower::service_fn(move |_uri: http::Uri| {
            let addr = addr.clone();
            let config = config.clone();
            async move {
                addr.dial(config)
                    .await
                    .map(TokioIo::new)
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            }
        });
        Ok(endpoint.connect_with_connector_lazy(connector))
    }
}

/// A client config that checks the server with `verifier` and sends no client certificate.
pub fn config_with_verifier(verifier: Arc<dyn ServerCertVerifier>) -> Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// A client config that trusts only `ca_pem` and presents `cert_pem` / `key_pem`.
pub fn mtls_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs_from_pem(ca_pem, "hub CA")? {
        roots.add(ca)?;
    }
    let chain = certs_from_pem(cert_pem, "agent certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| Error::InvalidPem {
        what: "agent key",
        detail: e.to_string(),
    })?;
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?)
}

/// The ring provider (the process default may not be installed, e.g. in unit tests).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// All certificates in a PEM bundle; at least one.
pub fn certs_from_pem(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidPem {
            what,
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::InvalidPem {
            what,
            detail: "no CERTIFICATE block".to_owned(),
        });
    }
    Ok(certs)
}

/// `(not_before, not_after)` of the first certificate in `pem`, in unix seconds.
pub fn validity(pem: &str) -> Result<(i64, i64)> {
    let der = certs_from_pem(pem, "certificate")?.remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| Error::InvalidPem {
        what: "certificate",
        detail: e.to_string(),
    })?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

#[cfg(test)]
mod tests;
