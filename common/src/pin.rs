//! Trusting a hub by pin (`--ca-hash sha256:<hex>`), one rule for `tether-agent join` and
//! `tetherctl`: the hub is trusted when a certificate in the chain it presents has a
//! SubjectPublicKeyInfo whose SHA-256 is the pin. That certificate then becomes the ONLY
//! trust anchor and the chain is verified as usual (signatures, validity, the hub's name).
//! The check runs inside the TLS handshake, so nothing is sent to a hub that fails it.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// The prefix of a pin as written: `sha256:`.
pub const PIN_PREFIX: &str = "sha256:";

/// A `sha256:<64 hex>` pin of a certificate's SubjectPublicKeyInfo (DER).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaPin([u8; 32]);

/// Text that is not `sha256:<64 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid CA pin: expected sha256:<64 hex digits>")]
pub struct InvalidPin;

impl CaPin {
    /// The pin of a SubjectPublicKeyInfo (DER).
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }

    /// The pin of a certificate (DER); `None` if it is not well-formed enough to find its key.
    pub fn of_cert(cert_der: &[u8]) -> Option<Self> {
        spki_of_cert(cert_der).map(Self::of_spki)
    }

    /// Whether `cert_der`'s SubjectPublicKeyInfo has this pin. Unparsable certificates never
    /// match.
    pub fn matches(&self, cert_der: &[u8]) -> bool {
        Self::of_cert(cert_der).is_some_and(|pin| pin == *self)
    }
}

impl FromStr for CaPin {
    type Err = InvalidPin;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix(PIN_PREFIX).ok_or(InvalidPin)?;
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return Err(InvalidPin);
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or(InvalidPin)?;
            let lo = hex_value(pair[1]).ok_or(InvalidPin)?;
            *byte = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PIN_PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaPin({self})")
    }
}

/// What the last handshake through a [`PinnedVerifier`] found (the agent reports it and
/// keeps the matched CA).
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

/// A rustls verifier that trusts the hub by [`CaPin`] only.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: CaPin,
    provider: Arc<CryptoProvider>,
    outcome: Mutex<PinOutcome>,
}

impl PinnedVerifier {
    /// A verifier for `pin`, checking signatures with `provider`.
    pub fn new(pin: CaPin, provider: Arc<CryptoProvider>) -> Self {
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
        let Some(anchor) = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| self.pin.matches(cert))
        else {
            self.record(PinOutcome::Mismatch);
            return Err(rustls::Error::General(format!(
                "no certificate presented by the hub matches --ca-hash {}",
                self.pin
            )));
        };
        let anchor = anchor.clone().into_owned();
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone())?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let others: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .filter(|c| c.as_ref() != anchor.as_ref())
            .cloned()
            .collect();
        match webpki.verify_server_cert(end_entity, &others, server_name, ocsp_response, now) {
            Ok(ok) => {
                self.record(PinOutcome::Matched(anchor));
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

/// The SubjectPublicKeyInfo (whole DER element) of an X.509 certificate, or `None` if the
/// certificate is not well-formed enough to find it.
///
/// A minimal DER walk (Certificate -> tbsCertificate -> 7th field, after an optional
/// `[0] version`), so the CLI needs no X.509 parser.
pub fn spki_of_cert(cert_der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;

    let (cert, _) = der_element(cert_der, SEQUENCE)?;
    let (tbs, _) = der_element(cert.content, SEQUENCE)?;
    let mut rest = tbs.content;
    if rest.first() == Some(&VERSION) {
        rest = der_element(rest, VERSION)?.1;
    }
    rest = der_element(rest, INTEGER)?.1; // serialNumber
    for _ in 0..4 {
        // signature, issuer, validity, subject
        rest = der_element(rest, SEQUENCE)?.1;
    }
    let (spki, _) = der_element(rest, SEQUENCE)?;
    Some(spki.whole)
}

/// One DER element: the whole encoding and its content.
struct Element<'a> {
    whole: &'a [u8],
    content: &'a [u8],
}

/// Reads one DER element with tag `tag` from the front of `input`; returns it and the rest.
fn der_element(input: &[u8], tag: u8) -> Option<(Element<'_>, &[u8])> {
    let (&first, after_tag) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len0, after_len0) = after_tag.split_first()?;
    let (len, body) = if len0 < 0x80 {
        (usize::from(len0), after_len0)
    } else {
        let n = usize::from(len0 & 0x7f);
        if n == 0 || n > 4 || after_len0.len() < n {
            return None;
        }
        let (len_bytes, body) = after_len0.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, body)
    };
    if body.len() < len {
        return None;
    }
    let header = input.len() - body.len();
    let (whole, rest) = input.split_at(header + len);
    Some((
        Element {
            whole,
            content: &whole[header..],
        },
        rest,
    ))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
