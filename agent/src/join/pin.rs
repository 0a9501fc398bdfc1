//! The `--ca-hash` pin: SHA-256 of a CA certificate's SubjectPublicKeyInfo (DER), and a
//! rustls [`ServerCertVerifier`] that trusts the hub only through the pinned CA.
//!
//! The verifier looks for a certificate in the presented chain whose public key matches the
//! pin, then verifies the chain (signatures, validity, server name) with that certificate as
//! the ONLY root. Nothing is sent to the hub before this check passes: it runs inside the
//! TLS handshake.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Prefix of a pin's text form.
pub const PIN_PREFIX: &str = "sha256:";

/// A SHA-256 SPKI pin.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin([u8; 32]);

impl Pin {
    /// The pin of a certificate (DER).
    pub fn of_cert(cert_der: &[u8]) -> Result<Self> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(cert_der).map_err(|e| Error::InvalidPem {
                what: "certificate",
                detail: e.to_string(),
            })?;
        Ok(Self(
            Sha256::digest(cert.tbs_certificate.subject_pki.raw).into(),
        ))
    }
}

impl FromStr for Pin {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let hex = s.strip_prefix(PIN_PREFIX).ok_or(Error::InvalidPin)?;
        if hex.len() != 64 {
            return Err(Error::InvalidPin);
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or(Error::InvalidPin)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| Error::InvalidPin)?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PIN_PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What the last handshake through a [`PinnedVerifier`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinOutcome {
    /// No handshake has reached certificate verification yet.
    NotChecked,
    /// No presented certificate has the pinned key.
    Mismatch,
    /// This certificate (DER) has the pinned key and the chain verified to it.
    Matched(CertificateDer<'static>),
    /// A certificate has the pinned key but the chain does not verify to it.
    ChainInvalid(String),
}

/// Accepts a server only if its chain contains the pinned CA and verifies to it.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: Pin,
    provider: Arc<CryptoProvider>,
    outcome: Mutex<PinOutcome>,
}

impl PinnedVerifier {
    /// A verifier for `pin`.
    pub fn new(pin: Pin, provider: Arc<CryptoProvider>) -> Self {
        Self {
            pin,
            provider,
            outcome: Mutex::new(PinOutcome::NotChecked),
        }
    }

    /// What the last handshake found.
    pub fn outcome(&self) -> PinOutcome {
        self.outcome
            .lock()
            .map(|o| o.clone())
            .unwrap_or(PinOutcome::NotChecked)
    }

    fn record(&self, outcome: PinOutcome) {
        if let Ok(mut o) = self.outcome.lock() {
            *o = outcome;
        }
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pinned = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| Pin::of_cert(cert).is_ok_and(|p| p == self.pin));
        let Some(ca) = pinned else {
            self.record(PinOutcome::Mismatch);
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        };
        let ca = ca.clone().into_owned();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| c.as_ref() != ca.as_ref())
            .cloned()
            .collect();
        match inner.verify_server_cert(end_entity, &others, server_name, ocsp_response, now) {
            Ok(ok) => {
                self.record(PinOutcome::Matched(ca));
                Ok(ok)
            }
            Err(e) => {
                self.record(PinOutcome::ChainInvalid(e.to_string()));
                Err(e)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
