//! Unit tests of the key lifecycle (pure), the KEK, the config and signing; the
//! DB-touching conformance cases on every backend.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::Duration;

use tether_common::time::{Clock as _, UnixTime};
use tether_common::token::{Algorithm, Claims};

use super::conformance::{self, CASES, T0, TEST_KEK, mint, test_clock, test_config, verifier};
use super::lifecycle::{KeyMeta, Plan, Policy, Reason, Step, plan_due, plan_emergency};
use super::*;
use crate::store::KeyStatus;
use crate::store::tests::{on_every_backend, sqlite_memory};

on_every_backend!(
    crate::keys::conformance::CASES;
    bootstrap_creates_current_and_next,
    token_verifies_until_expiry_across_scheduled_rotation,
    emergency_rotation_drops_the_key_at_once,
    keys_are_published_before_they_sign_for_a_week,
    restart_keeps_keys_and_tokens,
    wrong_kek_is_a_clear_error,
    racing_managers_rotate_exactly_once,
    concurrent_bootstrap_happens_once,
    private_keys_are_encrypted_and_wiped,
    replicas_converge_by_refresh,
);

#[test]
fn every_case_has_a_test() {
    let src = include_str!("tests.rs");
    for (name, _) in CASES {
        assert!(
            src.contains(&format!("    {name},\n")),
            "{name} is not run by on_every_backend!"
        );
    }
}

// ---- lifecycle (pure) ----

const HOUR: u64 = 3600;

fn policy() -> Policy {
    Policy {
        rotation_interval: Duration::from_secs(24 * HOUR),
        publish_lead: Duration::from_secs(600),
        retire_margin: Duration::from_secs(HOUR + 40),
    }
}

fn t(secs: i64) -> UnixTime {
    UnixTime::from_secs(T0 + secs)
}

fn key(kid: &str, status: KeyStatus, created: i64) -> KeyMeta {
    KeyMeta {
        kid: kid.into(),
        status,
        created_at: t(created),
        activated_at: (status == KeyStatus::Current).then(|| t(created)),
        deactivated_at: None,
        retire_after: None,
    }
}

#[test]
fn empty_table_bootstraps() {
    let plan = plan_due(&[], t(0), &policy());
    assert_eq!(
        plan.steps,
        [
            Step::Generate(KeyStatus::Current),
            Step::Generate(KeyStatus::Next)
        ]
    );
    assert_eq!(plan.reasons, [Reason::Bootstrap]);
}

#[test]
fn rotation_waits_for_interval_and_publish_lead() {
    let day = 24 * HOUR as i64;
    let keys = [
        key("c", KeyStatus::Current, 0),
        key("n", KeyStatus::Next, 0),
    ];
    assert!(plan_due(&keys, t(day - 1), &policy()).is_empty());
    let plan = plan_due(&keys, t(day), &policy());
    assert_eq!(
        plan.steps,
        [
            Step::Demote {
                kid: "c".into(),
                retire_after: t(day + HOUR as i64 + 40)
            },
            Step::Activate { kid: "n".into() },
            Step::Generate(KeyStatus::Next),
        ]
    );
    assert_eq!(
        plan.reasons,
        [Reason::Scheduled {
            from: "c".into(),
            to: "n".into()
        }]
    );

    // The interval has passed but next was created 5 minutes ago: wait for the lead.
    let young_next = [
        key("c", KeyStatus::Current, 0),
        key("n", KeyStatus::Next, day - 300),
    ];
    assert!(plan_due(&young_next, t(day), &policy()).is_empty());
    assert!(!plan_due(&young_next, t(day + 300), &policy()).is_empty());
}

#[test]
fn previous_keys_retire_after_their_margin() {
    let mut previous = key("p", KeyStatus::Previous, 0);
    previous.retire_after = Some(t(1000));
    let keys = [
        previous,
        key("c", KeyStatus::Current, 500),
        key("n", KeyStatus::Next, 500),
    ];
    assert!(plan_due(&keys, t(999), &policy()).is_empty());
    let plan = plan_due(&keys, t(1000), &policy());
    assert_eq!(
        plan.steps,
        [Step::Retire {
            kid: "p".into(),
            from: KeyStatus::Previous
        }]
    );
    assert_eq!(plan.reasons, [Reason::Retirement { kid: "p".into() }]);
}

#[test]
fn missing_keys_are_repaired() {
    let plan = plan_due(&[key("n", KeyStatus::Next, 0)], t(10), &policy());
    assert_eq!(
        plan.steps,
        [
            Step::Activate { kid: "n".into() },
            Step::Generate(KeyStatus::Next)
        ]
    );
    let plan = plan_due(&[key("c", KeyStatus::Current, 0)], t(10), &policy());
    assert_eq!(plan.steps, [Step::Generate(KeyStatus::Next)]);
    assert_eq!(
        plan.reasons,
        [Reason::Repair {
            missing: KeyStatus::Next
        }]
    );
}

