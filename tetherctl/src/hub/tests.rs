use std::collections::HashMap;
use std::io::Write as _;

use base64::Engine as _;

use super::*;
use crate::fake_hub::FakeHub;
use crate::test_support::Pki;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn args(hub: &str, ca: Option<&Path>) -> HubArgs {
    HubArgs {
        hub: Some(hub.to_owned()),
        hub_ca: ca.map(Path::to_owned),
    }
}

#[test]
fn hub_urls_are_normalized() {
    for (given, want) in [
        ("https://Hub.Example.com/", "https://hub.example.com"),
        ("https://hub.example.com:443", "https://hub.example.com"),
        (
            "https://hub.example.com:8443/tether/",
            "https://hub.example.com:8443/tether",
        ),
        ("http://127.0.0.1:5556", "http://127.0.0.1:5556"),
        ("http://localhost:1", "http://localhost:1"),
        ("http://[::1]:1/", "http://[::1]:1"),
    ] {
        assert_eq!(HubUrl::parse(given).unwrap().as_str(), want, "{given}");
    }
    for (bad, why) in [
        ("http://hub.example.com", "unencrypted"),
        ("ftp://hub", "expected https"),
        ("hub.example.com", "relative URL"),
        ("https://u:p@hub.example.com", "credentials"),
        ("https://hub.example.com/?x=1", "no query"),
    ] {
        let err = HubUrl::parse(bad).unwrap_err();
        assert!(err.to_string().contains(why), "{bad}: {err}");
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
    }
}

#[test]
fn cache_key_is_16_hex_of_sha256() {
    let a = HubUrl::parse("https://hub.example.com/").unwrap();
    let b = HubUrl::parse("https://hub.example.com").unwrap();
    let c = HubUrl::parse("https://other.example.com").unwrap();
    assert_eq!(a.cache_key(), b.cache_key());
    assert_ne!(a.cache_key(), c.cache_key());
    assert_eq!(a.cache_key().len(), 16);
    let full: String = Sha256::digest(b"https://hub.example.com")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(a.cache_key(), full[..16]);
}

#[test]
fn ca_flag_beats_env_data_beats_system() {
    let pki = Pki::new();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pki.ca_pem.as_bytes()).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);
    let e = env(&[(ENV_HUB_CA_DATA, &data)]);

    let target = HubTarget::resolve(&args("https://h", Some(file.path())), &e).unwrap();
    assert!(
        matches!(&target.ca, HubCa::File { path, pem } if path.is_absolute() && pem == pki.ca_pem.as_bytes())
    );
    let target = HubTarget::resolve(&args("https://h", None), &e).unwrap();
    assert!(
        matches!(&target.ca, HubCa::EnvData { base64, pem } if *base64 == data && pem == pki.ca_pem.as_bytes())
    );
    let target = HubTarget::resolve(&args("https://h", None), &env(&[])).unwrap();
    assert_eq!(target.ca, HubCa::System);
}

#[test]
fn bad_cas_and_missing_hub_are_usage_errors() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"nothing").unwrap();
    let not_base64 = env(&[(ENV_HUB_CA_DATA, "not base64!")]);
    let not_pem = env(&[(ENV_HUB_CA_DATA, "aGVsbG8=")]);
    let cases = [
        (
            HubTarget::resolve(&args("https://h", None), &not_base64),
            "not base64",
        ),
        (
            HubTarget::resolve(&args("https://h", None), &not_pem),
            "no CERTIFICATE",
        ),
        (
            HubTarget::resolve(&args("https://h", Some(file.path())), &env(&[])),
            "--hub-ca",
        ),
        (HubTarget::resolve(&HubArgs::default(), &env(&[])), "--hub"),
    ];
    for (result, want) in cases {
        let err = result.unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE, "{err}");
    }
}

#[test]
fn discovery_endpoints_must_be_safe() {
    assert!(check_endpoint("token_endpoint", "https://hub/token").is_ok());
    assert!(check_endpoint("token_endpoint", "http://127.0.0.1:9/token").is_ok());
    let err = check_endpoint("token_endpoint", "http://evil.example/token").unwrap_err();
    assert!(err.to_string().contains("token_endpoint"), "{err}");
}

#[tokio::test]
async fn tls_with_the_right_ca_and_without() {
    let pki = Pki::new();
    let fake = FakeHub::start_tls(&["a"], &pki);
    let data = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);

    let trusted =
        HubTarget::resolve(&args(&fake.url, None), &env(&[(ENV_HUB_CA_DATA, &data)])).unwrap();
    let discovery = HubClient::new(&trusted).unwrap().discover().await.unwrap();
    assert_eq!(discovery.token_endpoint, format!("{}/token", fake.url));

    // System roots do not know the test CA: a TLS error that says what to do.
    let untrusted = HubTarget::resolve(&args(&fake.url, None), &env(&[])).unwrap();
    let err = HubClient::new(&untrusted)
        .unwrap()
        .discover()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("--hub-ca"), "{err}");
    assert_eq!(err.exit_code(), crate::error::EXIT_FAILURE);
}

#[tokio::test]
async fn unreachable_and_non_oauth_errors() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target =
        HubTarget::resolve(&args(&format!("http://127.0.0.1:{port}"), None), &env(&[])).unwrap();
    let err = HubClient::new(&target)
        .unwrap()
        .discover()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.report().contains("127.0.0.1"), "{}", err.report());

    let fake = FakeHub::start(&[]);
    let target = HubTarget::resolve(&args(&fake.url, None), &env(&[])).unwrap();
    let client = HubClient::new(&target).unwrap();
    // The fake has no such route: a 404 without an OAuth body.
    let err = client
        .token(&format!("{}/nope", fake.url), &[("a", "b")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::HubStatus { status, .. } if status.starts_with("404")),
        "{err:?}"
    );
    // An OAuth error body keeps its code and description.
    let err = client
        .token(
            &format!("{}/token", fake.url),
            &[("client_id", "tetherctl")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OAuth { code, description: Some(d), .. } if code == "unsupported_grant_type" && d == "no"),
        "{err:?}"
    );
}
