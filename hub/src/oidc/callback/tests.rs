//! `/callback`: single-use pending login, state compared, nothing stored on refusal.

use axum::http::{StatusCode, header};

use crate::oidc::test_support::{
    CLI, CLI_REDIRECT, GOOD_UPSTREAM_CODE, Hub, WEB, WEB_REDIRECT, location, query,
};

#[tokio::test]
async fn a_login_creates_a_session_and_redirects_with_code_state_iss() {
    let hub = Hub::new().await;
    let (cookie, state) = hub.start_login(CLI, CLI_REDIRECT).await;
    let response = hub
        .get(
            &format!("/callback?code={GOOD_UPSTREAM_CODE}&state={state}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("Max-Age=0"), "{set_cookie}");
    let target = location(&response);
    assert!(target.as_str().starts_with(CLI_REDIRECT));
    let q = query(&target);
    assert!(q["code"].len() >= 43);
    assert_eq!(q["state"], "client-state");
    assert_eq!(q["iss"], "https://hub.test");
    assert_eq!(hub.sessions_created().await, 1);
    let success = hub.audit("login.success").await;
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].record.actor, "okta|alice");
    assert_eq!(success[0].record.details["client_id"], CLI);
    assert_eq!(success[0].record.details["username"], "alice@example.com");

    // The pending login was single use.
    let again = hub
        .get(
            &format!("/callback?code={GOOD_UPSTREAM_CODE}&state={state}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.headers().get(header::LOCATION).is_none());
    assert_eq!(hub.sessions_created().await, 1);
}

#[tokio::test]
async fn state_mismatch_is_a_page_and_stores_nothing() {
    let hub = Hub::new().await;
    let (cookie, _state) = hub.start_login(WEB, WEB_REDIRECT).await;
    let response = hub
        .get(
            &format!("/callback?code={GOOD_UPSTREAM_CODE}&state=forged"),
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(header::LOCATION).is_none());
    assert_eq!(hub.sessions_created().await, 0);
    let refused = hub.audit("login.refused").await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].record.reason.as_deref(), Some("state_mismatch"));

    // Missing state, missing cookie: the same.
    let (cookie, _) = hub.start_login(WEB, WEB_REDIRECT).await;
    let response = hub
        .get(
            &format!("/callback?code={GOOD_UPSTREAM_CODE}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = hub
        .get(
            &format!("/callback?code={GOOD_UPSTREAM_CODE}&state=x"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(hub.sessions_created().await, 0);
    assert_eq!(hub.audit("login.refused").await.len(), 3);
}

#[tokio::test]
async fn idp_errors_and_failed_exchanges_go_back_to_the_client() {
    let hub = Hub::new().await;
    let (cookie, state) = hub.start_login(WEB, WEB_REDIRECT).await;
    let response = hub
        .get(
            &format!("/callback?error=access_denied&state={state}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let q = query(&location(&response));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "client-state");
    assert_eq!(q["iss"], "https://hub.test");

    let (cookie, state) = hub.start_login(WEB, WEB_REDIRECT).await;
    let response = hub
        .get(
            &format!("/callback?code=wrong&state={state}"),
            Some(&cookie),
        )
        .await;
    let q = query(&location(&response));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(hub.sessions_created().await, 0);
}

#[tokio::test]
async fn expired_login_is_refused() {
    let hub = Hub::new().await;
    let (cookie, state) = hub.start_login(WEB, WEB_REDIRECT).await;
    hub.advance(std::time::Duration::from_secs(601)).await;
    let response = hub
        .get(
            &format!("/callback?code={GOOD_UPSTREAM_CODE}&state={state}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(hub.sessions_created().await, 0);
}
