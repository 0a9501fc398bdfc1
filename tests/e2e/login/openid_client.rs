//! The certified openid-client, acting as ArgoCD would, logs alice in through the hub.

use super::env::{CLIENT_ID, CLUSTER, LoginEnv};

#[tokio::test]
async fn openid_client_logs_alice_in_through_the_hub_and_exchanges_for_a_cluster() {
    let env = LoginEnv::start("login-rp", "5m", "").await;
    let seen = env.openid_client("alice", "alice-pass", CLUSTER).await;

    // openid-client validated the id_token (signature via the hub's JWKS, iss, aud, nonce).
    let id = &seen["id_token_claims"];
    assert_eq!(id["iss"], env.hub.url());
    assert_eq!(id["aud"], CLIENT_ID);
    assert_eq!(id["sub"], "00ualice", "the stable upstream subject");
    // The IdP's id_token carries no groups (Okta's thin id_token): these came from its userinfo.
    assert_eq!(id["groups"], serde_json::json!(["k8s-admins"]));
    assert_eq!(
        seen["userinfo"]["groups"],
        serde_json::json!(["k8s-admins"])
    );
    assert!(seen["refresh_token_present"].as_bool().unwrap_or(false));

    // Token exchange: a token for exactly that cluster, for 60 seconds.
    let ex = &seen["exchange"];
    assert_eq!(
        ex["issued_token_type"], "urn:ietf:params:oauth:token-type:jwt",
        "{seen}"
    );
    let claims = &ex["claims"];
    assert_eq!(claims["aud"], format!("tether:cluster:{CLUSTER}"));
    assert_eq!(claims["iss"], env.hub.url());
    assert_eq!(claims["username"], id["username"]);
    assert_eq!(claims["groups"], serde_json::json!(["k8s-admins"]));
    assert_eq!(claims["sid"], id["sid"]);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 60);

    // Refresh worked and rotated the refresh token.
    assert_eq!(seen["refreshed"]["rotated"], true);
    assert_eq!(
        seen["refreshed"]["id_token_claims"]["groups"],
        serde_json::json!(["k8s-admins"])
    );
}

#[tokio::test]
async fn token_exchange_refuses_an_unknown_cluster() {
    let env = LoginEnv::start("login-target", "5m", "").await;
    let seen = env
        .openid_client("alice", "alice-pass", "no-such-cluster")
        .await;
    assert!(seen.get("exchange").is_none(), "{seen}");
    assert_eq!(seen["exchange_error"]["error"], "invalid_target", "{seen}");
}
