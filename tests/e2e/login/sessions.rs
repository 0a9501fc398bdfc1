//! Sessions against the real IdP: a locked account ends the session at the next refresh,
//! changed groups reach the next token, and a replayed refresh token revokes the session.

use std::time::Duration;

use tether_e2e::jwt_claims;

use super::env::{CLUSTER, LoginEnv};

fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[tokio::test]
async fn a_locked_account_cannot_refresh_and_its_session_is_gone() {
    let env = LoginEnv::start("login-lock", "1s", "").await;
    let tokens = env.login("alice", "alice-pass").await;
    let (status, _) = env.exchange(str_of(&tokens, "access_token"), CLUSTER).await;
    assert_eq!(status, 200, "exchange works while the session lives");

    env.idp.lock("alice").await.expect("lock alice at the IdP");
    // Past the re-check interval the next refresh asks the IdP, which refuses.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = env.refresh(str_of(&tokens, "refresh_token")).await;
    assert_eq!(
        (status, str_of(&body, "error")),
        (400, "invalid_grant"),
        "{body}"
    );

    // The session is gone: its still-unexpired access token no longer buys cluster tokens.
    let (status, body) = env.exchange(str_of(&tokens, "access_token"), CLUSTER).await;
    assert_eq!(
        (status, str_of(&body, "error")),
        (400, "invalid_grant"),
        "{body}"
    );
}

#[tokio::test]
async fn changed_groups_appear_in_the_next_token() {
    let env = LoginEnv::start("login-groups", "1s", "").await;
    let tokens = env.login("bob", "bob-pass").await;
    let id = jwt_claims(str_of(&tokens, "id_token")).expect("claims");
    assert_eq!(id["groups"], serde_json::json!(["k8s-viewers"]));

    env.idp
        .set_groups("bob", &["k8s-viewers", "k8s-admins"])
        .await
        .expect("set groups");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, refreshed) = env.refresh(str_of(&tokens, "refresh_token")).await;
    assert_eq!(status, 200, "{refreshed}");
    let id = jwt_claims(str_of(&refreshed, "id_token")).expect("claims");
    // Groups come sorted and deduplicated.
    assert_eq!(
        id["groups"],
        serde_json::json!(["k8s-admins", "k8s-viewers"])
    );
    let (status, ex) = env
        .exchange(str_of(&refreshed, "access_token"), CLUSTER)
        .await;
    assert_eq!(status, 200, "{ex}");
    let cluster = jwt_claims(str_of(&ex, "access_token")).expect("claims");
    assert_eq!(
        cluster["groups"],
        serde_json::json!(["k8s-admins", "k8s-viewers"])
    );
}

#[tokio::test]
async fn replaying_a_used_refresh_token_revokes_the_session() {
    let env = LoginEnv::start("login-replay", "5m", "").await;
    let tokens = env.login("alice", "alice-pass").await;
    let first = str_of(&tokens, "refresh_token").to_owned();
    let (status, second) = env.refresh(&first).await;
    assert_eq!(status, 200, "{second}");
    let second = str_of(&second, "refresh_token").to_owned();
    assert_ne!(first, second, "rotated on use");

    // An attacker replays the first token: refused, and the whole session ends...
    let (status, body) = env.refresh(&first).await;
    assert_eq!(
        (status, str_of(&body, "error")),
        (400, "invalid_grant"),
        "{body}"
    );
    // ...so the legitimate holder of the newest token is logged out too.
    let (status, body) = env.refresh(&second).await;
    assert_eq!(
        (status, str_of(&body, "error")),
        (400, "invalid_grant"),
        "{body}"
    );
}

#[tokio::test]
async fn revocation_and_refresh_tokens_are_stored_only_as_hashes() {
    let env = LoginEnv::start("login-revoke", "5m", "").await;
    let tokens = env.login("alice", "alice-pass").await;
    let refresh = str_of(&tokens, "refresh_token");
    // Nothing in the database holds the token itself.
    let mut dump = std::fs::read(env.db_file()).expect("read hub.db");
    // SQLite in WAL mode: recent writes sit in the -wal file.
    let wal = env.db_file().with_extension("db-wal");
    dump.extend(std::fs::read(&wal).unwrap_or_default());
    let needle = refresh.as_bytes();
    assert!(
        !dump.windows(needle.len()).any(|w| w == needle),
        "the refresh token is stored in clear"
    );
    // RFC 7009: revoking it ends the session.
    let resp = env
        .hub
        .http()
        .post(format!("{}/revoke", env.hub.url()))
        .basic_auth(super::env::CLIENT_ID, Some(super::env::CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(super::env::form_body(&[
            ("token", refresh),
            ("token_type_hint", "refresh_token"),
        ]))
        .send()
        .await
        .expect("POST /revoke");
    assert_eq!(resp.status().as_u16(), 200);
    let (status, body) = env.refresh(refresh).await;
    assert_eq!(
        (status, str_of(&body, "error")),
        (400, "invalid_grant"),
        "{body}"
    );
}
