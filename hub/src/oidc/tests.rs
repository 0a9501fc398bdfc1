//! Discovery and JWKS through the router without sockets.

use axum::http::{StatusCode, header};

use super::discovery::ProviderMetadata;
use super::routes;
use crate::http::test_support::{
    TEST_JWKS, TEST_MAX_AGE, body, expect_json, get, ready_state, state,
};
use crate::oidc::test_support::Hub;

#[tokio::test]
async fn discovery_lists_only_what_exists() {
    let response = get(ready_state(), routes::DISCOVERY).await;
    let doc = expect_json(response, StatusCode::OK).await;
    assert_eq!(doc["issuer"], "https://hub.test");
    assert_eq!(doc["jwks_uri"], "https://hub.test/.well-known/jwks.json");
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(doc["authorization_endpoint"], "https://hub.test/authorize");
    assert_eq!(doc["token_endpoint"], "https://hub.test/token");
    assert_eq!(doc["userinfo_endpoint"], "https://hub.test/userinfo");
    assert_eq!(doc["revocation_endpoint"], "https://hub.test/revoke");
    assert_eq!(doc["end_session_endpoint"], "https://hub.test/logout");
    assert_eq!(
        doc["device_authorization_endpoint"],
        "https://hub.test/device_authorization"
    );
    assert!(
        doc["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&"groups".into())
    );
    for absent in [
        "registration_endpoint",
        "introspection_endpoint",
        "pushed_authorization_request_endpoint",
    ] {
        assert!(
            doc.get(absent).is_none(),
            "{absent} is listed but not implemented"
        );
    }
}

#[tokio::test]
async fn every_listed_endpoint_is_routed() {
    let hub = Hub::new().await;
    let state = hub.state.clone();
    let metadata = ProviderMetadata::new(state.issuer(), state.signing_alg());
    let doc = serde_json::to_value(&metadata).unwrap();
    let mut urls: Vec<&str> = doc
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.ends_with("_uri") || key.ends_with("_endpoint"))
        .filter_map(|(_, value)| value.as_str())
        .collect();
    let mut listed = metadata.endpoints();
    urls.sort_unstable();
    listed.sort_unstable();
    assert_eq!(urls, listed);
    for url in urls {
        let path = url.strip_prefix(state.issuer().as_str()).unwrap();
        let response =
            if [routes::TOKEN, routes::REVOKE, routes::DEVICE_AUTHORIZATION].contains(&path) {
                hub.post_form(path, &[], None).await
            } else {
                hub.get(path, None).await
            };
        let status = response.status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{url}: {status}"
        );
    }
}

#[tokio::test]
async fn jwks_is_served_with_cache_headers() {
    let response = get(ready_state(), routes::JWKS).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        headers[header::CACHE_CONTROL],
        format!("public, max-age={}", TEST_MAX_AGE.as_secs()).as_str()
    );
    assert_eq!(body(response).await, TEST_JWKS.as_bytes());
}

#[tokio::test]
async fn jwks_follows_the_watch_channel() {
    let (state, tx) = state(None, Ok(()));
    let response = get(state.clone(), routes::JWKS).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);

    tx.send_replace(ready_state().jwks());
    let response = get(state, routes::JWKS).await;
    assert_eq!(body(response).await, TEST_JWKS.as_bytes());
}

#[test]
fn example_config_max_age_is_shorter_than_publish_lead() {
    let config = crate::config::Config::from_yaml(crate::config::EXAMPLE).unwrap();
    assert!(config.keys.jwks_max_age() < config.keys.publish_lead);
}

// ---- userinfo, revocation, logout ----

