use std::time::Duration;

use super::secrets::{hex, sha256_hex, token_hash};
use super::*;
use tether_common::secret::Secret;

#[test]
fn pkce_rfc7636_appendix_b() {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert_eq!(s256_challenge(verifier), challenge);
    assert!(pkce_s256_matches(verifier, challenge));
    assert!(!pkce_s256_matches(
        verifier,
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
    ));
    assert!(!pkce_s256_matches(verifier, ""));
    assert!(valid_code_challenge(challenge));
    assert!(!valid_code_challenge("plain-challenge"));
    assert!(!valid_code_challenge(&format!("{challenge}=")));
}

#[test]
fn verifier_syntax() {
    assert!(valid_code_verifier(&"a".repeat(43)));
    assert!(valid_code_verifier(&"a-._~Z9".repeat(19)[..128]));
    assert!(!valid_code_verifier(&"a".repeat(42)));
    assert!(!valid_code_verifier(&"a".repeat(129)));
    assert!(!valid_code_verifier(&format!("{}+", "a".repeat(43))));
    assert!(!valid_code_verifier(&format!("{} ", "a".repeat(43))));
}

#[test]
fn hashes_are_lowercase_hex_sha256() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(token_hash(&Secret::new("abc")), sha256_hex(b"abc"));
    assert_eq!(hex(&[0x00, 0xff, 0x0a]), "00ff0a");
}

#[test]
fn config_defaults_and_checks() {
    let config: SessionsConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, SessionsConfig::default());
    assert_eq!(config.idle_timeout.as_duration(), Duration::from_secs(900));
    assert_eq!(
        config.absolute_lifetime.as_duration(),
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(config.code_lifetime.as_duration(), Duration::from_secs(60));
    assert_eq!(config.login_timeout.as_duration(), Duration::from_secs(600));
    assert_eq!(
        config.access_token_lifetime.as_duration(),
        Duration::from_secs(300)
    );
    assert_eq!(
        config.id_token_lifetime.as_duration(),
        Duration::from_secs(300)
    );
    let hour = Duration::from_secs(3600);
    config.check(hour).unwrap();
    assert!(serde_json::from_str::<SessionsConfig>(r#"{"idle":"1m"}"#).is_err());

    let bad = |json: &str, field: &str| {
        let config: SessionsConfig = serde_json::from_str(json).unwrap();
        let (got, reason) = config.check(hour).unwrap_err();
        assert_eq!(got, field, "{reason}");
    };
    bad(r#"{"idle_timeout":"13h"}"#, "sessions.idle_timeout");
    bad(r#"{"code_lifetime":"0s"}"#, "sessions.code_lifetime");
    bad(r#"{"code_lifetime":"11m"}"#, "sessions.code_lifetime");
    bad(
        r#"{"access_token_lifetime":"2h"}"#,
        "sessions.access_token_lifetime",
    );
    bad(
        r#"{"id_token_lifetime":"2h"}"#,
        "sessions.id_token_lifetime",
    );
}

#[test]
fn session_error_classes() {
    assert!(SessionError::InvalidGrant("x").is_client_error());
    assert!(SessionError::Revoked.is_client_error());
    assert!(!SessionError::Random.is_client_error());
}

#[test]
fn migrations_0002_match_across_backends() {
    let normalize = |sql: &str| {
        sql.lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| l.replace("BYTEA  ", "BLOB   "))
            .collect::<Vec<_>>()
    };
    let sqlite = include_str!("../../migrations/sqlite/0002_sessions_clients_clusters.sql");
    let postgres = include_str!("../../migrations/postgres/0002_sessions_clients_clusters.sql");
    assert_eq!(normalize(sqlite), normalize(postgres));
}

#[test]
fn kek_bound_sealing() {
    let kek = crate::keys::Kek::from_bytes(&[1; 32]).unwrap();
    let (ct, nonce) = kek
        .seal_bound(UPSTREAM_GRANT_PURPOSE, "sid-1", b"secret grant")
        .unwrap();
    assert!(!ct.windows(6).any(|w| w == b"secret"));
    let clone = kek.clone();
    assert_eq!(
        clone
            .open_bound(UPSTREAM_GRANT_PURPOSE, "sid-1", &ct, &nonce)
            .unwrap()
            .as_slice(),
        b"secret grant"
    );
    assert!(
        kek.open_bound(UPSTREAM_GRANT_PURPOSE, "sid-2", &ct, &nonce)
            .is_err()
    );
    assert!(
        kek.open_bound("other.purpose", "sid-1", &ct, &nonce)
            .is_err()
    );
    let mut tampered = ct.clone();
    tampered[0] ^= 1;
    assert!(
        kek.open_bound(UPSTREAM_GRANT_PURPOSE, "sid-1", &tampered, &nonce)
            .is_err()
    );
}
