use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;
use crate::test_support::Pki;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn pin_parses_and_displays_lowercase() {
    let pin: CaPin = format!("sha256:{}", HEX.to_uppercase()).parse().unwrap();
    assert_eq!(pin.to_string(), format!("sha256:{HEX}"));
    assert_eq!(format!("{pin:?}"), format!("CaPin(sha256:{HEX})"));
}

#[test]
fn pin_rejects_bad_forms() {
    for bad in [
        HEX.to_owned(),                     // no prefix
        format!("sha1:{HEX}"),              // wrong algorithm
        format!("sha256:{}", &HEX[..62]),   // short
        format!("sha256:{HEX}00"),          // long
        format!("sha256:{}zz", &HEX[..62]), // not hex
        "sha256:".to_owned(),
    ] {
        assert!(bad.parse::<CaPin>().is_err(), "{bad} parsed");
    }
}

#[test]
fn spki_is_found_in_rcgen_certificates() {
    let pki = Pki::new();
    assert_eq!(spki_of_cert(&pki.ca_der), Some(pki.ca_spki.as_slice()));
    assert_eq!(spki_of_cert(&pki.leaf_der), Some(pki.leaf_spki.as_slice()));
}

#[test]
fn garbage_has_no_spki() {
    let pki = Pki::new();
    assert_eq!(spki_of_cert(b""), None);
    assert_eq!(spki_of_cert(b"\x30\x82\xff"), None);
    assert_eq!(spki_of_cert(&pki.ca_der[..pki.ca_der.len() / 2]), None);
    assert_eq!(spki_of_cert(&pki.ca_spki), None); // a SEQUENCE, but not a certificate
}

#[test]
fn pin_matches_only_its_key() {
    let pki = Pki::new();
    let ca_pin = CaPin::of_spki(&pki.ca_spki);
    assert!(ca_pin.matches(&pki.ca_der));
    assert!(!ca_pin.matches(&pki.leaf_der));
    assert!(!ca_pin.matches(b"not a certificate"));
    // The same rule as the hub's `ca_hash`: sha256 of the SPKI DER, lowercase hex.
    let hex: String = Sha256::digest(&pki.ca_spki)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(ca_pin.to_string(), format!("sha256:{hex}"));
}

fn verify(pki: &Pki, pin: CaPin, name: &'static str) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCaVerifier::new(pin, provider);
    let leaf = CertificateDer::from(pki.leaf_der.clone());
    let chain = [CertificateDer::from(pki.ca_der.clone())];
    verifier
        .verify_server_cert(
            &leaf,
            &chain,
            &ServerName::try_from(name).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

#[test]
fn verifier_accepts_a_chain_with_the_pinned_ca() {
    let pki = Pki::new();
    verify(&pki, CaPin::of_spki(&pki.ca_spki), "localhost").unwrap();
    verify(&pki, CaPin::of_spki(&pki.ca_spki), "127.0.0.1").unwrap();
}

#[test]
fn verifier_refuses_another_pin() {
    let pki = Pki::new();
    let err = verify(&pki, other_pin(), "localhost").unwrap_err();
    assert!(err.to_string().contains("matches --ca-hash"), "{err}");
}

#[test]
fn verifier_still_checks_the_name() {
    let pki = Pki::new();
    let err = verify(&pki, CaPin::of_spki(&pki.ca_spki), "evil.example").unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn verifier_refuses_a_chain_not_signed_by_the_pinned_cert() {
    // An attacker can put any CA in the chain it presents: the pin selects the anchor, but
    // the leaf must still be signed by it.
    let pki = Pki::new();
    let other = Pki::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCaVerifier::new(CaPin::of_spki(&other.ca_spki), provider);
    // Present pki's leaf with the other CA: the pin matches, the signature does not.
    let leaf = CertificateDer::from(pki.leaf_der.clone());
    let chain = [CertificateDer::from(other.ca_der.clone())];
    let err = verifier
        .verify_server_cert(
            &leaf,
            &chain,
            &ServerName::try_from("localhost").unwrap(),
            &[],
            UnixTime::now(),
        )
        .unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

fn other_pin() -> CaPin {
    format!("sha256:{HEX}").parse().unwrap()
}
