//! The certified openid-client discovers the hub (SQLite and PostgreSQL, ES256 and RS256),
//! loads its JWKS, and verifies a token the hub signed.

use serde_json::Value;
use tether_e2e::{Hub, HubOptions, NodeScript, Postgres, TestDir, free_port};

use super::support::{ADMIN_AUDIENCE, admin_token, create_database, postgres_config, write_kek};

/// Runs `tests/fixtures/rp/discover.mjs` against `hub`, verifying `token`.
async fn discover(hub: &Hub, token: &str) -> Value {
    let ca = hub.ca_file().display().to_string();
    let out = NodeScript::new("rp", "discover.mjs")
        .expect("rp fixture")
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .run(&[&hub.url(), token, ADMIN_AUDIENCE])
        .await
        .expect("run discover.mjs");
    assert!(
        out.success(),
        "openid-client failed: {}\n{}",
        out.stderr,
        out.stdout
    );
    serde_json::from_str(out.stdout.trim()).expect("discover.mjs prints JSON")
}

/// What every hub must show openid-client: its issuer, a JWKS with `current` and `next`
/// (public keys only) whose cache lifetime is short, and a verifiable token.
fn assert_conformant(hub: &Hub, seen: &Value, alg: &str) {
    assert_eq!(seen["issuer"], hub.url());
    assert_eq!(
        seen["jwks_uri"],
        format!("{}/.well-known/jwks.json", hub.url())
    );
    assert_eq!(seen["algs"], serde_json::json!([alg]));
    let keys = seen["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "current + next published: {keys:?}");
    assert!(keys.iter().all(|k| k["alg"] == alg));
    // max-age is a quarter of keys.publish_lead (default 10m): a next key is published
    // four cache lifetimes before it signs.
    assert_eq!(seen["cache_control"], "public, max-age=150");
    let payload = &seen["verified"]["payload"];
    assert_eq!(payload["iss"], hub.url());
    assert_eq!(payload["aud"], ADMIN_AUDIENCE);
    assert_eq!(payload["sub"], "admin:e2e");
    let kid = &seen["verified"]["header"]["kid"];
    assert!(
        keys.iter().any(|k| &k["kid"] == kid),
        "signed by a published key"
    );
}

#[tokio::test]
async fn openid_client_discovers_a_sqlite_hub_and_verifies_its_token() {
    let dir = TestDir::new("hub-sqlite").expect("test dir");
    let hub = Hub::start(&dir, HubOptions::dev("hub")).await.expect("hub");
    let token = admin_token(&hub, "e2e").await;
    let seen = discover(&hub, &token).await;
    assert_conformant(&hub, &seen, "ES256");
}

#[tokio::test]
async fn openid_client_discovers_a_postgres_hub_signing_rs256() {
    let dir = TestDir::new("hub-pg").expect("test dir");
    let pg = Postgres::start(&dir).await.expect("postgres");
    create_database(&pg, "hub").await;
    write_kek(&dir.path().join("kek"));
    let port = free_port().expect("port");
    let yaml = postgres_config(&pg, "hub", port, "  algorithm: RS256");
    let hub = Hub::start(&dir, HubOptions::with_config("hub", &yaml).port(port))
        .await
        .expect("hub on PostgreSQL");
    let token = admin_token(&hub, "e2e").await;
    let seen = discover(&hub, &token).await;
    assert_conformant(&hub, &seen, "RS256");
}
