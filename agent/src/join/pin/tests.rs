use rustls_pki_types::pem::PemObject as _;

use super::*;
use crate::test_support::{ca, leaf};

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn verify(v: &PinnedVerifier, chain: &[CertificateDer<'static>], name: &str) -> bool {
    v.verify_server_cert(
        &chain[0],
        &chain[1..],
        &ServerName::try_from(name.to_owned()).unwrap(),
        &[],
        UnixTime::now(),
    )
    .is_ok()
}

#[test]
fn pin_text_round_trips_and_rejects_garbage() {
    let hub_ca = ca("hub grpc CA");
    let pin = Pin::of_cert(hub_ca.der()).unwrap();
    let text = pin.to_string();
    assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
    assert_eq!(text.parse::<Pin>().unwrap(), pin);
    for bad in [
        "",
        "sha256:",
        "sha1:00",
        &text[..70],
        &format!("{}zz", &text[..69]),
    ] {
        assert!(bad.parse::<Pin>().is_err(), "{bad}");
    }
}

#[test]
fn accepts_the_pinned_ca_and_refuses_another() {
    let hub_ca = ca("hub grpc CA");
    let (leaf_pem, _) = leaf(&hub_ca, &["hub.example", "127.0.0.1"], false);
    let chain = vec![der(&leaf_pem), hub_ca.der().clone()];
    let pin = Pin::of_cert(hub_ca.der()).unwrap();

    let v = PinnedVerifier::new(pin, crate::tls::provider());
    assert_eq!(v.outcome(), PinOutcome::NotChecked);
    assert!(verify(&v, &chain, "hub.example"));
    assert_eq!(v.outcome(), PinOutcome::Matched(hub_ca.der().clone()));
    assert!(verify(&v, &chain, "127.0.0.1"));

    // Pinned on another CA: refused before anything else is looked at.
    let other = ca("someone else");
    let v = PinnedVerifier::new(Pin::of_cert(other.der()).unwrap(), crate::tls::provider());
    assert!(!verify(&v, &chain, "hub.example"));
    assert_eq!(v.outcome(), PinOutcome::Mismatch);
}

#[test]
fn refuses_a_chain_that_only_carries_the_pinned_ca() {
    // An attacker can copy the real CA certificate into its chain, but cannot sign a leaf with it.
    let hub_ca = ca("hub grpc CA");
    let attacker = ca("attacker");
    let (leaf_pem, _) = leaf(&attacker, &["hub.example"], false);
    let chain = vec![der(&leaf_pem), hub_ca.der().clone(), attacker.der().clone()];
    let v = PinnedVerifier::new(Pin::of_cert(hub_ca.der()).unwrap(), crate::tls::provider());
    assert!(!verify(&v, &chain, "hub.example"));
    assert!(matches!(v.outcome(), PinOutcome::ChainInvalid(_)));
}

#[test]
fn refuses_a_wrong_server_name() {
    let hub_ca = ca("hub grpc CA");
    let (leaf_pem, _) = leaf(&hub_ca, &["hub.example"], false);
    let chain = vec![der(&leaf_pem), hub_ca.der().clone()];
    let v = PinnedVerifier::new(Pin::of_cert(hub_ca.der()).unwrap(), crate::tls::provider());
    assert!(!verify(&v, &chain, "evil.example"));
    assert!(matches!(v.outcome(), PinOutcome::ChainInvalid(_)));
}
