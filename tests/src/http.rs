//! HTTP clients for talking to the fixtures (rustls with ring, no redirects followed).

use std::sync::Once;
use std::time::Duration;

use crate::error::{Error, Result};

/// Installs ring as rustls' process-wide provider (once; ignores "already installed").
pub fn init_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A plain client: 10 s timeout, redirects not followed.
pub fn plain_client() -> Result<reqwest::Client> {
    init_crypto();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(Error::http("building an HTTP client"))
}

/// A client trusting only `ca_pem`, optionally presenting a client certificate
/// (`cert_pem` + PKCS#8 `key_pem`).
pub fn tls_client(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<reqwest::Client> {
    init_crypto();
    let ca =
        reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(Error::http("parsing the CA"))?;
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .tls_certs_only([ca]);
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}\n{key}");
        let id = reqwest::Identity::from_pem(pem.as_bytes())
            .map_err(Error::http("parsing the client identity"))?;
        b = b.identity(id);
    }
    b.build().map_err(Error::http("building a TLS client"))
}
