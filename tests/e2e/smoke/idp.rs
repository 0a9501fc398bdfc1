//! The upstream IdP fixture: login through the HTML form, thin id_token, admin API.

use tether_e2e::{IdpClient, IdpOptions, NodeScript, TestDir, UpstreamIdp, jwt_claims};

#[tokio::test]
async fn login_groups_only_at_userinfo() {
    let dir = TestDir::new("idp-login").expect("test dir");
    let idp = UpstreamIdp::start(&dir, IdpOptions::new())
        .await
        .expect("idp");

    let t = idp
        .login("alice", "alice-pass")
        .await
        .expect("alice logs in");
    let claims = jwt_claims(&t.id_token).expect("id_token claims");
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["aud"], "hub");
    assert!(
        claims.get("groups").is_none(),
        "groups must not be in the id_token: {claims}"
    );
    assert!(
        t.refresh_token.is_some(),
        "offline_access gives a refresh token"
    );

    let (status, info) = idp.userinfo(&t.access_token).await.expect("userinfo");
    assert_eq!(status, 200);
    assert_eq!(info["groups"], serde_json::json!(["k8s-admins"]));

    let err = idp
        .login("alice", "wrong")
        .await
        .expect_err("bad password is refused");
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn lock_refuses_refresh_and_group_changes_show_at_userinfo() {
    let dir = TestDir::new("idp-admin").expect("test dir");
    let other = IdpClient::new("other-app", "other-secret", &["http://127.0.0.1:9/cb"]);
    let idp = UpstreamIdp::start(
        &dir,
        IdpOptions::new()
            .client(IdpClient::new(
                "hub",
                "hub-secret",
                &["http://127.0.0.1:8/callback"],
            ))
            .client(other.clone()),
    )
    .await
    .expect("idp with two clients");

    let t = idp
        .login("alice", "alice-pass")
        .await
        .expect("alice logs in");
    let rt = t.refresh_token.clone().expect("refresh token");
    let (status, _) = idp.refresh(idp.client(), &rt).await.expect("refresh");
    assert_eq!(status, 200, "refresh works before the lock");

    idp.lock("alice").await.expect("lock");
    let (status, body) = idp.refresh(idp.client(), &rt).await.expect("refresh");
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = idp.userinfo(&t.access_token).await.expect("userinfo");
    assert_eq!(status, 401);
    idp.login("alice", "alice-pass")
        .await
        .expect_err("a locked user cannot log in");
    idp.unlock("alice").await.expect("unlock");
    idp.login("alice", "alice-pass")
        .await
        .expect("alice logs in again");

    idp.set_groups("bob", &["k8s-viewers", "auditors"])
        .await
        .expect("set groups");
    let b = idp
        .login_as(&other, "bob", "bob-pass")
        .await
        .expect("bob logs in at the second client");
    assert_eq!(jwt_claims(&b.id_token).expect("claims")["aud"], "other-app");
    let (_, info) = idp.userinfo(&b.access_token).await.expect("userinfo");
    assert_eq!(
        info["groups"],
        serde_json::json!(["k8s-viewers", "auditors"])
    );
}

#[tokio::test]
async fn certified_rp_logs_in_at_the_idp() {
    let dir = TestDir::new("idp-rp").expect("test dir");
    let idp = UpstreamIdp::start(&dir, IdpOptions::new())
        .await
        .expect("idp");
    let c = idp.client();
    let out = NodeScript::new("rp", "rp_full.mjs")
        .expect("rp fixture")
        .run(&[
            idp.issuer(),
            "carol",
            "carol-pass",
            &c.id,
            &c.secret,
            &c.redirect_uris[0],
        ])
        .await
        .expect("node rp_full.mjs");
    assert!(out.success(), "rp_full failed: {}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("rp output is JSON");
    assert_eq!(v["userinfo"]["groups"], serde_json::json!([]));
    assert_eq!(v["refreshed"]["has_at"], true);
}

#[tokio::test]
async fn real_browser_logs_in_through_the_form() {
    let dir = TestDir::new("idp-browser").expect("test dir");
    let idp = UpstreamIdp::start(&dir, IdpOptions::new())
        .await
        .expect("idp");
    let (c, pkce) = (idp.client(), tether_e2e::Pkce::new().expect("pkce"));
    let redirect = &c.redirect_uris[0];
    let start = idp.authorization_url(c, redirect, "openid groups", &pkce, "st-1", "n-1");
    let shot = dir.path().join("login-form.png");
    let out = NodeScript::new("browser", "browser_login.mjs")
        .expect("browser fixture")
        .run(&[
            &start,
            "bob",
            "bob-pass",
            redirect,
            &shot.display().to_string(),
        ])
        .await
        .expect("node browser_login.mjs");
    assert!(out.success(), "browser login failed: {}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let cb = v["callback"].as_str().expect("callback");
    assert!(
        cb.starts_with(redirect) && cb.contains("code=") && cb.contains("state=st-1"),
        "{cb}"
    );
    assert!(shot.is_file(), "screenshot written");
}
