//! Signing keys across real processes: a restart keeps them, an emergency rotation reaches a
//! running hub, and two hubs on one PostgreSQL rotate exactly once per schedule.

use std::time::{Duration, Instant};

use sqlx::Row as _;
use tether_common::token::VerifyError;
use tether_e2e::{Hub, HubOptions, Postgres, TestDir, free_port};

use super::support::{
    admin_token, create_database, hub_cmd, hub_flags, jwks, kids, postgres_config, verify_admin,
    write_kek,
};

#[tokio::test]
async fn a_restart_keeps_keys_and_verifies_tokens_minted_before_it() {
    let dir = TestDir::new("hub-restart").expect("test dir");
    let hub = Hub::start(&dir, HubOptions::dev("hub")).await.expect("hub");
    let token = admin_token(&hub, "before-restart").await;
    let before = jwks(&hub).await;
    verify_admin(&hub, &before, &token).expect("verifies before the restart");

    let hub = hub.restart().await.expect("restart");
    let after = jwks(&hub).await;
    assert_eq!(kids(&before), kids(&after), "the same keys after a restart");
    let claims = verify_admin(&hub, &after, &token).expect("verifies after the restart");
    assert_eq!(claims.username, "before-restart");
}

#[tokio::test]
async fn an_emergency_rotation_reaches_the_running_hub() {
    let dir = TestDir::new("hub-emergency").expect("test dir");
    let hub = Hub::start(&dir, HubOptions::dev("hub")).await.expect("hub");
    let token = admin_token(&hub, "doomed").await;
    let before = jwks(&hub).await;
    let dropped = kids(&before)[0].clone();
    verify_admin(&hub, &before, &token).expect("verifies before");

    let flags = hub_flags(&hub);
    let mut args = vec!["keys", "rotate", "--emergency"];
    args.extend(flags.iter().map(String::as_str));
    let out = hub_cmd(&args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&dropped));

    // The running hub re-reads the keys every refresh_interval (5 s in dev mode).
    let started = Instant::now();
    let after = loop {
        let now = jwks(&hub).await;
        if !kids(&now).contains(&dropped) {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the dropped key is still served"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(matches!(
        verify_admin(&hub, &after, &token),
        Err(VerifyError::UnknownKid)
    ));
    // The promoted key was `next` before, so it was published before it signed.
    let fresh = admin_token(&hub, "after").await;
    verify_admin(&hub, &after, &fresh).expect("a token from the new current key verifies");
    let new_kid = &kids(&after)[0];
    assert!(
        kids(&before).contains(new_kid),
        "{new_kid} was published before it signed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_postgres_rotate_once() {
    let dir = TestDir::new("hub-ha").expect("test dir");
    let pg = Postgres::start(&dir).await.expect("postgres");
    create_database(&pg, "hub").await;
    write_kek(&dir.path().join("kek"));
    // Rotate every 2 s once the next key has been published 4 s; replicas re-read every 1 s.
    let keys = "  rotation_interval: 2s\n  publish_lead: 4s\n  refresh_interval: 1s\n  max_token_lifetime: 10m";
    let (port_a, port_b) = (free_port().expect("port"), free_port().expect("port"));
    let a = Hub::start(
        &dir,
        HubOptions::with_config("hub-a", &postgres_config(&pg, "hub", port_a, keys)).port(port_a),
    )
    .await
    .expect("hub a");
    let b = Hub::start(
        &dir,
        HubOptions::with_config("hub-b", &postgres_config(&pg, "hub", port_b, keys)).port(port_b),
    )
    .await
    .expect("hub b");

    // Let several rotations fall due while both replicas race for each.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let series = r#"tether_hub_key_rotations_total{kind="scheduled"}"#;
    let by_a = a.metric(series).await.expect("metrics a").unwrap_or(0.0);
    let by_b = b.metric(series).await.expect("metrics b").unwrap_or(0.0);
    drop((a, b));

    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(&pg.url_for("hub"))
        .await
        .expect("connect");
    let audited: i64 = sqlx::query("SELECT count(*) AS n FROM audit_log WHERE kind = $1")
        .bind(tether_hub::keys::audit_kind::ROTATION)
        .fetch_one(&mut db)
        .await
        .expect("count rotations")
        .get("n");
    let keys_made: i64 = sqlx::query("SELECT count(*) AS n FROM signing_keys")
        .fetch_one(&mut db)
        .await
        .expect("count keys")
        .get("n");
    let bootstraps: i64 = sqlx::query("SELECT count(*) AS n FROM audit_log WHERE kind = $1")
        .bind(tether_hub::keys::audit_kind::BOOTSTRAP)
        .fetch_one(&mut db)
        .await
        .expect("count bootstraps")
        .get("n");
    db.close().await.ok();

    assert_eq!(bootstraps, 1, "the key set was bootstrapped once");
    assert!(
        audited >= 2,
        "expected at least two rotations in 14 s, saw {audited}"
    );
    // Each rotation creates exactly one new key: 2 bootstrap keys + one per rotation. A
    // rotation done twice would have made an extra key and an extra audit record.
    assert_eq!(keys_made, 2 + audited, "keys made vs rotations audited");
    assert_eq!(
        (by_a + by_b) as i64,
        audited,
        "rotations counted by the replicas (a {by_a}, b {by_b}) vs audited"
    );
}
