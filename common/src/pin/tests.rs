use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PublicKeyData,
};
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use super::*;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A CA and a serving certificate for `localhost`, `127.0.0.1` and `hub.example`.
struct Pki {
    ca_der: Vec<u8>,
    ca_spki: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_spki: Vec<u8>,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let ca_spki = ca_key.subject_public_key_info();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "hub.example".to_owned(),
        ])
        .unwrap();
        params.distinguished_name.push(DnType::CommonName, "hub");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params.signed_by(&key, &ca).unwrap();
        Self {
            ca_der: ca.der().to_vec(),
            ca_spki,
            leaf_der: leaf.der().to_vec(),
            leaf_spki: key.subject_public_key_info(),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn verify(
    verifier: &PinnedVerifier,
    leaf: &[u8],
    chain: &[&[u8]],
    name: &'static str,
) -> Result<(), rustls::Error> {
    let leaf = CertificateDer::from(leaf.to_vec());
    let chain: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.to_vec()))
        .collect();
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
        String::new(),
    ] {
        assert_eq!(bad.parse::<CaPin>(), Err(InvalidPin), "{bad} parsed");
    }
}

#[test]
fn spki_is_found_in_certificates_and_not_in_garbage() {
    let pki = Pki::new();
    assert_eq!(spki_of_cert(&pki.ca_der), Some(pki.ca_spki.as_slice()));
    assert_eq!(spki_of_cert(&pki.leaf_der), Some(pki.leaf_spki.as_slice()));
    assert_eq!(spki_of_cert(b""), None);
    assert_eq!(spki_of_cert(b"\x30\x82\xff"), None);
    assert_eq!(spki_of_cert(&pki.ca_der[..pki.ca_der.len() / 2]), None);
    assert_eq!(spki_of_cert(&pki.ca_spki), None); // a SEQUENCE, but not a certificate
}

#[test]
fn pin_matches_only_its_key_with_the_hubs_rule() {
    let pki = Pki::new();
    let ca_pin = CaPin::of_spki(&pki.ca_spki);
    assert_eq!(CaPin::of_cert(&pki.ca_der), Some(ca_pin));
    assert!(ca_pin.matches(&pki.ca_der));
    assert!(!ca_pin.matches(&pki.leaf_der));
    assert!(!ca_pin.matches(b"not a certificate"));
    // The hub's `ca_hash`: sha256 of the SPKI DER, lowercase hex.
    let hex: String = Sha256::digest(&pki.ca_spki)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(ca_pin.to_string(), format!("sha256:{hex}"));
}

#[test]
fn accepts_the_pinned_ca_and_records_it() {
    let pki = Pki::new();
    let v = PinnedVerifier::new(CaPin::of_spki(&pki.ca_spki), provider());
    assert_eq!(v.outcome(), PinOutcome::NotChecked);
    verify(&v, &pki.leaf_der, &[&pki.ca_der], "hub.example").unwrap();
    assert_eq!(
        v.outcome(),
        PinOutcome::Matched(CertificateDer::from(pki.ca_der.clone()))
    );
    verify(&v, &pki.leaf_der, &[&pki.ca_der], "127.0.0.1").unwrap();
}

#[test]
fn refuses_another_pin_naming_it() {
    let pki = Pki::new();
    let v = PinnedVerifier::new(HEX_PIN.parse().unwrap(), provider());
    let err = verify(&v, &pki.leaf_der, &[&pki.ca_der], "localhost").unwrap_err();
    assert!(err.to_string().contains("matches --ca-hash"), "{err}");
    assert_eq!(v.outcome(), PinOutcome::Mismatch);
}

const HEX_PIN: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn still_checks_the_name() {
    let pki = Pki::new();
    let v = PinnedVerifier::new(CaPin::of_spki(&pki.ca_spki), provider());
    let err = verify(&v, &pki.leaf_der, &[&pki.ca_der], "evil.example").unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    assert!(matches!(v.outcome(), PinOutcome::ChainInvalid(_)));
}

#[test]
fn refuses_a_chain_that_only_carries_the_pinned_ca() {
    // An attacker can copy the real CA certificate into its chain, but cannot sign a leaf
    // with it.
    let real = Pki::new();
    let attacker = Pki::new();
    let v = PinnedVerifier::new(CaPin::of_spki(&real.ca_spki), provider());
    let err = verify(
        &v,
        &attacker.leaf_der,
        &[&real.ca_der, &attacker.ca_der],
        "localhost",
    )
    .unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    assert!(matches!(v.outcome(), PinOutcome::ChainInvalid(_)));
}
