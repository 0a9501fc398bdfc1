//! Key-lifecycle conformance cases: each takes a FRESH, migrated [`Store`] and panics on
//! failure. The hub's unit tests run [`CASES`] on SQLite (file and memory); the e2e suite
//! runs them on a throwaway PostgreSQL (`tests/e2e/hub/store.rs`).

// A test suite: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tether_common::time::{Clock, ManualClock, UnixTime};
use tether_common::token::{Claims, KeySet, Verifier, VerifyError, VerifyOptions};

use super::{Kek, KeyError, KeyEvent, KeyManager, KeyState, KeysConfig, audit_kind};
use crate::store::conformance::{Case, CaseFuture};
use crate::store::{KeyStatus, Store};

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every key-lifecycle case, by name.
        pub const CASES: &[Case] = &[$((stringify!($name), |s| -> CaseFuture { Box::pin($name(s)) })),*];
    };
}

cases!(
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

/// Test issuer.
pub const ISSUER: &str = "https://hub.tether.test";
/// Test audience.
pub const AUDIENCE: &str = "cluster-a";
/// A fixed test KEK.
pub const TEST_KEK: [u8; 32] = [0x42; 32];
/// 2024-01-01T00:00:00Z.
pub const T0: i64 = 1_704_067_200;

/// Test settings: rotation every 6 h, 10 min publish lead, 1 h tokens, 30 s skew.
pub fn test_config() -> KeysConfig {
    let mut config = KeysConfig::new("/nonexistent/kek");
    config.rotation_interval = Duration::from_secs(6 * 3600);
    config
}

/// A manual clock at [`T0`], and the same clock as `Arc<dyn Clock>`.
pub fn test_clock() -> (Arc<ManualClock>, Arc<dyn Clock>) {
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(T0)));
    let shared: Arc<dyn Clock> = clock.clone();
    (clock, shared)
}

/// A manager on `store` with [`TEST_KEK`] (no refresh loop).
pub async fn manager(store: &Store, config: &KeysConfig, clock: &Arc<dyn Clock>) -> KeyManager {
    KeyManager::start(
        store.clone(),
        config.clone(),
        Kek::from_bytes(&TEST_KEK).unwrap(),
        Arc::clone(clock),
    )
    .await
    .unwrap()
}

/// A verifier trusting exactly the JWKS of `state`.
pub fn verifier(state: &KeyState) -> Verifier {
    Verifier::new(
        KeySet::from_jwks(&state.jwks),
        VerifyOptions::new(ISSUER, AUDIENCE),
    )
}

/// Signs a token valid for `lifetime` from the clock's `now`.
pub fn mint(manager: &KeyManager, now: UnixTime, lifetime: Duration) -> String {
    let claims = Claims::mint(
        ISSUER,
        AUDIENCE,
        "user-1",
        "alice",
        vec!["dev".into()],
        None,
        now,
        lifetime,
    );
    manager.sign(&claims, "test").unwrap()
}

fn kids(state: &KeyState) -> Vec<String> {
    state
        .jwks
        .keys
        .iter()
        .map(|k| k.kid.as_ref().unwrap().as_str().to_owned())
        .collect()
}

fn kid_of(state: &KeyState, status: KeyStatus) -> String {
    state.key(status).unwrap().kid.as_str().to_owned()
}

