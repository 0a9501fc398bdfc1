use std::collections::HashMap;
use std::io::Write;

use super::*;
use crate::test_support::Pki;

const PIN: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn file(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    f
}

fn args(hub: Option<&str>) -> AdminArgs {
    AdminArgs {
        hub: hub.map(str::to_owned),
        ..AdminArgs::default()
    }
}

#[test]
fn everything_from_the_environment() {
    let e = env(&[
        (ENV_HUB_URL, "https://hub.test:8443"),
        (ENV_HUB_CA_HASH, PIN),
        (ENV_ADMIN_TOKEN, " tok.en\n"),
    ]);
    let config = AdminConfig::resolve(&AdminArgs::default(), &e).unwrap();
    assert_eq!(config.url, "https://hub.test:8443");
    assert_eq!(config.uri.port_u16(), Some(8443));
    assert!(matches!(config.trust, Trust::Pin(p) if p.to_string() == PIN));
    assert_eq!(config.token.expose(), "tok.en");
    assert_eq!(config.timeout, TIMEOUT);
    // The token never shows in Debug.
    assert!(!format!("{config:?}").contains("tok.en"));
}

#[test]
fn flags_beat_the_environment() {
    let pki = Pki::new();
    let ca = file(&pki.ca_pem);
    let token = file("from-file\n");
    let e = env(&[
        (ENV_HUB_URL, "https://env.test"),
        (ENV_HUB_CA_HASH, PIN),
        (ENV_ADMIN_TOKEN, "from-env"),
    ]);
    let a = AdminArgs {
        hub: Some("https://flag.test".to_owned()),
        ca_file: Some(ca.path().to_owned()),
        ca_hash: None,
        token_file: Some(token.path().to_owned()),
    };
    let config = AdminConfig::resolve(&a, &e).unwrap();
    assert_eq!(config.url, "https://flag.test");
    assert!(matches!(config.trust, Trust::CaPem(ref pem) if pem == pki.ca_pem.as_bytes()));
    assert_eq!(config.token.expose(), "from-file");
}

#[test]
fn missing_settings_say_how_to_give_them() {
    let e = env(&[]);
    let err = AdminConfig::resolve(&AdminArgs::default(), &e).unwrap_err();
    assert!(
        err.to_string()
            .contains("--hub URL or set TETHER_HUB_GRPC_URL"),
        "{err}"
    );

    let err = AdminConfig::resolve(&args(Some("https://h")), &e).unwrap_err();
    assert!(err.to_string().contains("--ca-file FILE"), "{err}");
    assert!(err.to_string().contains("--ca-hash"), "{err}");

    let e = env(&[(ENV_HUB_CA_HASH, PIN), (ENV_ADMIN_TOKEN, "")]);
    let err = AdminConfig::resolve(&args(Some("https://h")), &e).unwrap_err();
    assert!(
        err.to_string()
            .contains("--token-file FILE or set TETHER_ADMIN_TOKEN"),
        "{err}"
    );
    assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
}

#[test]
fn ca_file_and_ca_hash_exclude_each_other() {
    let e = env(&[(ENV_ADMIN_TOKEN, "t")]);
    let a = AdminArgs {
        hub: Some("https://h".to_owned()),
        ca_file: Some("/x".into()),
        ca_hash: Some(PIN.to_owned()),
        token_file: None,
    };
    let err = AdminConfig::resolve(&a, &e).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");

    let e = env(&[
        (ENV_ADMIN_TOKEN, "t"),
        (ENV_HUB_CA, "/x"),
        (ENV_HUB_CA_HASH, PIN),
    ]);
    let err = AdminConfig::resolve(&args(Some("https://h")), &e).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");

    // A flag for one overrides the environment for the other.
    let a = AdminArgs {
        ca_hash: Some(PIN.to_owned()),
        ..args(Some("https://h"))
    };
    let e = env(&[(ENV_ADMIN_TOKEN, "t"), (ENV_HUB_CA, "/does/not/exist")]);
    assert!(AdminConfig::resolve(&a, &e).is_ok());
}

#[test]
fn bad_pin_is_a_usage_error() {
    let e = env(&[(ENV_ADMIN_TOKEN, "t")]);
    let a = AdminArgs {
        ca_hash: Some("sha256:abc".to_owned()),
        ..args(Some("https://h"))
    };
    let err = AdminConfig::resolve(&a, &e).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("--ca-hash \"sha256:abc\" is invalid"),
        "{err}"
    );
    assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
}

#[test]
fn hub_urls() {
    assert!(parse_hub_url("https://hub.example.com:8443").is_ok());
    assert!(parse_hub_url("https://hub.example.com/").is_ok());
    assert!(parse_hub_url("https://127.0.0.1:9443").is_ok());
    for (bad, why) in [
        ("http://hub.example.com", "plain http"),
        ("hub.example.com:8443", "expected https://"),
        ("https://hub.example.com/grpc", "no path"),
        ("https://", ""),
        ("not a url", ""),
    ] {
        let err = parse_hub_url(bad).unwrap_err();
        assert!(err.to_string().contains(why), "{bad}: {err}");
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
    }
}

#[test]
fn ca_files_must_hold_a_certificate() {
    let empty = file("");
    let err = read_ca_file(empty.path()).unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    let key_only = file(&Pki::new().key_pem);
    assert!(read_ca_file(key_only.path()).is_err());
    let err = read_ca_file(Path::new("/does/not/exist.pem")).unwrap_err();
    assert!(matches!(err, Error::ReadFile { .. }), "{err}");
    let pki = Pki::new();
    assert!(read_ca_file(file(&pki.chain_pem).path()).is_ok());
}

#[test]
fn tokens_must_be_sendable() {
    let e = env(&[(ENV_HUB_CA_HASH, PIN), (ENV_ADMIN_TOKEN, "two words")]);
    let err = AdminConfig::resolve(&args(Some("https://h")), &e).unwrap_err();
    assert!(matches!(err, Error::BadToken(_)), "{err}");
    let blank = file(" \n");
    let a = AdminArgs {
        token_file: Some(blank.path().to_owned()),
        ..args(Some("https://h"))
    };
    let e = env(&[(ENV_HUB_CA_HASH, PIN)]);
    let err = AdminConfig::resolve(&a, &e).unwrap_err();
    assert!(err.to_string().contains("it is empty"), "{err}");
}
