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
    session_create_and_get,
    code_single_use_and_reuse_revokes,
    code_checks_client_redirect_and_pkce,
    refresh_rotates_and_reuse_revokes,
    refresh_concurrent_exactly_one,
    session_idle_and_absolute_expiry,
    login_single_use_and_expiry,
    revocation_identity_update_and_purge,
    upstream_check_due_and_claim,
    clusters_add_get_list_remove,
    upstream_grant_encrypted_at_rest,
    only_hashes_stored,
    join_token_single_use_under_concurrency,
    join_token_expiry_cluster_binding_and_hash_only,
    device_codes_lifecycle,
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

// ----- sessions, codes, refresh tokens, logins, clusters -----

const S0: i64 = 1_700_000_000;

fn at(secs: i64) -> tether_common::time::UnixTime {
    tether_common::time::UnixTime::from_secs(S0 + secs)
}

/// A session service over `store` with the default lifetimes and a fixed test KEK.
pub fn sample_sessions(store: &Store) -> crate::sessions::Sessions {
    let kek = crate::keys::Kek::from_bytes(&[0x42; 32]).unwrap();
    crate::sessions::Sessions::new(
        store.clone(),
        kek,
        crate::sessions::SessionsConfig::default(),
    )
}

fn alice() -> crate::sessions::SessionIdentity {
    crate::sessions::SessionIdentity {
        subject: "00u-alice".to_owned(),
        username: "alice@example.com".to_owned(),
        groups: vec!["k8s-admins".to_owned(), "k8s-dev".to_owned()],
    }
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const GRANT: &[u8] = br#"{"access_token":"upstream-access-PLAINTEXT-marker"}"#;

/// A session with a code issued for client `app` and `https://app.example/cb`.
async fn session_with_code(
    sessions: &crate::sessions::Sessions,
) -> (crate::sessions::Session, tether_common::secret::Secret) {
    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let challenge = crate::sessions::s256_challenge(VERIFIER);
    let code = sessions
        .issue_code(
            &session,
            "app",
            "https://app.example/cb",
            &challenge,
            Some("n-0S6_WzA2Mj"),
            "openid profile",
            at(1),
        )
        .await
        .unwrap();
    (session, code)
}

fn is_invalid_grant(result: &Result<impl std::fmt::Debug, crate::sessions::SessionError>) -> bool {
    matches!(result, Err(crate::sessions::SessionError::InvalidGrant(_)))
}

/// A created session reads back with every field; an unknown id is `NotFound`.
pub async fn session_create_and_get(store: Store) {
    use crate::sessions::{SessionError, SessionId};
    let sessions = sample_sessions(&store);
    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    assert!(
        session.id.as_str().len() >= 22,
        "128-bit id: {}",
        session.id
    );
    assert_eq!(session.subject, "00u-alice");
    assert_eq!(session.groups, ["k8s-admins", "k8s-dev"]);
    assert_eq!(session.created_at, at(0));
    assert_eq!(session.absolute_expires_at, at(12 * 3600));
    let read = sessions.session(&session.id, at(10)).await.unwrap();
    assert_eq!(read, session);
    assert!(matches!(
        sessions.session(&SessionId::new("nope"), at(10)).await,
        Err(SessionError::NotFound)
    ));
    let other = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    assert_ne!(other.id, session.id);
    let created = store
        .recent_audit(Some(crate::sessions::audit_kind::SESSION_CREATED), 10)
        .await
        .unwrap();
    assert_eq!(created.len(), 2);
    assert_eq!(
        created[0].record.subject.as_deref(),
        Some(other.id.as_str())
    );
}

/// A code redeems once; presenting it again revokes the session and is audited.
pub async fn code_single_use_and_reuse_revokes(store: Store) {
    use crate::sessions::SessionError;
    let sessions = sample_sessions(&store);
    let (session, code) = session_with_code(&sessions).await;
    let (redeemed, grant) = sessions
        .redeem_code(&code, "app", "https://app.example/cb", VERIFIER, at(5))
        .await
        .unwrap();
    assert_eq!(redeemed.id, session.id);
    assert_eq!(redeemed.last_used_at, at(5));
    assert_eq!(grant.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
    assert_eq!(grant.scope, "openid profile");
    let refresh = sessions
        .issue_refresh(&redeemed, "app", at(5))
        .await
        .unwrap();

    let again = sessions
        .redeem_code(&code, "app", "https://app.example/cb", VERIFIER, at(6))
        .await;
    assert!(is_invalid_grant(&again), "{again:?}");
    assert!(matches!(
        sessions.session(&session.id, at(7)).await,
        Err(SessionError::Revoked)
    ));
    let refreshed = sessions.refresh(&refresh, "app", at(8)).await;
    assert!(
        is_invalid_grant(&refreshed),
        "tokens of a revoked session are dead"
    );
    let reuse = store
        .recent_audit(Some(crate::sessions::audit_kind::CODE_REUSE), 10)
        .await
        .unwrap();
    assert_eq!(reuse.len(), 1);
    assert_eq!(
        reuse[0].record.subject.as_deref(),
        Some(session.id.as_str())
    );
    assert_eq!(reuse[0].record.outcome, AuditOutcome::Denied);

    let unknown = tether_common::secret::Secret::new("not-a-code");
    assert!(is_invalid_grant(
        &sessions
            .redeem_code(&unknown, "app", "https://app.example/cb", VERIFIER, at(9))
            .await
    ));
}

/// Wrong client, wrong redirect URI, wrong or malformed verifier, expiry: all
/// `invalid_grant`, and each attempt spends the code.
pub async fn code_checks_client_redirect_and_pkce(store: Store) {
    let sessions = sample_sessions(&store);
    let cases: [(&str, &str, &str, i64); 5] = [
        ("other", "https://app.example/cb", VERIFIER, 5),
        ("app", "https://app.example/cb2", VERIFIER, 5),
        (
            "app",
            "https://app.example/cb",
            "wrong-verifier-wrong-verifier-wrong-verifier",
            5,
        ),
        ("app", "https://app.example/cb", "short", 5),
        ("app", "https://app.example/cb", VERIFIER, 61),
    ];
    for (client, redirect, verifier, when) in cases {
        let (session, code) = session_with_code(&sessions).await;
        let result = sessions
            .redeem_code(&code, client, redirect, verifier, at(when))
            .await;
        assert!(
            is_invalid_grant(&result),
            "{client} {redirect} {verifier} {when}: {result:?}"
        );
        // The failed attempt spent the code: the right request now counts as a reuse.
        let retry = sessions
            .redeem_code(&code, "app", "https://app.example/cb", VERIFIER, at(when))
            .await;
        assert!(is_invalid_grant(&retry));
        assert!(sessions.session(&session.id, at(when)).await.is_err());
    }
    // The S256 check itself.
    let (_, code) = session_with_code(&sessions).await;
    let ok = sessions
        .redeem_code(&code, "app", "https://app.example/cb", VERIFIER, at(60))
        .await;
    assert!(ok.is_ok(), "last valid second: {ok:?}");
    // A malformed challenge is refused at issue time.
    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    assert!(matches!(
        sessions
            .issue_code(
                &session,
                "app",
                "https://app.example/cb",
                "plain",
                None,
                "openid",
                at(1)
            )
            .await,
        Err(crate::sessions::SessionError::InvalidRequest(_))
    ));
}

/// Each refresh rotates the token; a spent token revokes the whole session.
pub async fn refresh_rotates_and_reuse_revokes(store: Store) {
    use crate::sessions::{REASON_REFRESH_TOKEN_REUSE, SessionError};
    let sessions = sample_sessions(&store);
    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let first = sessions
        .issue_refresh(&session, "app", at(0))
        .await
        .unwrap();
    let (s1, second) = sessions.refresh(&first, "app", at(60)).await.unwrap();
    assert_eq!(s1.id, session.id);
    assert_eq!(s1.last_used_at, at(60));
    assert!(!second.ct_eq(&first));
    assert!(
        is_invalid_grant(&sessions.refresh(&second, "other-client", at(70)).await),
        "another client's token"
    );
    let (_, third) = sessions.refresh(&second, "app", at(120)).await.unwrap();
    assert_eq!(
        sessions
            .session(&session.id, at(121))
            .await
            .unwrap()
            .last_used_at,
        at(120)
    );

    // Replaying the first token: the whole session goes, the newest token with it.
    assert!(is_invalid_grant(
        &sessions.refresh(&first, "app", at(130)).await
    ));
    assert!(matches!(
        sessions.session(&session.id, at(131)).await,
        Err(SessionError::Revoked)
    ));
    assert!(is_invalid_grant(
        &sessions.refresh(&third, "app", at(132)).await
    ));
    let revoked = store
        .recent_audit(Some(crate::sessions::audit_kind::SESSION_REVOKED), 10)
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        revoked[0].record.reason.as_deref(),
        Some(REASON_REFRESH_TOKEN_REUSE)
    );
    assert_eq!(
        store
            .recent_audit(Some(crate::sessions::audit_kind::REFRESH_REUSE), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(is_invalid_grant(
        &sessions
            .refresh(
                &tether_common::secret::Secret::new("unknown"),
                "app",
                at(133)
            )
            .await
    ));
}

/// Many concurrent refreshes of one token: exactly one gets a new token.
pub async fn refresh_concurrent_exactly_one(store: Store) {
    let sessions = sample_sessions(&store);
    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let token = sessions
        .issue_refresh(&session, "app", at(0))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let sessions = sessions.clone();
            let token = token.clone();
            tokio::spawn(async move { sessions.refresh(&token, "app", at(30)).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(crate::sessions::SessionError::InvalidGrant(_)) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one refresh may win");
}

/// Idle timeout (from the last use) and absolute lifetime, with time moved by hand.
pub async fn session_idle_and_absolute_expiry(store: Store) {
    use crate::sessions::SessionError;
    let sessions = sample_sessions(&store);
    let idle = 15 * 60;
    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let token = sessions
        .issue_refresh(&session, "app", at(0))
        .await
        .unwrap();
    assert!(sessions.session(&session.id, at(idle - 1)).await.is_ok());
    assert!(matches!(
        sessions.session(&session.id, at(idle)).await,
        Err(SessionError::Expired)
    ));
    assert!(is_invalid_grant(
        &sessions.refresh(&token, "app", at(idle)).await
    ));

    // Refreshing just before each idle deadline keeps it alive until the absolute end.
    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let mut token = sessions
        .issue_refresh(&session, "app", at(0))
        .await
        .unwrap();
    let absolute = 12 * 3600;
    let mut t = 0;
    while t + idle - 1 < absolute {
        t += idle - 1;
        token = sessions.refresh(&token, "app", at(t)).await.unwrap().1;
    }
    assert!(
        sessions
            .session(&session.id, at(absolute - 1))
            .await
            .is_ok()
    );
    assert!(matches!(
        sessions.session(&session.id, at(absolute)).await,
        Err(SessionError::Expired)
    ));
    assert!(is_invalid_grant(
        &sessions.refresh(&token, "app", at(absolute)).await
    ));
}

/// A pending login is taken once; an expired one is refused.
pub async fn login_single_use_and_expiry(store: Store) {
    use crate::sessions::{AuthorizeRequest, SessionError};
    let sessions = sample_sessions(&store);
    let request = AuthorizeRequest {
        client_id: "app".to_owned(),
        redirect_uri: "https://app.example/cb".to_owned(),
        scope: "openid".to_owned(),
        state: Some("xyz".to_owned()),
        nonce: None,
        code_challenge: crate::sessions::s256_challenge(VERIFIER),
    };
    let pending = serde_json::json!({"state": "s", "nonce": "n", "pkce_verifier": "v"});
    let id = sessions
        .start_login(&request, &pending, at(0))
        .await
        .unwrap();
    let (got, got_pending): (AuthorizeRequest, serde_json::Value) =
        sessions.take_login(&id, at(10)).await.unwrap();
    assert_eq!(got, request);
    assert_eq!(got_pending, pending);
    assert!(matches!(
        sessions
            .take_login::<AuthorizeRequest, serde_json::Value>(&id, at(11))
            .await,
        Err(SessionError::NotFound)
    ));
    let id = sessions
        .start_login(&request, &pending, at(0))
        .await
        .unwrap();
    assert!(matches!(
        sessions
            .take_login::<AuthorizeRequest, serde_json::Value>(&id, at(600))
            .await,
        Err(SessionError::Expired)
    ));

    // Racing takes: exactly one wins.
    let id = sessions
        .start_login(&request, &pending, at(0))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (sessions, id) = (sessions.clone(), id.clone());
            tokio::spawn(async move {
                sessions
                    .take_login::<AuthorizeRequest, serde_json::Value>(&id, at(1))
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1);
}

/// Revocation (explicit and RFC 7009), identity updates and purging.
pub async fn revocation_identity_update_and_purge(store: Store) {
    use crate::sessions::{REASON_LOGOUT, SessionError, SessionIdentity};
    use tether_common::secret::Secret;
    let sessions = sample_sessions(&store);

    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    assert!(
        sessions
            .revoke(&session.id, REASON_LOGOUT, at(1))
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .revoke(&session.id, REASON_LOGOUT, at(2))
            .await
            .unwrap()
    );
    assert!(matches!(
        sessions.session(&session.id, at(3)).await,
        Err(SessionError::Revoked)
    ));

    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let token = sessions
        .issue_refresh(&session, "app", at(0))
        .await
        .unwrap();
    assert!(
        !sessions
            .revoke_by_refresh_token(&Secret::new("unknown"), "app", at(1))
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .revoke_by_refresh_token(&token, "other", at(1))
            .await
            .unwrap(),
        "another client cannot revoke"
    );
    assert!(sessions.session(&session.id, at(1)).await.is_ok());
    assert!(
        sessions
            .revoke_by_refresh_token(&token, "app", at(1))
            .await
            .unwrap()
    );
    assert!(sessions.session(&session.id, at(2)).await.is_err());

    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let interval = std::time::Duration::from_secs(300);
    assert!(!sessions.needs_upstream_check(&session, interval, at(299)));
    assert!(sessions.needs_upstream_check(&session, interval, at(300)));
    let demoted = SessionIdentity {
        groups: vec!["k8s-dev".to_owned()],
        ..alice()
    };
    let updated = sessions
        .update_identity(&session.id, &demoted, b"new grant", at(300))
        .await
        .unwrap();
    assert_eq!(updated.groups, ["k8s-dev"]);
    assert_eq!(updated.upstream_checked_at, at(300));
    assert!(!sessions.needs_upstream_check(&updated, interval, at(599)));
    assert_eq!(
        sessions.upstream_grant(&updated).await.unwrap().as_slice(),
        b"new grant"
    );

    // Purge: expired codes and logins go at once, dead sessions after the grace period.
    let (_, _code) = session_with_code(&sessions).await;
    sessions
        .start_login(&"request", &"pending", at(0))
        .await
        .unwrap();
    let counts = sessions.purge_expired(at(61)).await.unwrap();
    assert_eq!((counts.codes, counts.logins, counts.sessions), (1, 0, 0));
    let late = 12 * 3600 + 3600;
    let counts = sessions.purge_expired(at(late)).await.unwrap();
    assert_eq!(counts.logins, 1);
    assert_eq!(counts.sessions, 4, "{counts:?}");
    assert!(
        store
            .session_row(session.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
}

/// Sessions due for an upstream check: live ones only (not revoked, not idle, not past
/// their absolute lifetime), oldest check first, bounded; a claim (compare-and-set on
/// `upstream_checked_at`) succeeds for exactly one of racing callers.
pub async fn upstream_check_due_and_claim(store: Store) {
    use crate::sessions::REASON_LOGOUT;
    let sessions = sample_sessions(&store);
    let idle = crate::sessions::SessionsConfig::default()
        .idle_timeout
        .as_duration()
        .as_secs() as i64;
    let first = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let second = sessions
        .create(&alice(), GRANT, "app", at(100))
        .await
        .unwrap();
    let due = |checked_before: i64, now: i64, limit: u32| {
        let store = store.clone();
        async move {
            store
                .sessions_due_for_upstream_check(
                    at(checked_before).as_secs(),
                    at(now).as_secs(),
                    at(now - idle).as_secs(),
                    limit,
                )
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.id, d.upstream_checked_at - S0))
                .collect::<Vec<_>>()
        }
    };
    let (a, b) = (first.id.as_str().to_owned(), second.id.as_str().to_owned());
    assert_eq!(due(50, 120, 10).await, vec![(a.clone(), 0)]);
    assert_eq!(
        due(100, 120, 10).await,
        vec![(a.clone(), 0), (b.clone(), 100)]
    );
    assert_eq!(due(100, 120, 1).await, vec![(a.clone(), 0)]);
    // Idle: `first` was last used at 0, so at `idle` it is dead; `second` is not.
    assert_eq!(due(100, idle, 10).await, vec![(b.clone(), 100)]);
    // Past the absolute lifetime: nothing.
    let absolute = first.absolute_expires_at.as_secs() - S0;
    assert!(due(absolute, absolute, 10).await.is_empty());

    // The claim moves `upstream_checked_at`: exactly once from a given value.
    assert!(
        store
            .claim_upstream_check(&a, at(0).as_secs(), at(30).as_secs())
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_upstream_check(&a, at(0).as_secs(), at(31).as_secs())
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .session_row(&a)
            .await
            .unwrap()
            .unwrap()
            .upstream_checked_at,
        at(30).as_secs()
    );
    assert_eq!(due(20, 120, 10).await, Vec::<(String, i64)>::new());
    assert_eq!(due(30, 120, 10).await, vec![(a.clone(), 30)]);

    // Racing claims: one winner.
    let claims: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let id = b.clone();
            tokio::spawn(async move {
                store
                    .claim_upstream_check(&id, at(100).as_secs(), at(200 + i).as_secs())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for claim in claims {
        if claim.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);

    // A revoked session is neither due nor claimable.
    sessions
        .revoke(&first.id, REASON_LOGOUT, at(40))
        .await
        .unwrap();
    assert!(
        !store
            .claim_upstream_check(&a, at(30).as_secs(), at(60).as_secs())
            .await
            .unwrap()
    );
    assert!(due(1_000, 1_000, 10).await.iter().all(|(id, _)| *id != a));
}

/// Cluster registry rows: add (once), get, list, remove.
pub async fn clusters_add_get_list_remove(store: Store) {
    use crate::registry::{ClusterName, RegistryError};
    use std::collections::BTreeMap;
    let prod = ClusterName::parse("prod-eu").unwrap();
    let dev = ClusterName::parse("dev").unwrap();
    let labels = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    let row = store.add_cluster(&prod, &labels, at(0)).await.unwrap();
    assert_eq!(row.labels, labels);
    assert!(matches!(
        store.add_cluster(&prod, &BTreeMap::new(), at(1)).await,
        Err(RegistryError::AlreadyExists(name)) if name == prod
    ));
    store
        .add_cluster(&dev, &BTreeMap::new(), at(2))
        .await
        .unwrap();
    assert_eq!(store.cluster(&prod).await.unwrap(), Some(row));
    let names: Vec<_> = store
        .list_clusters()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name.to_string())
        .collect();
    assert_eq!(names, ["dev", "prod-eu"]);
    store.remove_cluster(&prod).await.unwrap();
    assert_eq!(store.cluster(&prod).await.unwrap(), None);
    assert!(matches!(
        store.remove_cluster(&prod).await,
        Err(RegistryError::NotFound(_))
    ));
    assert_eq!(store.list_clusters().await.unwrap().len(), 1);
}

/// The upstream grant is stored encrypted (bound to its session) and decrypts.
pub async fn upstream_grant_encrypted_at_rest(store: Store) {
    let sessions = sample_sessions(&store);
    let session = sessions
        .create(&alice(), GRANT, "app", at(0))
        .await
        .unwrap();
    let row = store
        .session_row(session.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert!(!contains(&row.upstream_grant_ciphertext, GRANT));
    assert!(!contains(
        &row.upstream_grant_ciphertext,
        b"PLAINTEXT-marker"
    ));
    assert_eq!(row.upstream_grant_nonce.len(), 12);
    assert_eq!(
        sessions.upstream_grant(&session).await.unwrap().as_slice(),
        GRANT
    );

    // Another KEK cannot open it.
    let other = crate::sessions::Sessions::new(
        store.clone(),
        crate::keys::Kek::from_bytes(&[0x43; 32]).unwrap(),
        crate::sessions::SessionsConfig::default(),
    );
    assert!(matches!(
        other.upstream_grant(&session).await,
        Err(crate::sessions::SessionError::Crypto(_))
    ));
    // Nor does a ciphertext moved to another session (the AAD is the session id).
    let victim = sessions
        .create(&alice(), b"other", "app", at(0))
        .await
        .unwrap();
    let kek = crate::keys::Kek::from_bytes(&[0x42; 32]).unwrap();
    assert!(
        kek.open_bound(
            crate::sessions::UPSTREAM_GRANT_PURPOSE,
            victim.id.as_str(),
            &row.upstream_grant_ciphertext,
            &row.upstream_grant_nonce,
        )
        .is_err()
    );
}

/// No refresh token, code or login id is stored or audited in clear: only their hashes.
pub async fn only_hashes_stored(store: Store) {
    let sessions = sample_sessions(&store);
    let (session, code) = session_with_code(&sessions).await;
    let login = sessions.start_login(&"req", &"pend", at(0)).await.unwrap();
    let (redeemed, _) = sessions
        .redeem_code(&code, "app", "https://app.example/cb", VERIFIER, at(2))
        .await
        .unwrap();
    assert_eq!(redeemed.id, session.id);
    let session = redeemed;
    let first = sessions
        .issue_refresh(&session, "app", at(3))
        .await
        .unwrap();
    let (_, second) = sessions.refresh(&first, "app", at(4)).await.unwrap();
    let _ = sessions.refresh(&first, "app", at(5)).await; // reuse: audited, revoked
    let values = store.dump_session_tables().await.unwrap();
    assert!(!values.is_empty());
    let secrets = [&code, &login, &first, &second];
    for secret in secrets {
        let plain = secret.expose().as_bytes();
        assert!(
            values.iter().all(|v| !contains(v, plain)),
            "a secret is stored in clear"
        );
        let hash = crate::sessions::secrets::token_hash(secret);
        assert_eq!(hash.len(), 64);
        assert!(
            hash.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
    for secret in [&code, &login, &first, &second] {
        let hash = crate::sessions::secrets::token_hash(secret);
        assert!(
            values.iter().any(|v| v.as_slice() == hash.as_bytes()),
            "the hash is what is stored"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A join token is spent by exactly one of many concurrent redemptions.
pub async fn join_token_single_use_under_concurrency(store: Store) {
    use crate::registry::ClusterName;
    let name = ClusterName::parse("prod-eu").unwrap();
    let (id, _secret, _) = store
        .create_join_token(&name, std::time::Duration::from_secs(600), at(0))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let id = id.clone();
            let name = name.clone();
            tokio::spawn(async move { store.redeem_join_token(&id, &name, at(1)).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(
        store.join_token(&id).await.unwrap().unwrap().used_at,
        Some(at(1))
    );
}

/// An expired token, or one for another cluster, is not spent; only the hash is stored.
pub async fn join_token_expiry_cluster_binding_and_hash_only(store: Store) {
    use crate::registry::ClusterName;
    let name = ClusterName::parse("prod-eu").unwrap();
    let other = ClusterName::parse("dev").unwrap();
    let (id, secret, expires) = store
        .create_join_token(&name, std::time::Duration::from_secs(60), at(0))
        .await
        .unwrap();
    assert_eq!(expires, at(60));
    let row = store.join_token(&id).await.unwrap().unwrap();
    assert_eq!(row.secret_hash, secret.hash());
    assert_ne!(row.secret_hash, secret.expose());
    assert!(row.secret_matches(&secret));
    assert!(!store.redeem_join_token(&id, &other, at(1)).await.unwrap());
    assert!(!store.redeem_join_token(&id, &name, at(60)).await.unwrap());
    assert_eq!(store.join_token(&id).await.unwrap().unwrap().used_at, None);
    assert!(store.redeem_join_token(&id, &name, at(59)).await.unwrap());
}

/// Device codes (RFC 8628): unique hashes, polling interval and `slow_down`, approve /
/// deny / consume each a compare-and-set won by exactly one caller, the per-minute failure
/// counter, the purge.
pub async fn device_codes_lifecycle(store: Store) {
    use super::{DeviceCodeRow, DeviceCodeStatus, DevicePoll};
    let row = |id: &str, fill: char| DeviceCodeRow {
        id: id.to_owned(),
        device_code_hash: fill.to_string().repeat(64),
        user_code_hash: fill.to_ascii_uppercase().to_string().repeat(64),
        client_id: "tetherctl".to_owned(),
        scope: "openid".to_owned(),
        created_at: at(0).as_secs(),
        expires_at: at(600).as_secs(),
        interval_secs: 5,
        last_polled_at: None,
        status: DeviceCodeStatus::Pending,
        session_id: None,
        decided_at: None,
        used_at: None,
    };
    let a = row("dev-a", 'a');
    assert!(store.insert_device_code(&a).await.unwrap());
    // Same user code hash (or device code hash): refused, nothing written.
    let clash = DeviceCodeRow {
        device_code_hash: "c".repeat(64),
        ..row("dev-x", 'a')
    };
    assert!(!store.insert_device_code(&clash).await.unwrap());
    assert!(store.device_code("dev-x").await.unwrap().is_none());
    assert_eq!(
        store
            .device_code_by_device_hash(&"a".repeat(64))
            .await
            .unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store
            .device_code_by_user_hash(&"A".repeat(64))
            .await
            .unwrap()
            .map(|r| r.id),
        Some("dev-a".to_owned())
    );

    // Polling: in time, too fast (interval + 5), in time again after the new interval.
    let poll = |now| store.record_device_poll("dev-a", at(now).as_secs(), 5);
    assert_eq!(poll(0).await.unwrap(), DevicePoll::InTime);
    assert_eq!(poll(4).await.unwrap(), DevicePoll::SlowDown(10));
    assert_eq!(poll(13).await.unwrap(), DevicePoll::SlowDown(15));
    assert_eq!(poll(28).await.unwrap(), DevicePoll::InTime);
    assert_eq!(
        store
            .device_code("dev-a")
            .await
            .unwrap()
            .unwrap()
            .last_polled_at,
        Some(at(28).as_secs())
    );

    // Approve needs a live pending code and a real session; exactly one racer wins.
    let sessions = sample_sessions(&store);
    let session = sessions
        .create(&alice(), GRANT, "tetherctl", at(0))
        .await
        .unwrap();
    let sid = session.id.as_str().to_owned();
    assert!(
        !store
            .approve_device_code("dev-a", &sid, at(600).as_secs())
            .await
            .unwrap(),
        "expired"
    );
    let approvals: Vec<_> = (0..4)
        .map(|_| {
            let (store, sid) = (store.clone(), sid.clone());
            tokio::spawn(async move {
                store
                    .approve_device_code("dev-a", &sid, at(30).as_secs())
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for approval in approvals {
        if approval.await.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert!(
        !store
            .deny_device_code("dev-a", at(31).as_secs())
            .await
            .unwrap()
    );
    let approved = store.device_code("dev-a").await.unwrap().unwrap();
    assert_eq!(approved.status, DeviceCodeStatus::Approved);
    assert_eq!(approved.session_id.as_deref(), Some(sid.as_str()));
    assert_eq!(approved.decided_at, Some(at(30).as_secs()));

    // Consume: once.
    let consumes: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.consume_device_code("dev-a", at(35).as_secs()).await })
        })
        .collect();
    let mut won = 0;
    for consume in consumes {
        if consume.await.unwrap().unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    let consumed = store.device_code("dev-a").await.unwrap().unwrap();
    assert_eq!(consumed.status, DeviceCodeStatus::Consumed);
    assert_eq!(consumed.used_at, Some(at(35).as_secs()));

    // Deny: pending only; a denied code can be neither approved nor consumed.
    let b = row("dev-b", 'b');
    assert!(store.insert_device_code(&b).await.unwrap());
    assert!(
        store
            .deny_device_code("dev-b", at(10).as_secs())
            .await
            .unwrap()
    );
    assert!(
        !store
            .deny_device_code("dev-b", at(11).as_secs())
            .await
            .unwrap()
    );
    assert!(
        !store
            .approve_device_code("dev-b", &sid, at(12).as_secs())
            .await
            .unwrap()
    );
    assert!(
        !store
            .consume_device_code("dev-b", at(12).as_secs())
            .await
            .unwrap()
    );
    assert_eq!(
        store.device_code("dev-b").await.unwrap().unwrap().status,
        DeviceCodeStatus::Denied
    );

    // The failure counter, per window.
    let window = at(60).as_secs();
    assert_eq!(store.user_code_failures(window).await.unwrap(), 0);
    for n in 1..=3 {
        assert_eq!(store.count_user_code_failure(window).await.unwrap(), n);
    }
    assert_eq!(store.count_user_code_failure(window + 60).await.unwrap(), 1);
    assert_eq!(store.user_code_failures(window).await.unwrap(), 3);

    // Purge: expired codes (whatever their status) and old windows.
    let c = DeviceCodeRow {
        expires_at: at(1200).as_secs(),
        ..row("dev-c", 'c')
    };
    assert!(store.insert_device_code(&c).await.unwrap());
    assert_eq!(
        store.purge_device_codes(at(599).as_secs()).await.unwrap(),
        0
    );
    assert_eq!(
        store.purge_device_codes(at(600).as_secs()).await.unwrap(),
        2
    );
    assert!(store.device_code("dev-a").await.unwrap().is_none());
    assert!(store.device_code("dev-c").await.unwrap().is_some());
    assert_eq!(store.user_code_failures(window).await.unwrap(), 0);
    // The session service's purge includes device codes.
    sessions.purge_expired(at(1199)).await.unwrap();
    assert!(store.device_code("dev-c").await.unwrap().is_some());
    sessions.purge_expired(at(1200)).await.unwrap();
    assert!(store.device_code("dev-c").await.unwrap().is_none());
}