#[test]
fn emergency_retires_current_and_promotes_next() {
    let keys = [
        key("c", KeyStatus::Current, 0),
        key("n", KeyStatus::Next, 0),
    ];
    let plan = plan_emergency(&keys).unwrap();
    assert_eq!(
        plan.steps,
        [
            Step::Retire {
                kid: "c".into(),
                from: KeyStatus::Current
            },
            Step::Activate { kid: "n".into() },
            Step::Generate(KeyStatus::Next),
        ]
    );
    assert_eq!(
        plan.reasons,
        [Reason::Emergency {
            dropped: "c".into(),
            promoted: Some("n".into())
        }]
    );
    assert_eq!(plan_emergency(&[key("n", KeyStatus::Next, 0)]), None);
    let lone = plan_emergency(&[key("c", KeyStatus::Current, 0)]).unwrap();
    assert_eq!(lone.steps[1], Step::Generate(KeyStatus::Current));
}

#[test]
fn retired_keys_are_ignored() {
    let keys = [
        key("r", KeyStatus::Retired, 0),
        key("c", KeyStatus::Current, 0),
        key("n", KeyStatus::Next, 0),
    ];
    assert_eq!(plan_due(&keys, t(10), &policy()), Plan::default());
}

// ---- config ----

#[test]
fn config_defaults_and_durations() {
    let config: KeysConfig = serde_json::from_str(r#"{"kek_file": "/etc/tether/kek"}"#).unwrap();
    assert_eq!(config, KeysConfig::new("/etc/tether/kek"));
    assert_eq!(config.algorithm, Algorithm::Es256);
    assert_eq!(config.rotation_interval, Duration::from_secs(24 * HOUR));
    assert_eq!(config.jwks_max_age(), Duration::from_secs(150));
    config.validate().unwrap();

    let config: KeysConfig = serde_json::from_str(
        r#"{"kek_file": "k", "algorithm": "RS256", "rotation_interval": "12h", "publish_lead": "20m",
            "refresh_interval": "10s", "max_token_lifetime": "15m", "clock_skew": "1m"}"#,
    )
    .unwrap();
    assert_eq!(config.algorithm, Algorithm::Rs256);
    assert_eq!(config.publish_lead, Duration::from_secs(1200));
    assert_eq!(
        config.retire_margin(),
        Duration::from_secs(900 + 60 + 2 * 10)
    );
    let round_trip: KeysConfig =
        serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
    assert_eq!(round_trip, config);
}

