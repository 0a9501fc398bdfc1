use tonic::{Code, Status};

use super::*;

#[test]
fn cluster_names() {
    for ok in ["prod-eu", "a", "x1", &"a".repeat(63)] {
        validate_cluster_name(ok).unwrap();
    }
    for bad in ["", "Prod", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
        assert!(validate_cluster_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn refusals_say_what_to_do() {
    let msg = |s: Status| refusal(&s, "prod", "https://hub").to_string();
    let used = msg(Status::new(
        Code::PermissionDenied,
        "join token already used",
    ));
    assert!(
        used.contains("already used") && used.contains("tetherctl cluster add prod"),
        "{used}"
    );
    let joined = msg(Status::new(Code::FailedPrecondition, ""));
    assert!(joined.contains("tetherctl cluster remove prod"), "{joined}");
    // The hub's own advice is kept as is.
    let hub = msg(Status::new(
        Code::AlreadyExists,
        "x: `tetherctl cluster remove prod` first",
    ));
    assert!(
        hub.ends_with("x: `tetherctl cluster remove prod` first"),
        "{hub}"
    );
    let down = refusal(
        &Status::unavailable("connection refused"),
        "prod",
        "https://hub",
    );
    assert!(matches!(down, Error::HubUnreachable { .. }));
    assert!(down.to_string().contains("https://hub"));
}

#[test]
fn dry_run_prints_placeholders_and_no_key() {
    let yaml = dry_run(
        "prod",
        "https://hub.example",
        &InstallOptions {
            namespace: "tether-system".to_owned(),
            image: "img".to_owned(),
        },
    )
    .unwrap();
    assert!(yaml.contains("name: tether-agent-identity"));
    assert!(!yaml.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn wrong_pin_fails_before_anything_is_sent_and_unreachable_names_the_url() {
    use rustls_pki_types::pem::PemObject as _;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let hub_ca = crate::test_support::ca("hub grpc CA");
    let (leaf_pem, key_pem) = crate::test_support::leaf(&hub_ca, &["127.0.0.1"], false);
    let chain = vec![
        rustls_pki_types::CertificateDer::from_pem_slice(leaf_pem.as_bytes()).unwrap(),
        hub_ca.der().clone(),
    ];
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 64];
                    let n = tokio::io::AsyncReadExt::read(&mut tls, &mut buf)
                        .await
                        .unwrap_or(0);
                    counter.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    let hub = HubAddr::parse(&format!("https://127.0.0.1:{port}")).unwrap();

    let right = CaPin::of_cert(hub_ca.der()).unwrap();
    let ca = check_pin(&hub, Arc::new(PinnedVerifier::new(right, tls::provider())))
        .await
        .unwrap();
    assert_eq!(ca.as_ref(), hub_ca.der().as_ref());

    let other = crate::test_support::ca("other");
    let wrong = CaPin::of_cert(other.der()).unwrap();
    let err = check_pin(&hub, Arc::new(PinnedVerifier::new(wrong, tls::provider())))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PinMismatch), "{err}");
    assert!(err.to_string().contains("does not match --ca-hash"));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        received.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no application data was sent"
    );

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = HubAddr::parse(&format!(
        "https://127.0.0.1:{}",
        closed.local_addr().unwrap().port()
    ))
    .unwrap();
    drop(closed);
    let err = check_pin(&dead, Arc::new(PinnedVerifier::new(right, tls::provider())))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::HubUnreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("https://127.0.0.1:{}", dead.port()))
    );
}