/// An empty store gets a `current` and a `next` key, both published, audited.
pub async fn bootstrap_creates_current_and_next(store: Store) {
    let (_, clock) = test_clock();
    let manager = manager(&store, &test_config(), &clock).await;
    let state = manager.current();
    assert_eq!(state.generation, 1);
    assert_eq!(
        state.keys.iter().map(|k| k.status).collect::<Vec<_>>(),
        [KeyStatus::Current, KeyStatus::Next]
    );
    assert_eq!(
        kids(&state),
        [
            kid_of(&state, KeyStatus::Current),
            kid_of(&state, KeyStatus::Next)
        ]
    );
    assert_eq!(
        state.signer.kid().as_str(),
        kid_of(&state, KeyStatus::Current)
    );
    let audit = store
        .recent_audit(Some(audit_kind::BOOTSTRAP), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].record.subject.as_deref(),
        Some(kid_of(&state, KeyStatus::Current).as_str())
    );
    // Nothing is due right after bootstrap.
    assert!(
        manager
            .rotate_scheduled_if_due(clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(manager.current().generation, 1);
}

/// A token signed before a scheduled rotation verifies until it expires; once its key is
/// retired the key is gone from the JWKS.
pub async fn token_verifies_until_expiry_across_scheduled_rotation(store: Store) {
    let config = test_config();
    let (clock, shared) = test_clock();
    let manager = manager(&store, &config, &shared).await;
    let old_kid = kid_of(&manager.current(), KeyStatus::Current);

    // Sign just before the rotation is due, with the longest allowed lifetime.
    clock.advance(config.rotation_interval - Duration::from_secs(1));
    assert!(
        manager
            .rotate_scheduled_if_due(clock.now())
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let token = mint(&manager, clock.now(), config.max_token_lifetime);
    let exp = clock.now().saturating_add(config.max_token_lifetime);

    clock.advance(Duration::from_secs(1));
    let events = manager.rotate_scheduled_if_due(clock.now()).await.unwrap();
    assert!(
        matches!(&events[..], [KeyEvent::Rotated { from, .. }] if from.as_str() == old_kid),
        "{events:?}"
    );
    let state = manager.current();
    assert_ne!(state.signer.kid().as_str(), old_kid);
    assert_eq!(
        state.key(KeyStatus::Previous).unwrap().kid.as_str(),
        old_kid
    );
    assert_eq!(
        store
            .recent_audit(Some(audit_kind::ROTATION), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Until expiry (and during the retire margin) the old token verifies.
    let last_valid = UnixTime::from_secs(exp.as_secs() - 1);
    clock.set(last_valid);
    assert!(
        manager
            .rotate_scheduled_if_due(clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    verifier(&manager.current())
        .verify(&token, last_valid)
        .unwrap();

    // After the margin the key is retired and unpublished.
    clock.advance(config.retire_margin());
    let events = manager.rotate_scheduled_if_due(clock.now()).await.unwrap();
    assert!(
        events.contains(&KeyEvent::Retired {
            kid: old_kid.as_str().into()
        }),
        "{events:?}"
    );
    let state = manager.current();
    assert!(!kids(&state).contains(&old_kid));
    assert_eq!(
        verifier(&state).verify(&token, clock.now()),
        Err(VerifyError::UnknownKid)
    );
    assert_eq!(
        store
            .recent_audit(Some(audit_kind::RETIREMENT), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // A fresh token still verifies.
    let fresh = mint(&manager, clock.now(), Duration::from_secs(60));
    verifier(&state).verify(&fresh, clock.now()).unwrap();
}

/// After an emergency rotation the dropped key's tokens fail (unknown kid) at once; the new
/// current key's tokens verify.
pub async fn emergency_rotation_drops_the_key_at_once(store: Store) {
    let config = test_config();
    let (clock, shared) = test_clock();
    let manager = manager(&store, &config, &shared).await;
    let before = manager.current();
    let dropped = kid_of(&before, KeyStatus::Current);
    let promoted = kid_of(&before, KeyStatus::Next);
    clock.advance(Duration::from_secs(60));
    manager.refresh().await.unwrap();
    let compromised = mint(&manager, clock.now(), Duration::from_secs(600));

    let events = manager
        .rotate_emergency(clock.now(), "admin:alice")
        .await
        .unwrap();
    let [
        KeyEvent::EmergencyRotated {
            dropped: d,
            to,
            next,
        },
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        (d.as_str(), to.as_str()),
        (dropped.as_str(), promoted.as_str())
    );
    let state = manager.current();
    assert_eq!(state.signer.kid().as_str(), promoted);
    assert_eq!(kids(&state), [promoted.clone(), next.as_str().to_owned()]);
    assert_eq!(
        verifier(&state).verify(&compromised, clock.now()),
        Err(VerifyError::UnknownKid)
    );
    let fresh = mint(&manager, clock.now(), Duration::from_secs(600));
    verifier(&state).verify(&fresh, clock.now()).unwrap();

    let audit = store
        .recent_audit(Some(audit_kind::EMERGENCY_ROTATION), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].record.actor, "admin:alice");
    assert_eq!(audit[0].record.subject.as_deref(), Some(dropped.as_str()));
    let all = store.load_all_keys().await.unwrap();
    let row = all.keys.iter().find(|k| k.kid == dropped).unwrap();
    assert_eq!(row.status, KeyStatus::Retired);
    assert!(row.private_key_ciphertext.is_empty());
}

/// Over a simulated week of rotations, every key that signs was in a JWKS published at least
/// `publish_lead` earlier (the bootstrap key excepted: nothing precedes it), every
/// unexpired token verifies against the JWKS of the moment, and retired keys are unpublished.
pub async fn keys_are_published_before_they_sign_for_a_week(store: Store) {
    let config = test_config();
    let (clock, shared) = test_clock();
    let manager = manager(&store, &config, &shared).await;
    let bootstrap_kid = kid_of(&manager.current(), KeyStatus::Current);
    let step = Duration::from_secs(5 * 60);
    let lifetime = config.max_token_lifetime;
    let mut first_published: HashMap<String, UnixTime> = HashMap::new();
    let mut tokens: Vec<(String, UnixTime)> = Vec::new();
    let mut rotations = 0;
    let end = UnixTime::from_secs(T0 + 7 * 24 * 3600);
    while clock.now() < end {
        let now = clock.now();
        let events = manager.rotate_scheduled_if_due(now).await.unwrap();
        rotations += events
            .iter()
            .filter(|e| matches!(e, KeyEvent::Rotated { .. }))
            .count();
        let state = manager.current();
        for kid in kids(&state) {
            first_published.entry(kid).or_insert(now);
        }
        let signer = state.signer.kid().as_str().to_owned();
        if signer != bootstrap_kid {
            let published = first_published[&signer];
            assert!(
                published.saturating_add(config.publish_lead) <= now,
                "{signer} signs at {now}, published at {published}"
            );
        }
        tokens.push((mint(&manager, now, lifetime), now.saturating_add(lifetime)));
        let verify = verifier(&state);
        tokens.retain(|(_, exp)| *exp > now);
        for (token, _) in &tokens {
            verify.verify(token, now).unwrap();
        }
        clock.advance(step);
    }
    assert_eq!(
        rotations,
        7 * 4 - 1,
        "one rotation every 6 h (the 28th falls on the end)"
    );
    let state = manager.current();
    let all = store.load_all_keys().await.unwrap();
    for row in all.keys.iter().filter(|k| k.status == KeyStatus::Retired) {
        assert!(
            !kids(&state).contains(&row.kid),
            "retired {} is still published",
            row.kid
        );
    }
    // current + next + the previous keys still inside their retire margin.
    assert!(state.jwks.keys.len() <= 3, "{:?}", kids(&state));
}

/// A new manager on the same store (a restart) keeps the keys; tokens minted before verify.
pub async fn restart_keeps_keys_and_tokens(store: Store) {
    let config = test_config();
    let (clock, shared) = test_clock();
    let first = manager(&store, &config, &shared).await;
    let token = mint(&first, clock.now(), Duration::from_secs(300));
    let before = first.current();
    drop(first);

    clock.advance(Duration::from_secs(30));
    let second = manager(&store, &config, &shared).await;
    let after = second.current();
    assert_eq!(after.generation, before.generation);
    assert_eq!(after.jwks, before.jwks);
    assert_eq!(after.signer.kid(), before.signer.kid());
    verifier(&after).verify(&token, clock.now()).unwrap();
    let again = mint(&second, clock.now(), Duration::from_secs(300));
    verifier(&before).verify(&again, clock.now()).unwrap();
}

/// Starting with the wrong KEK fails with a clear error naming the key, not garbage.
pub async fn wrong_kek_is_a_clear_error(store: Store) {
    let config = test_config();
    let (_, shared) = test_clock();
    drop(manager(&store, &config, &shared).await);
    let wrong = Kek::from_bytes(&[0x17; 32]).unwrap();
    let err = KeyManager::start(store.clone(), config, wrong, shared)
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Decrypt { .. }), "{err:?}");
    assert!(
        err.to_string().contains("wrong key-encryption key"),
        "{err}"
    );
}

/// Several managers on one store racing a due rotation: it happens once.
pub async fn racing_managers_rotate_exactly_once(store: Store) {
    let config = test_config();
    let (clock, shared) = test_clock();
    let mut managers = Vec::new();
    for _ in 0..4 {
        managers.push(manager(&store, &config, &shared).await);
    }
    let before = store.load_keys().await.unwrap().generation;
    clock.advance(config.rotation_interval);
    let now = clock.now();
    let racers = managers.iter().map(|m| {
        let m = m.clone();
        tokio::spawn(async move { m.rotate_scheduled_if_due(now).await.unwrap() })
    });
    let mut rotated = 0;
    for racer in racers.collect::<Vec<_>>() {
        rotated += racer
            .await
            .unwrap()
            .iter()
            .filter(|e| matches!(e, KeyEvent::Rotated { .. }))
            .count();
    }
    assert_eq!(rotated, 1);
    let after = store.load_keys().await.unwrap();
    assert_eq!(after.generation, before + 1);
    assert_eq!(
        after
            .keys
            .iter()
            .filter(|k| k.status == KeyStatus::Previous)
            .count(),
        1
    );
    assert_eq!(after.keys.len(), 3);
    assert_eq!(
        store
            .recent_audit(Some(audit_kind::ROTATION), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    for m in &managers {
        assert_eq!(m.refresh().await.unwrap().generation, after.generation);
    }
}

/// The stored ciphertext never contains the PKCS#8 key; retired rows hold no key at all.
pub async fn private_keys_are_encrypted_and_wiped(store: Store) {
    let config = test_config();
    let (clock, shared) = test_clock();
    let manager = manager(&store, &config, &shared).await;
    clock.advance(Duration::from_secs(60));
    manager
        .rotate_emergency(clock.now(), "admin:test")
        .await
        .unwrap();
    let kek = Kek::from_bytes(&TEST_KEK).unwrap();
    let all = store.load_all_keys().await.unwrap();
    assert_eq!(all.keys.len(), 3);
    for row in &all.keys {
        if row.status == KeyStatus::Retired {
            assert!(row.private_key_ciphertext.is_empty() && row.nonce.is_empty());
            continue;
        }
        let key = super::state::decrypt(row, &kek).unwrap();
        let der = key.dangerous_pkcs8_der();
        assert!(!der.is_empty());
        assert!(
            !row.private_key_ciphertext
                .windows(16)
                .any(|w| der.windows(16).any(|d| d == w)),
            "ciphertext of {} shares 16 bytes with its PKCS#8 key",
            row.kid
        );
        assert!(!format!("{row:?}").contains(&format!("{:?}", &der[..8])));
    }
}

/// A replica sees another replica's change after `refresh`, and subscribers are notified.
pub async fn replicas_converge_by_refresh(store: Store) {
    let config = test_config();
    let (clock, shared) = test_clock();
    let a = manager(&store, &config, &shared).await;
    let b = manager(&store, &config, &shared).await;
    let mut updates = b.subscribe();
    updates.mark_unchanged();
    clock.advance(Duration::from_secs(60));
    a.rotate_emergency(clock.now(), "admin:test").await.unwrap();
    assert_ne!(
        b.current().generation,
        a.current().generation,
        "b has not reloaded yet"
    );
    let state = b.refresh().await.unwrap();
    assert_eq!(state.generation, a.current().generation);
    assert_eq!(state.jwks, a.current().jwks);
    assert!(updates.has_changed().unwrap());
    assert_eq!(updates.borrow_and_update().generation, state.generation);
    // b signs with the new current key.
    let token = mint(&b, clock.now(), Duration::from_secs(60));
    verifier(&a.current()).verify(&token, clock.now()).unwrap();
}

/// Several replicas starting at once on an empty store bootstrap exactly one key pair.
pub async fn concurrent_bootstrap_happens_once(store: Store) {
    let config = test_config();
    let (_, shared) = test_clock();
    let starters = (0..4).map(|_| {
        let (store, config, clock) = (store.clone(), config.clone(), Arc::clone(&shared));
        tokio::spawn(async move {
            let kek = Kek::from_bytes(&TEST_KEK).unwrap();
            KeyManager::start(store, config, kek, clock).await.unwrap()
        })
    });
    let mut managers = Vec::new();
    for starter in starters.collect::<Vec<_>>() {
        managers.push(starter.await.unwrap());
    }
    let snapshot = store.load_all_keys().await.unwrap();
    assert_eq!((snapshot.generation, snapshot.keys.len()), (1, 2));
    for m in &managers {
        assert_eq!(m.current().jwks, managers[0].current().jwks);
    }
    assert_eq!(
        store
            .recent_audit(Some(audit_kind::BOOTSTRAP), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
