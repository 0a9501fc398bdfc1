//! `/token`: the code grant, refresh rotation with upstream re-validation, token exchange;
//! every error with its RFC code.

use std::time::Duration;

use axum::http::{StatusCode, header};
use serde_json::Value;

use crate::http::test_support::{expect_json, json};
use crate::oidc::test_support::{
    CLI, CLI_REDIRECT, Hub, Revalidation, SPA, SPA_REDIRECT, VERIFIER, WEB, WEB_REDIRECT, payload,
};

async fn error_of(response: axum::response::Response, status: StatusCode) -> String {
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = expect_json(response, status).await;
    body["error"].as_str().unwrap().to_owned()
}

async fn refresh(hub: &Hub, client: &str, token: &str) -> axum::response::Response {
    hub.post_form(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client),
        ],
        None,
    )
    .await
}

async fn exchange(
    hub: &Hub,
    client: &str,
    access_token: &str,
    audience: &str,
) -> axum::response::Response {
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", access_token),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("audience", audience),
    ];
    if client == WEB {
        hub.post_form(
            "/token",
            &form,
            Some((WEB, crate::oidc::test_support::WEB_SECRET)),
        )
        .await
    } else {
        let mut form = form.to_vec();
        form.push(("client_id", client));
        hub.post_form("/token", &form, None).await
    }
}

#[tokio::test]
async fn code_grant_issues_id_access_and_refresh_tokens() {
    let hub = Hub::new().await;
    let code = hub.login(WEB, WEB_REDIRECT).await;
    let response = hub.redeem(WEB, WEB_REDIRECT, &code, VERIFIER).await;
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "openid profile groups");
    assert!(body["refresh_token"].as_str().unwrap().len() >= 43);

    let id = payload(body["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], "https://hub.test");
    assert_eq!(id["aud"], WEB);
    assert_eq!(id["sub"], "okta|alice");
    assert_eq!(id["nonce"], "client-nonce");
    assert_eq!(id["username"], "alice@example.com");
    assert_eq!(id["preferred_username"], "alice@example.com");
    assert_eq!(id["groups"], serde_json::json!(["dev"]));
    assert!(id["exp"].is_i64() && id["iat"].is_i64() && id["auth_time"].is_i64());
    let sid = id["sid"].as_str().unwrap();

    let access = payload(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], "https://hub.test");
    assert_eq!(access["sid"], sid);
    assert_eq!(access["client_id"], WEB);
    assert_eq!(
        access["exp"].as_i64().unwrap() - access["iat"].as_i64().unwrap(),
        300
    );

    // The hub verifies its own tokens with its JWKS.
    let verifier = hub.provider.verifier(WEB);
    verifier
        .verify_as::<crate::oidc::claims::IdTokenClaims>(
            body["id_token"].as_str().unwrap(),
            hub.provider.now(),
        )
        .unwrap();
}

