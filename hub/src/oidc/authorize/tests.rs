//! `/authorize`: page errors never redirect; redirect errors carry the RFC code, state and
//! iss; a good request stores a pending login and sends the browser to the IdP.

use axum::http::{StatusCode, header};

use crate::http::test_support::body;
use crate::oidc::test_support::{
    CLI, CLI_REDIRECT, Hub, SPA, SPA_REDIRECT, VERIFIER, WEB, WEB_REDIRECT, authorize_uri_with,
    location, query,
};
use crate::sessions::s256_challenge;

fn params<'a>(client: &'a str, redirect: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid"),
        ("state", "xyz"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

fn with(
    mut params: Vec<(&'static str, &'static str)>,
    name: &'static str,
    value: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    params.retain(|(n, _)| *n != name);
    if let Some(value) = value {
        params.push((name, value));
    }
    params
}

fn challenge() -> &'static str {
    Box::leak(s256_challenge(VERIFIER).into_boxed_str())
}

/// Asserts a 303 back to `redirect` with `error` (and state, iss); returns the query.
async fn expect_redirect_error(hub: &Hub, uri: &str, redirect: &str, error: &str) {
    let response = hub.get(uri, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{uri}");
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    let target = location(&response);
    assert!(target.as_str().starts_with(redirect), "{target}");
    let q = query(&target);
    assert_eq!(q["error"], error, "{q:?}");
    assert_eq!(q["state"], "xyz");
    assert_eq!(q["iss"], "https://hub.test");
}

async fn expect_page(hub: &Hub, uri: &str, needle: &str) {
    let response = hub.get(uri, None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{uri}");
    assert!(response.headers().get(header::LOCATION).is_none());
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    let text = String::from_utf8(body(response).await.to_vec()).unwrap();
    assert!(text.contains(needle), "{text}");
}

#[tokio::test]
async fn bad_client_or_redirect_uri_shows_a_page_and_never_redirects() {
    let hub = Hub::new().await;
    let c = challenge();
    expect_page(
        &hub,
        &authorize_uri_with(&params("nobody", WEB_REDIRECT, c)),
        "unknown client_id",
    )
    .await;
    expect_page(
        &hub,
        &authorize_uri_with(&params(WEB, "https://evil.test/cb", c)),
        "redirect_uri is not registered",
    )
    .await;
    // Another client's redirect URI.
    expect_page(
        &hub,
        &authorize_uri_with(&params(WEB, SPA_REDIRECT, c)),
        "redirect_uri is not registered",
    )
    .await;
    expect_page(
        &hub,
        &authorize_uri_with(&with(params(WEB, WEB_REDIRECT, c), "redirect_uri", None)),
        "missing parameter redirect_uri",
    )
    .await;
    // Loopback on any port only for native clients, and only the registered path.
    expect_page(
        &hub,
        &authorize_uri_with(&params(CLI, "http://127.0.0.1:5555/other", c)),
        "redirect_uri",
    )
    .await;
    expect_page(
        &hub,
        &authorize_uri_with(&params(CLI, "http://localhost:5555/callback", c)),
        "redirect_uri",
    )
    .await;
    assert!(hub.audit("login.refused").await.is_empty());
}

#[tokio::test]
async fn request_errors_go_back_to_the_client_with_rfc_codes() {
    let hub = Hub::new().await;
    let c = challenge();
    let base = || params(SPA, SPA_REDIRECT, c);
    let cases = [
        (
            with(base(), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (with(base(), "response_type", None), "invalid_request"),
        (with(base(), "scope", Some("profile")), "invalid_scope"),
        // Public client without PKCE.
        (
            with(
                with(base(), "code_challenge", None),
                "code_challenge_method",
                None,
            ),
            "invalid_request",
        ),
        // `plain` is refused, also implicitly (no method means plain).
        (
            with(base(), "code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            with(base(), "code_challenge_method", None),
            "invalid_request",
        ),
        (
            with(base(), "code_challenge", Some("too-short")),
            "invalid_request",
        ),
    ];
    for (params, error) in cases {
        expect_redirect_error(&hub, &authorize_uri_with(&params), SPA_REDIRECT, error).await;
    }
    // Confidential clients cannot use plain either.
    let plain = with(
        params(WEB, WEB_REDIRECT, c),
        "code_challenge_method",
        Some("plain"),
    );
    expect_redirect_error(
        &hub,
        &authorize_uri_with(&plain),
        WEB_REDIRECT,
        "invalid_request",
    )
    .await;
    assert_eq!(hub.sessions_created().await, 0);
}

#[tokio::test]
async fn login_disabled_without_upstream() {
    let hub = Hub::without_upstream().await;
    let uri = authorize_uri_with(&params(WEB, WEB_REDIRECT, challenge()));
    let response = hub.get(&uri, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let q = query(&location(&response));
    assert_eq!(q["error"], "temporarily_unavailable");
    assert_eq!(
        q["error_description"],
        "login is disabled: no upstream IdP configured"
    );
    assert_eq!(q["state"], "xyz");
}

#[tokio::test]
async fn good_request_sets_the_login_cookie_and_goes_to_the_idp() {
    let hub = Hub::new().await;
    let uri = authorize_uri_with(&params(CLI, CLI_REDIRECT, challenge()));
    let response = hub.get(&uri, None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("tether_login="), "{cookie}");
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/callback",
        "Max-Age=600",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert_eq!(location(&response).host_str(), Some("idp.test"));
}
