//! The storage conformance suite: every case runs against SQLite (file and memory) in the
//! hub's unit tests, and against a throwaway PostgreSQL in the e2e suite
//! (`tests/e2e/hub/store.rs`).
//!
//! Each case takes a FRESH, migrated [`Store`] (an empty database) and panics on failure.
//! [`postgres_fresh_store`] makes one on a PostgreSQL server (a new database per call).

// A test suite: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;

use super::{
    AuditOutcome, AuditRecord, KeyChange, KeyRow, KeyStatus, Store, StoreConfig, StoreError,
};

/// A boxed conformance case.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A named conformance case: call it with a fresh store.
pub type Case = (&'static str, fn(Store) -> CaseFuture);

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every storage case, by name.
        pub const CASES: &[Case] = &[$((stringify!($name), |s| Box::pin($name(s)))),*];
    };
}

cases!(
    migrate_is_idempotent,
    empty_store_has_generation_zero,
    key_epoch_compare_and_set,
    key_lifecycle_rows,
    at_most_one_current_key,
    wrong_state_transition_rolls_back,
    concurrent_compare_and_set_exactly_once,
    audit_roundtrip,
    audit_refuses_tokens,
);

/// Connects to the PostgreSQL admin URL `admin_url`, creates a uniquely named
/// database and returns a migrated store on it. The database is left for the throwaway
/// server to take with it.
pub async fn postgres_fresh_store(admin_url: &str) -> Store {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the PostgreSQL admin URL");
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("random name");
    let name = format!(
        "tether_test_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    admin.close().await.ok();
    let mut url = url::Url::parse(admin_url).expect("admin URL");
    url.set_path(&format!("/{name}"));
    let config = StoreConfig::new(super::DatabaseUrl::parse(url.as_str()).expect("database URL"));
    Store::connect(&config)
        .await
        .expect("connect to the test database")
}

/// A key row with dummy key material (the store does not interpret it).
pub fn sample_key(kid: &str, status: KeyStatus, created_at: i64) -> KeyRow {
    KeyRow {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        status,
        created_at,
        activated_at: (status == KeyStatus::Current).then_some(created_at),
        deactivated_at: None,
        retire_after: None,
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        private_key_ciphertext: vec![0xA5; 48],
        nonce: vec![7; 12],
    }
}

/// Running the migrations again is a no-op; the store answers pings.
pub async fn migrate_is_idempotent(store: Store) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

/// A new database has the epoch row at generation 0 and no keys.
pub async fn empty_store_has_generation_zero(store: Store) {
    let snapshot = store.load_keys().await.unwrap();
    assert_eq!(snapshot.generation, 0);
    assert!(snapshot.keys.is_empty());
    assert_eq!(store.load_all_keys().await.unwrap().generation, 0);
}

/// A change set applies only at the generation it was planned on; a stale one writes nothing.
pub async fn key_epoch_compare_and_set(store: Store) {
    let audit = AuditRecord::new(100, "test.cas", "system", AuditOutcome::Success);
    let first = [KeyChange::Insert(sample_key("k1", KeyStatus::Current, 100))];
    assert_eq!(
        store
            .apply_key_changes(0, &first, std::slice::from_ref(&audit))
            .await
            .unwrap(),
        Some(1)
    );

    let stale = [KeyChange::Insert(sample_key("k2", KeyStatus::Next, 101))];
    assert_eq!(
        store
            .apply_key_changes(0, &stale, std::slice::from_ref(&audit))
            .await
            .unwrap(),
        None
    );

    let snapshot = store.load_keys().await.unwrap();
    assert_eq!(snapshot.generation, 1);
    assert_eq!(
        snapshot
            .keys
            .iter()
            .map(|k| k.kid.as_str())
            .collect::<Vec<_>>(),
        ["k1"]
    );
    assert_eq!(
        store
            .recent_audit(Some("test.cas"), 10)
            .await
            .unwrap()
            .len(),
        1,
        "the stale audit record was rolled back"
    );

    assert_eq!(
        store.apply_key_changes(1, &stale, &[]).await.unwrap(),
        Some(2)
    );
    assert_eq!(store.load_keys().await.unwrap().keys.len(), 2);
}

/// next -> current -> previous -> retired round-trips every column; retiring wipes the key.
pub async fn key_lifecycle_rows(store: Store) {
    let current = sample_key("a", KeyStatus::Current, 10);
    let next = sample_key("b", KeyStatus::Next, 10);
    let g = store
        .apply_key_changes(
            0,
            &[
                KeyChange::Insert(current.clone()),
                KeyChange::Insert(next.clone()),
            ],
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    let loaded = store.load_keys().await.unwrap();
    assert_eq!(loaded.keys, vec![current.clone(), next.clone()]);

    let rotate = [
        KeyChange::Demote {
            kid: "a".into(),
            at: 50,
            retire_after: 90,
        },
        KeyChange::Activate {
            kid: "b".into(),
            at: 50,
        },
        KeyChange::Insert(sample_key("c", KeyStatus::Next, 50)),
    ];
    let g = store
        .apply_key_changes(g, &rotate, &[])
        .await
        .unwrap()
        .unwrap();
    let loaded = store.load_keys().await.unwrap();
    let by_kid = |kid: &str| loaded.keys.iter().find(|k| k.kid == kid).cloned().unwrap();
    let a = by_kid("a");
    assert_eq!(
        (a.status, a.deactivated_at, a.retire_after),
        (KeyStatus::Previous, Some(50), Some(90))
    );
    assert_eq!(
        a.private_key_ciphertext, current.private_key_ciphertext,
        "previous keys keep their ciphertext"
    );
    let b = by_kid("b");
    assert_eq!((b.status, b.activated_at), (KeyStatus::Current, Some(50)));
    assert_eq!(by_kid("c").status, KeyStatus::Next);

    let retire = [KeyChange::Retire {
        kid: "a".into(),
        from: KeyStatus::Previous,
        at: 95,
    }];
    store
        .apply_key_changes(g, &retire, &[])
        .await
        .unwrap()
        .unwrap();
    let live = store.load_keys().await.unwrap();
    assert!(
        live.keys.iter().all(|k| k.kid != "a"),
        "retired keys are not loaded as live"
    );
    let all = store.load_all_keys().await.unwrap();
    let a = all.keys.iter().find(|k| k.kid == "a").unwrap();
    assert_eq!(a.status, KeyStatus::Retired);
    assert!(
        a.private_key_ciphertext.is_empty() && a.nonce.is_empty(),
        "retiring wipes the private key"
    );
    assert_eq!(
        a.deactivated_at,
        Some(50),
        "retiring keeps the first deactivation time"
    );
    assert_eq!(all.keys.len(), 3);
}

/// The schema refuses a second `current` key; the whole change set rolls back.
pub async fn at_most_one_current_key(store: Store) {
    let changes = [
        KeyChange::Insert(sample_key("x", KeyStatus::Current, 1)),
        KeyChange::Insert(sample_key("y", KeyStatus::Current, 1)),
    ];
    let err = store.apply_key_changes(0, &changes, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Query(_)), "{err:?}");
    let snapshot = store.load_keys().await.unwrap();
    assert_eq!((snapshot.generation, snapshot.keys.len()), (0, 0));
}

/// A transition from the wrong state is an error and nothing (not even the epoch) changes.
pub async fn wrong_state_transition_rolls_back(store: Store) {
    let g = store
        .apply_key_changes(
            0,
            &[KeyChange::Insert(sample_key("n", KeyStatus::Next, 1))],
            &[],
        )
        .await
        .unwrap()
        .unwrap();
    let bad = [KeyChange::Demote {
        kid: "n".into(),
        at: 2,
        retire_after: 3,
    }];
    let err = store.apply_key_changes(g, &bad, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let snapshot = store.load_keys().await.unwrap();
    assert_eq!(snapshot.generation, g);
    assert_eq!(snapshot.keys[0].status, KeyStatus::Next);
}

/// Many writers racing from the same generation: exactly one wins.
pub async fn concurrent_compare_and_set_exactly_once(store: Store) {
    let writers = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let kid = format!("race-{i}");
            let audit = AuditRecord::new(1, "test.race", "system", AuditOutcome::Success)
                .with_subject(kid.clone());
            store
                .apply_key_changes(
                    0,
                    &[KeyChange::Insert(sample_key(&kid, KeyStatus::Current, 1))],
                    &[audit],
                )
                .await
        })
    });
    let mut winners = 0;
    for writer in writers.collect::<Vec<_>>() {
        if writer.await.unwrap().unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let snapshot = store.load_keys().await.unwrap();
    assert_eq!((snapshot.generation, snapshot.keys.len()), (1, 1));
    assert_eq!(
        store
            .recent_audit(Some("test.race"), 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Audit records come back as written, newest first, filterable by kind.
pub async fn audit_roundtrip(store: Store) {
    let first = AuditRecord::new(1000, "login", "alice", AuditOutcome::Success)
        .with_subject("session-1")
        .with_details(serde_json::json!({"client": "kubectl", "groups": ["dev", "ops"], "n": 2}));
    let second = AuditRecord::new(1001, "token.exchange", "alice", AuditOutcome::Denied)
        .with_reason("audience not allowed");
    let third = AuditRecord::new(1002, "login", "bob", AuditOutcome::Failure);
    for record in [&first, &second, &third] {
        store.append_audit(record).await.unwrap();
    }
    let all = store.recent_audit(None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|r| &r.record).collect::<Vec<_>>(),
        [&third, &second, &first]
    );
    assert!(all[0].id > all[1].id && all[1].id > all[2].id);
    let logins = store.recent_audit(Some("login"), 10).await.unwrap();
    assert_eq!(logins.len(), 2);
    assert_eq!(store.recent_audit(None, 1).await.unwrap().len(), 1);
}

/// A record carrying something shaped like a JWT is refused and not written.
pub async fn audit_refuses_tokens(store: Store) {
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
    let record = AuditRecord::new(1, "token.issued", "alice", AuditOutcome::Success)
        .with_details(serde_json::json!({"nested": [{"token": token}]}));
    let err = store.append_audit(&record).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AuditContainsToken { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(token));
    let in_reason =
        AuditRecord::new(1, "x", "a", AuditOutcome::Failure).with_reason(format!("bad {token}"));
    assert!(store.append_audit(&in_reason).await.is_err());
    assert!(store.recent_audit(None, 10).await.unwrap().is_empty());
}