mod session_endpoints {
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};

    use crate::http::test_support::{expect_json, get, ready_state};
    use crate::oidc::test_support::{
        CLI, CLI_REDIRECT, Hub, WEB, WEB_LOGOUT, WEB_REDIRECT, WEB_SECRET, location, query,
    };

    async fn userinfo(hub: &Hub, token: &str) -> axum::response::Response {
        hub.send(
            Request::get("/userinfo")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn refresh(hub: &Hub, token: &str) -> StatusCode {
        hub.post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", CLI),
            ],
            None,
        )
        .await
        .status()
    }

    #[tokio::test]
    async fn endpoints_answer_unavailable_until_started() {
        let response = get(ready_state(), "/userinfo").await;
        let body = expect_json(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(body["error"], "temporarily_unavailable");
    }

    #[tokio::test]
    async fn userinfo_answers_for_a_live_session_only() {
        let hub = Hub::new().await;
        let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
        let access = tokens["access_token"].as_str().unwrap();
        let body = expect_json(userinfo(&hub, access).await, StatusCode::OK).await;
        assert_eq!(body["sub"], "okta|alice");
        assert_eq!(body["username"], "alice@example.com");
        assert_eq!(body["preferred_username"], "alice@example.com");
        assert_eq!(body["groups"], serde_json::json!(["dev"]));

        // POST works too.
        let response = hub
            .send(
                Request::post("/userinfo")
                    .header(header::AUTHORIZATION, format!("Bearer {access}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);

        // Garbage, an ID token, no token: 401 invalid_token with a Bearer challenge.
        for token in ["garbage", tokens["id_token"].as_str().unwrap()] {
            let response = userinfo(&hub, token).await;
            assert_eq!(
                response.headers()[header::WWW_AUTHENTICATE],
                r#"Bearer error="invalid_token""#
            );
            let body = expect_json(response, StatusCode::UNAUTHORIZED).await;
            assert_eq!(body["error"], "invalid_token");
        }
        let response = hub.get("/userinfo", None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

        // Revoked session: 401.
        let form = [
            ("token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", CLI),
        ];
        assert_eq!(
            hub.post_form("/revoke", &form, None).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            userinfo(&hub, access).await.status(),
            StatusCode::UNAUTHORIZED
        );

        // Expired token: 401.
        let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
        hub.advance(std::time::Duration::from_secs(300 + 31)).await;
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(
            userinfo(&hub, access).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn revocation_ends_sessions_and_accepts_unknown_tokens() {
        let hub = Hub::new().await;
        // By refresh token.
        let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        let response = hub
            .post_form(
                "/revoke",
                &[("token", refresh_token), ("client_id", CLI)],
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(refresh(&hub, refresh_token).await, StatusCode::BAD_REQUEST);

        // By access token (confidential client, Basic).
        let tokens = hub.tokens(WEB, WEB_REDIRECT).await;
        let access = tokens["access_token"].as_str().unwrap();
        let response = hub
            .post_form(
                "/revoke",
                &[("token", access), ("token_type_hint", "access_token")],
                Some((WEB, WEB_SECRET)),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            userinfo(&hub, access).await.status(),
            StatusCode::UNAUTHORIZED
        );

        // Unknown tokens: 200, nothing happens.
        let response = hub
            .post_form("/revoke", &[("token", "unknown"), ("client_id", CLI)], None)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        // Another client's token is not revoked.
        let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
        let cli_refresh = tokens["refresh_token"].as_str().unwrap();
        let response = hub
            .post_form(
                "/revoke",
                &[("token", cli_refresh)],
                Some((WEB, WEB_SECRET)),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(refresh(&hub, cli_refresh).await, StatusCode::OK);

        // Client authentication is required; a missing token is invalid_request.
        let response = hub
            .post_form("/revoke", &[("token", "x")], Some((WEB, "wrong")))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let response = hub.post_form("/revoke", &[("client_id", CLI)], None).await;
        let body = expect_json(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(hub.audit("token.revoke").await.len(), 4);
    }

    #[tokio::test]
    async fn logout_with_id_token_hint_ends_the_session() {
        let hub = Hub::new().await;
        let tokens = hub.tokens(WEB, WEB_REDIRECT).await;
        let id_token = tokens["id_token"].as_str().unwrap();
        let access = tokens["access_token"].as_str().unwrap();
        // Even an expired ID token is a valid hint.
        hub.advance(std::time::Duration::from_secs(3600)).await;
        let uri = format!(
            "/logout?id_token_hint={id_token}&post_logout_redirect_uri={WEB_LOGOUT}&state=s1"
        );
        let response = hub.get(&uri, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let target = location(&response);
        assert!(target.as_str().starts_with(WEB_LOGOUT));
        assert_eq!(query(&target)["state"], "s1");
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        let response = hub
            .post_form(
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
                Some((WEB, WEB_SECRET)),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(hub.audit("logout").await.len(), 1);
        let _ = access;
    }

    #[tokio::test]
    async fn logout_never_redirects_to_unregistered_uris() {
        let hub = Hub::new().await;
        let tokens = hub.tokens(WEB, WEB_REDIRECT).await;
        let id_token = tokens["id_token"].as_str().unwrap();
        let uri =
            format!("/logout?id_token_hint={id_token}&post_logout_redirect_uri=https://evil.test/");
        let response = hub.get(&uri, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(header::LOCATION).is_none());

        // A forged hint is refused; no hint at all is a plain "signed out" page.
        let response = hub.get("/logout?id_token_hint=a.b.c", None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let response = hub.get("/logout", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let text = crate::http::test_support::body(response).await;
        assert!(String::from_utf8_lossy(&text).contains("Signed out"));
    }
}
