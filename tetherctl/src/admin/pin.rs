//! Trust by pin (`--ca-hash sha256:<hex>`), the same rule as the agent's join: the hub is
//! trusted when a certificate in the chain it presents has a SubjectPublicKeyInfo whose
//! SHA-256 is the pin. That certificate then becomes the only trust anchor and the chain is
//! verified as usual (signatures, validity, the hub's name).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// The prefix of a pin as written: `sha256:`.
pub const PIN_PREFIX: &str = "sha256:";

/// A `sha256:<64 hex>` pin of a certificate's SubjectPublicKeyInfo (DER).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CaPin([u8; 32]);

impl CaPin {
    /// The pin of a SubjectPublicKeyInfo (DER).
    pub fn of_spki(spki_der: &[u8]) -> Self {
        Self(Sha256::digest(spki_der).into())
    }

    /// Whether `cert_der`'s SubjectPublicKeyInfo has this pin. Unparsable certificates never
    /// match.
    pub fn matches(&self, cert_der: &[u8]) -> bool {
        spki_of_cert(cert_der).is_some_and(|spki| Self::of_spki(spki) == *self)
    }
}

impl FromStr for CaPin {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix(PIN_PREFIX)
            .ok_or("expected sha256:<64 hex digits>")?;
        if hex.len() != 64 {
            return Err("expected sha256:<64 hex digits>");
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or("not a hex digit")?;
            let lo = hex_value(pair[1]).ok_or("not a hex digit")?;
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

/// A rustls verifier that trusts the hub by [`CaPin`].
#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: CaPin,
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    /// A verifier for `pin`, checking signatures with `provider` (ring).
    pub fn new(pin: CaPin, provider: Arc<CryptoProvider>) -> Self {
        Self { pin, provider }
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let anchor = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| self.pin.matches(cert))
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "no certificate presented by the hub matches --ca-hash {}",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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