#[tokio::test]
async fn code_errors_are_invalid_grant() {
    let hub = Hub::new().await;
    // Wrong verifier: refused, and the code is spent.
    let code = hub.login(CLI, CLI_REDIRECT).await;
    let wrong = "wrong-verifier-0123456789-0123456789-0123456789";
    assert_eq!(
        error_of(
            hub.redeem(CLI, CLI_REDIRECT, &code, wrong).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        "invalid_grant"
    );

    // Wrong redirect_uri.
    let code = hub.login(CLI, CLI_REDIRECT).await;
    let other = "http://127.0.0.1:1/callback";
    assert_eq!(
        error_of(
            hub.redeem(CLI, other, &code, VERIFIER).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        "invalid_grant"
    );

    // Expired code (moved clock).
    let code = hub.login(CLI, CLI_REDIRECT).await;
    hub.advance(Duration::from_secs(61)).await;
    assert_eq!(
        error_of(
            hub.redeem(CLI, CLI_REDIRECT, &code, VERIFIER).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        "invalid_grant"
    );

    // Another client's code.
    let code = hub.login(SPA, SPA_REDIRECT).await;
    assert_eq!(
        error_of(
            hub.redeem(CLI, SPA_REDIRECT, &code, VERIFIER).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        "invalid_grant"
    );

    // Missing parameter.
    let response = hub
        .post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", CLI),
                ("code", "x"),
            ],
            None,
        )
        .await;
    assert_eq!(
        error_of(response, StatusCode::BAD_REQUEST).await,
        "invalid_request"
    );
}

#[tokio::test]
async fn a_reused_code_revokes_the_session() {
    let hub = Hub::new().await;
    let code = hub.login(CLI, CLI_REDIRECT).await;
    let first = json(hub.redeem(CLI, CLI_REDIRECT, &code, VERIFIER).await).await;
    let refresh_token = first["refresh_token"].as_str().unwrap().to_owned();
    let again = hub.redeem(CLI, CLI_REDIRECT, &code, VERIFIER).await;
    assert_eq!(
        error_of(again, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    // The session the code created is gone: its refresh token no longer works.
    assert_eq!(
        error_of(
            refresh(&hub, CLI, &refresh_token).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn client_authentication_errors() {
    let hub = Hub::new().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "c"),
        ("redirect_uri", WEB_REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    // Bad secret with Basic: 401 and a Basic challenge.
    let response = hub.post_form("/token", &form, Some((WEB, "wrong"))).await;
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Basic realm="tether""#
    );
    assert_eq!(
        error_of(response, StatusCode::UNAUTHORIZED).await,
        "invalid_client"
    );
    // Bad secret with client_secret_post: 401, no challenge.
    let mut post = form.to_vec();
    post.extend([("client_id", WEB), ("client_secret", "wrong")]);
    let response = hub.post_form("/token", &post, None).await;
    assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
    assert_eq!(
        error_of(response, StatusCode::UNAUTHORIZED).await,
        "invalid_client"
    );
    // Confidential client without its secret; unknown client; no client at all.
    for id in [WEB, "nobody"] {
        let mut form = form.to_vec();
        form.push(("client_id", id));
        assert_eq!(
            error_of(
                hub.post_form("/token", &form, None).await,
                StatusCode::UNAUTHORIZED
            )
            .await,
            "invalid_client"
        );
    }
    assert_eq!(
        error_of(
            hub.post_form("/token", &form, None).await,
            StatusCode::UNAUTHORIZED
        )
        .await,
        "invalid_client"
    );
    // The right secret by client_secret_post gets as far as the code.
    let mut good = form.to_vec();
    good.extend([
        ("client_id", WEB),
        ("client_secret", crate::oidc::test_support::WEB_SECRET),
    ]);
    assert_eq!(
        error_of(
            hub.post_form("/token", &good, None).await,
            StatusCode::BAD_REQUEST
        )
        .await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn grant_type_and_body_errors() {
    let hub = Hub::new().await;
    let response = hub
        .post_form(
            "/token",
            &[("grant_type", "password"), ("client_id", CLI)],
            None,
        )
        .await;
    assert_eq!(
        error_of(response, StatusCode::BAD_REQUEST).await,
        "unsupported_grant_type"
    );
    let response = hub.post_form("/token", &[("client_id", CLI)], None).await;
    assert_eq!(
        error_of(response, StatusCode::BAD_REQUEST).await,
        "invalid_request"
    );
    let response = hub
        .send(
            axum::http::Request::post("/token")
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        error_of(response, StatusCode::BAD_REQUEST).await,
        "invalid_request"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_ends_the_session() {
    let hub = Hub::new().await;
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let rotated = expect_json(refresh(&hub, CLI, first).await, StatusCode::OK).await;
    let second = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(first, second);
    assert!(rotated["id_token"].is_string() && rotated["access_token"].is_string());
    // Another client cannot use it.
    assert_eq!(
        error_of(refresh(&hub, SPA, second).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    // Reusing the spent token revokes the session: the fresh one dies too.
    assert_eq!(
        error_of(refresh(&hub, CLI, first).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
    assert_eq!(
        error_of(refresh(&hub, CLI, second).await, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn refresh_revalidates_upstream_when_due() {
    let hub = Hub::new().await;
    let upstream = hub.upstream.clone().unwrap();
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let token = tokens["refresh_token"].as_str().unwrap().to_owned();

    // Not due yet: no upstream call.
    let body = expect_json(refresh(&hub, CLI, &token).await, StatusCode::OK).await;
    assert_eq!(*upstream.revalidations.lock().unwrap(), 0);
    let token = body["refresh_token"].as_str().unwrap().to_owned();

    // Due: changed groups appear in this very response.
    *upstream.revalidation.lock().unwrap() = Revalidation::Groups(vec!["dev".into(), "ops".into()]);
    hub.advance(Duration::from_secs(301)).await;
    let body = expect_json(refresh(&hub, CLI, &token).await, StatusCode::OK).await;
    assert_eq!(*upstream.revalidations.lock().unwrap(), 1);
    assert_eq!(
        payload(body["id_token"].as_str().unwrap())["groups"],
        serde_json::json!(["dev", "ops"])
    );
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["groups"],
        serde_json::json!(["dev", "ops"])
    );
    let token = body["refresh_token"].as_str().unwrap().to_owned();

    // Unreachable IdP: the refresh still succeeds with the known identity.
    *upstream.revalidation.lock().unwrap() = Revalidation::Unreachable;
    hub.advance(Duration::from_secs(301)).await;
    let body = expect_json(refresh(&hub, CLI, &token).await, StatusCode::OK).await;
    let token = body["refresh_token"].as_str().unwrap().to_owned();
    let access = body["access_token"].as_str().unwrap().to_owned();

    // Locked account: invalid_grant, the session is gone.
    *upstream.revalidation.lock().unwrap() = Revalidation::Revoked;
    hub.advance(Duration::from_secs(60)).await;
    let body = expect_json(refresh(&hub, CLI, &token).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "the upstream account is no longer active; log in again"
    );
    assert_eq!(hub.audit("session.upstream_rejected").await.len(), 1);
    let response = exchange(&hub, CLI, &access, "prod-eu").await;
    assert_eq!(
        error_of(response, StatusCode::BAD_REQUEST).await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn token_exchange_mints_a_cluster_token() {
    let hub = Hub::new().await;
    let tokens = hub.tokens(WEB, WEB_REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap();
    let body = expect_json(exchange(&hub, WEB, access, "prod-eu").await, StatusCode::OK).await;
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 60);
    let cluster_token = body["access_token"].as_str().unwrap();
    let verifier = hub.provider.verifier("tether:cluster:prod-eu");
    let claims = verifier.verify(cluster_token, hub.provider.now()).unwrap();
    assert_eq!(claims.sub, "okta|alice");
    assert_eq!(claims.username, "alice@example.com");
    assert_eq!(claims.groups, vec!["dev".to_owned()]);
    assert_eq!(claims.exp.as_secs() - claims.iat.as_secs(), 60);
    assert_eq!(claims.sid.as_deref(), payload(access)["sid"].as_str());
    let audit = hub.audit("token.exchange").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].record.details["cluster"], "prod-eu");
}

#[tokio::test]
async fn token_exchange_refusals() {
    let hub = Hub::new().await;
    let web = hub.tokens(WEB, WEB_REDIRECT).await;
    let web_access = web["access_token"].as_str().unwrap().to_owned();
    let target = |response| error_of(response, StatusCode::BAD_REQUEST);
    // Unknown cluster, invalid name, a cluster the client may not use (webapp: prod-* only).
    assert_eq!(
        target(exchange(&hub, WEB, &web_access, "nope").await).await,
        "invalid_target"
    );
    assert_eq!(
        target(exchange(&hub, WEB, &web_access, "Not A Name").await).await,
        "invalid_target"
    );
    assert_eq!(
        target(exchange(&hub, WEB, &web_access, "dev-1").await).await,
        "invalid_target"
    );
    // Not a hub access token: the ID token, garbage, another client's token.
    let id_token = web["id_token"].as_str().unwrap();
    assert_eq!(
        target(exchange(&hub, WEB, id_token, "prod-eu").await).await,
        "invalid_grant"
    );
    assert_eq!(
        target(exchange(&hub, WEB, "garbage", "prod-eu").await).await,
        "invalid_grant"
    );
    assert_eq!(
        target(exchange(&hub, CLI, &web_access, "prod-eu").await).await,
        "invalid_grant"
    );
    // Expired access token.
    hub.advance(Duration::from_secs(301 + 30)).await;
    assert_eq!(
        target(exchange(&hub, WEB, &web_access, "prod-eu").await).await,
        "invalid_grant"
    );
    let denied = hub.audit("token.exchange").await;
    assert_eq!(denied.len(), 7);
    assert!(
        denied
            .iter()
            .all(|r| r.record.outcome == crate::store::AuditOutcome::Denied)
    );

    // Missing subject_token_type.
    let response = hub
        .post_form(
            "/token",
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", "x"),
                ("audience", "prod-eu"),
                ("client_id", CLI),
            ],
            None,
        )
        .await;
    assert_eq!(target(response).await, "invalid_request");
}

#[tokio::test]
async fn token_requests_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let hub = Hub::new().await;
    {
        let _guard = metrics::set_default_local_recorder(&recorder);
        hub.post_form(
            "/token",
            &[("grant_type", "password"), ("client_id", CLI)],
            None,
        )
        .await;
        let _: Value = hub.tokens(CLI, CLI_REDIRECT).await;
    }
    let text = handle.render();
    assert!(
        text.contains(
            r#"tether_hub_token_requests_total{grant="other",outcome="unsupported_grant_type"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"tether_hub_token_requests_total{grant="authorization_code",outcome="success"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"tether_hub_logins_total{outcome="success"} 1"#),
        "{text}"
    );
}
