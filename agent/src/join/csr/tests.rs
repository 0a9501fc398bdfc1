use x509_parser::prelude::FromDer as _;

use super::*;

#[test]
fn csr_names_the_cluster_and_is_signed_by_the_key() {
    let out = generate("prod-eu").unwrap();
    assert!(out.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(out.csr_pem.as_bytes()).unwrap();
    assert_eq!(pem.label, "CERTIFICATE REQUEST");
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .unwrap();
    let cn: Vec<_> = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cn, vec!["prod-eu".to_owned()]);
    // The CSR's public key is the generated key's.
    let key = KeyPair::from_pem(&out.key_pem).unwrap();
    assert_eq!(
        csr.certification_request_info
            .subject_pki
            .subject_public_key
            .data
            .as_ref(),
        key.public_key_raw()
    );
    assert!(!format!("{out:?}").contains("PRIVATE KEY"));
}