#[test]
fn config_errors_are_clear() {
    let err =
        serde_json::from_str::<KeysConfig>(r#"{"kek_file": "k", "rotation_interval": "soon"}"#)
            .unwrap_err();
    assert!(
        err.to_string().contains("invalid duration \"soon\""),
        "{err}"
    );
    assert!(serde_json::from_str::<KeysConfig>(r#"{"kek_file": "k", "rotate": "1h"}"#).is_err());
    assert!(
        serde_json::from_str::<KeysConfig>(r#"{"kek_file": "k", "algorithm": "HS256"}"#).is_err()
    );
    assert!(
        serde_json::from_str::<KeysConfig>("{}").is_err(),
        "kek_file is required"
    );

    let mut config = KeysConfig::new("k");
    config.refresh_interval = Duration::from_secs(225);
    let err = config.validate().unwrap_err();
    assert!(err.to_string().contains("publish_lead"), "{err}");
    config.refresh_interval = Duration::ZERO;
    assert!(config.validate().is_err());
}

// ---- KEK ----

#[test]
fn kek_seals_and_binds_to_the_row() {
    let kek = Kek::from_bytes(&TEST_KEK).unwrap();
    let (ciphertext, nonce) = kek.seal("kid-1", "ES256", b"private key bytes").unwrap();
    assert_eq!(nonce.len(), 12);
    assert!(!ciphertext.windows(7).any(|w| w == b"private"));
    assert_eq!(
        kek.open("kid-1", "ES256", &ciphertext, &nonce)
            .unwrap()
            .as_slice(),
        b"private key bytes"
    );
    // Moved to another row, another alg, tampered, or under another KEK: refused.
    assert!(matches!(
        kek.open("kid-2", "ES256", &ciphertext, &nonce),
        Err(KeyError::Decrypt { .. })
    ));
    assert!(kek.open("kid-1", "RS256", &ciphertext, &nonce).is_err());
    let mut tampered = ciphertext.clone();
    tampered[0] ^= 1;
    assert!(kek.open("kid-1", "ES256", &tampered, &nonce).is_err());
    assert!(
        Kek::from_bytes(&[1; 32])
            .unwrap()
            .open("kid-1", "ES256", &ciphertext, &nonce)
            .is_err()
    );
    // Nonces are fresh per encryption.
    let (again, nonce2) = kek.seal("kid-1", "ES256", b"private key bytes").unwrap();
    assert_ne!((again, nonce2), (ciphertext, nonce));
    assert_eq!(format!("{kek:?}"), "Kek(<redacted>)");
}

#[test]
fn kek_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets/kek");
    let generated = Kek::generate_file(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (ct, nonce) = generated.seal("k", "ES256", b"x").unwrap();
    assert_eq!(
        Kek::load(&path)
            .unwrap()
            .open("k", "ES256", &ct, &nonce)
            .unwrap()
            .as_slice(),
        b"x"
    );
    assert!(
        matches!(Kek::generate_file(&path), Err(KeyError::KekWrite { .. })),
        "never overwrites"
    );
    Kek::load_or_generate_file(&path)
        .unwrap()
        .open("k", "ES256", &ct, &nonce)
        .unwrap();

    // Raw 32 bytes work too.
    let raw = dir.path().join("raw");
    std::fs::write(&raw, TEST_KEK).unwrap();
    std::fs::set_permissions(&raw, std::fs::Permissions::from_mode(0o400)).unwrap();
    Kek::load(&raw).unwrap();

    // Loose permissions, wrong length, garbage, missing: errors that name the file.
    let loose = dir.path().join("loose");
    std::fs::write(&loose, TEST_KEK).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Kek::load(&loose).unwrap_err();
    assert!(
        matches!(err, KeyError::KekPermissions { mode: 0o644, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("loose") && err.to_string().contains("0644"),
        "{err}"
    );
    for (name, contents) in [
        ("short", b"c2hvcnQ=\n".to_vec()),
        ("garbage", vec![0xff; 40]),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, contents).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = Kek::load(&file).unwrap_err();
        assert!(matches!(err, KeyError::KekFormat { .. }), "{err:?}");
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = Kek::load(&dir.path().join("missing")).unwrap_err();
    assert!(
        matches!(err, KeyError::KekRead { .. }) && err.to_string().contains("missing"),
        "{err}"
    );
}

// ---- signing ----

#[tokio::test]
async fn sign_enforces_max_token_lifetime_and_counts() {
    let store = sqlite_memory().await;
    let config = test_config();
    let (clock, shared) = test_clock();
    let manager = conformance::manager(&store, &config, &shared).await;
    let now = clock.now();
    let ok = mint(&manager, now, config.max_token_lifetime);
    verifier(&manager.current()).verify(&ok, now).unwrap();

    let too_long = Claims::mint(
        "i",
        "a",
        "s",
        "u",
        vec![],
        None,
        now,
        config.max_token_lifetime + Duration::from_secs(1),
    );
    assert!(matches!(
        manager.sign(&too_long, "test"),
        Err(KeyError::LifetimeTooLong { .. })
    ));
    assert!(matches!(
        manager.sign(&serde_json::json!({"sub": "x"}), "test"),
        Err(KeyError::MissingExpiry)
    ));
    assert!(matches!(
        manager.sign(&"not an object", "test"),
        Err(KeyError::MissingExpiry)
    ));

    // A replica that has not reached the store for 2 × refresh_interval stops signing.
    clock.advance(config.max_staleness() + Duration::from_secs(1));
    let late = Claims::mint(
        "i",
        "a",
        "s",
        "u",
        vec![],
        None,
        clock.now(),
        Duration::from_secs(60),
    );
    let err = manager.sign(&late, "test");
    assert!(matches!(err, Err(KeyError::Stale { .. })), "{err:?}");
    manager.refresh().await.unwrap();
    manager.sign(&late, "test").unwrap();
}

#[tokio::test]
async fn spawn_loads_the_kek_file_and_runs_the_loop() {
    let store = sqlite_memory().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.kek_file = dir.path().join("kek");
    config.refresh_interval = Duration::from_secs(1);
    let (clock, shared) = test_clock();
    assert!(matches!(
        KeyManager::spawn(store.clone(), config.clone(), Arc::clone(&shared)).await,
        Err(KeyError::KekRead { .. })
    ));
    Kek::generate_file(&config.kek_file).unwrap();
    let (manager, handle) = KeyManager::spawn(store.clone(), config.clone(), shared)
        .await
        .unwrap();
    let mut updates = manager.subscribe();
    let first = manager.current().generation;
    // Move the clock past a rotation: the loop performs it within a refresh interval.
    clock.advance(config.rotation_interval);
    tokio::time::timeout(Duration::from_secs(10), updates.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manager.current().generation, first + 1);
    assert!(manager.current().key(KeyStatus::Previous).is_some());
    // Dropping the last manager ends the loop.
    drop(updates);
    drop(manager);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn rs256_keys_work() {
    let store = sqlite_memory().await;
    let mut config = test_config();
    config.algorithm = Algorithm::Rs256;
    let (clock, shared) = test_clock();
    let manager = conformance::manager(&store, &config, &shared).await;
    assert_eq!(manager.current().signer.alg(), Algorithm::Rs256);
    let token = mint(&manager, clock.now(), Duration::from_secs(60));
    verifier(&manager.current())
        .verify(&token, clock.now())
        .unwrap();
}

#[test]
fn errors_and_debug_never_show_key_material() {
    let err = KeyError::Decrypt { kid: "abc".into() };
    assert_eq!(
        err.to_string(),
        "cannot decrypt signing key abc: wrong key-encryption key (keys.kek_file) or a corrupted row"
    );
}
