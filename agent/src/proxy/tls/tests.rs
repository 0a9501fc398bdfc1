use rustls::client::danger::ServerCertVerifier as _;

use super::{ServerCert, default_hosts, files};

#[test]
fn generated_certificate_is_reused_and_names_changes_reissue() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = default_hosts("tether-system", &["proxy.example".to_owned()]);
    assert_eq!(hosts[0], "proxy.example");
    assert!(hosts.contains(&"127.0.0.1".to_owned()));
    assert!(hosts.contains(&"tether-agent.tether-system.svc".to_owned()));

    let first = ServerCert::generated(dir.path(), &hosts).unwrap();
    first.server_config().unwrap();
    let again = ServerCert::generated(dir.path(), &hosts).unwrap();
    assert_eq!(first.cert_pem, again.cert_pem);
    assert_eq!(first.ca_pem, again.ca_pem);

    let other = ServerCert::generated(dir.path(), &hosts[1..]).unwrap();
    assert_ne!(first.cert_pem, other.cert_pem, "new names, new certificate");
    assert_eq!(first.ca_pem, other.ca_pem, "the CA is kept");
    assert!(dir.path().join(files::CA_KEY).exists());
}

#[test]
fn generated_certificate_verifies_against_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert = ServerCert::generated(dir.path(), &default_hosts("ns", &[])).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for ca in crate::tls::certs_from_pem(&cert.ca_pem, "ca").unwrap() {
        roots.add(ca).unwrap();
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots.into(),
        crate::tls::provider(),
    )
    .build()
    .unwrap();
    let chain = crate::tls::certs_from_pem(&cert.cert_pem, "cert").unwrap();
    let now = rustls_pki_types::UnixTime::now();
    for name in ["127.0.0.1", "localhost", "tether-agent.ns.svc"] {
        let name = rustls_pki_types::ServerName::try_from(name).unwrap();
        verifier
            .verify_server_cert(&chain[0], &[], &name, &[], now)
            .unwrap();
    }
}

#[test]
fn files_supply_the_chain_and_its_last_certificate_as_ca() {
    let dir = tempfile::tempdir().unwrap();
    let generated = ServerCert::generated(dir.path(), &["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("chain.pem");
    std::fs::write(&cert, format!("{}{}", generated.cert_pem, generated.ca_pem)).unwrap();
    let key = dir.path().join(files::SERVER_KEY);
    let loaded = ServerCert::from_files(&cert, &key).unwrap();
    assert_eq!(loaded.ca_pem.trim(), generated.ca_pem.trim());
    loaded.server_config().unwrap();
}
