//! The device authorization grant end to end through the router (fake upstream IdP, manual
//! clock): codes, the `/device` page, the callback's approval, polling and redemption.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::user_code::{ALPHABET, LEN};
use super::{DeviceLogin, LoginPurpose, MAX_USER_CODE_FAILURES_PER_MINUTE, UserCode};
use crate::http::test_support::{body, expect_json, json};
use crate::oidc::test_support::{
    CLI, GOOD_UPSTREAM_CODE, Hub, ISSUER, SPA, WEB, WEB_SECRET, location, payload, query,
};
use crate::sessions::AuthorizeRequest;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /device_authorization` for `client` (Basic for the confidential `webapp`).
async fn device_authorization(hub: &Hub, client: &str, scope: Option<&str>) -> Response {
    let mut form = Vec::new();
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    if client == WEB {
        hub.post_form("/device_authorization", &form, Some((WEB, WEB_SECRET)))
            .await
    } else {
        form.push(("client_id", client));
        hub.post_form("/device_authorization", &form, None).await
    }
}

/// Device and user codes for `client`.
async fn codes(hub: &Hub, client: &str) -> (String, String) {
    let body = expect_json(
        device_authorization(hub, client, None).await,
        StatusCode::OK,
    )
    .await;
    (
        body["device_code"].as_str().unwrap().to_owned(),
        body["user_code"].as_str().unwrap().to_owned(),
    )
}

/// One poll of the token endpoint by `client`.
async fn poll(hub: &Hub, client: &str, device_code: &str) -> Response {
    let mut form = vec![("grant_type", GRANT), ("device_code", device_code)];
    if client == WEB {
        hub.post_form("/token", &form, Some((WEB, WEB_SECRET)))
            .await
    } else {
        form.push(("client_id", client));
        hub.post_form("/token", &form, None).await
    }
}

/// The OAuth error code of a 400/401 JSON answer.
async fn error_of(response: Response) -> String {
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let status = response.status();
    let body = json(response).await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
        "{status}: {body}"
    );
    body["error"].as_str().unwrap().to_owned()
}

/// `POST /device` with `user_code` and the given `Origin` / `Referer`.
async fn submit(
    hub: &Hub,
    user_code: &str,
    origin: Option<&str>,
    referer: Option<&str>,
) -> Response {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("user_code", user_code)
        .finish();
    let mut request =
        Request::post("/device").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    if let Some(referer) = referer {
        request = request.header(header::REFERER, referer);
    }
    hub.send(request.body(Body::from(form)).unwrap()).await
}

/// The code entered from the hub's own page.
async fn enter(hub: &Hub, user_code: &str) -> Response {
    submit(hub, user_code, Some(ISSUER), None).await
}

/// The user enters `user_code` and is sent to the IdP: (login cookie, upstream state).
async fn enter_and_go_to_idp(hub: &Hub, user_code: &str) -> (String, String) {
    let response = enter(hub, user_code).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let idp = location(&response);
    assert_eq!(idp.host_str(), Some("idp.test"));
    (cookie, query(&idp)["state"].clone())
}

/// The whole browser side: enter the code, log in at the IdP, land on the callback.
async fn approve(hub: &Hub, user_code: &str) -> Response {
    let (cookie, state) = enter_and_go_to_idp(hub, user_code).await;
    hub.get(
        &format!("/callback?code={GOOD_UPSTREAM_CODE}&state={state}"),
        Some(&cookie),
    )
    .await
}

async fn text(response: Response) -> String {
    String::from_utf8(body(response).await.to_vec()).unwrap()
}

async fn refresh(hub: &Hub, refresh_token: &str) -> Response {
    hub.post_form(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLI),
        ],
        None,
    )
    .await
}

#[tokio::test]
async fn the_whole_flow_issues_tokens_once() {
    let hub = Hub::new().await;
    let response = device_authorization(&hub, CLI, None).await;
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = expect_json(response, StatusCode::OK).await;
    let device_code = body["device_code"].as_str().unwrap().to_owned();
    let user_code = body["user_code"].as_str().unwrap().to_owned();
    assert_eq!(device_code.len(), 43, "256 bits, base64url");
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .bytes()
            .filter(|b| *b != b'-')
            .all(|b| ALPHABET.contains(&b)),
        "{user_code}"
    );
    assert_eq!(body["verification_uri"], "https://hub.test/device");
    assert_eq!(
        body["verification_uri_complete"],
        format!("https://hub.test/device?user_code={user_code}")
    );
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);

    // Nobody has entered the code yet.
    assert_eq!(
        error_of(poll(&hub, CLI, &device_code).await).await,
        "authorization_pending"
    );

    // The page, pre-filled from verification_uri_complete.
    let page = hub
        .get(&format!("/device?user_code={user_code}"), None)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");
    let html = text(page).await;
    assert!(html.contains(&format!("value=\"{user_code}\"")), "{html}");
    assert!(
        html.contains("action=\"https://hub.test/device\""),
        "{html}"
    );

    // The user types it in lowercase without the dash, logs in at the IdP.
    let typed = user_code.replace('-', "").to_lowercase();
    let done = approve(&hub, &typed).await;
    assert_eq!(done.status(), StatusCode::OK);
    let set_cookie = done.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.contains("Max-Age=0"), "{set_cookie}");
    let html = text(done).await;
    assert!(
        html.contains("Signed in as alice@example.com. You can return to your terminal."),
        "{html}"
    );
    assert_eq!(hub.sessions_created().await, 1);

    // The device's next poll gets tokens, like the code grant.
    hub.advance(Duration::from_secs(5)).await;
    let response = poll(&hub, CLI, &device_code).await;
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let tokens = expect_json(response, StatusCode::OK).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid");
    let id = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], CLI);
    assert_eq!(id["sub"], "okta|alice");
    assert!(id.get("nonce").is_none());
    let access = payload(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["sid"], id["sid"]);
    assert_eq!(access["username"], "alice@example.com");

    // The refresh token rotates like any other.
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let refreshed = expect_json(refresh(&hub, refresh_token).await, StatusCode::OK).await;
    let refresh_token = refreshed["refresh_token"].as_str().unwrap().to_owned();

    // Single use: a second redemption is refused and ends the session.
    hub.advance(Duration::from_secs(5)).await;
    assert_eq!(
        error_of(poll(&hub, CLI, &device_code).await).await,
        "invalid_grant"
    );
    assert_eq!(
        error_of(refresh(&hub, &refresh_token).await).await,
        "invalid_grant"
    );

    // Audited: authorized, approved, login, tokens issued, then the refused reuse.
    let authorized = hub.audit("device.authorized").await;
    assert_eq!(authorized.len(), 1);
    assert_eq!(authorized[0].record.actor, CLI);
    let device_id = authorized[0].record.subject.clone().unwrap();
    let approved = hub.audit("device.approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(
        approved[0].record.subject.as_deref(),
        Some(device_id.as_str())
    );
    assert_eq!(approved[0].record.actor, "okta|alice");
    let login = hub.audit("login.success").await;
    assert_eq!(login[0].record.details["device"], true);
    let issued = hub.audit("device.token_issued").await;
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[1].record.outcome.as_str(), "success");
    assert_eq!(issued[0].record.outcome.as_str(), "denied");
    assert_eq!(
        issued[0].record.reason.as_deref(),
        Some("device_code_reuse")
    );
}

#[tokio::test]
async fn polling_too_fast_slows_down() {
    let hub = Hub::new().await;
    let (device_code, _) = codes(&hub, CLI).await;
    assert_eq!(
        error_of(poll(&hub, CLI, &device_code).await).await,
        "authorization_pending"
    );
    let response = poll(&hub, CLI, &device_code).await;
    let body = expect_json(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "slow_down");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("10 seconds"),
        "{body}"
    );
    // The interval is now 10 s: 5 s later is still too fast (and grows it to 15 s)...
    hub.advance(Duration::from_secs(5)).await;
    assert_eq!(
        error_of(poll(&hub, CLI, &device_code).await).await,
        "slow_down"
    );
    // ...15 s after that is in time.
    hub.advance(Duration::from_secs(15)).await;
    assert_eq!(
        error_of(poll(&hub, CLI, &device_code).await).await,
        "authorization_pending"
    );
}

#[tokio::test]
async fn expired_codes_can_be_neither_entered_nor_redeemed() {
    let hub = Hub::new().await;
    let (device_code, user_code) = codes(&hub, CLI).await;
    hub.advance(Duration::from_secs(600)).await;
    assert_eq!(
        error_of(poll(&hub, CLI, &device_code).await).await,
        "expired_token"
    );
    let response = enter(&hub, &user_code).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("This code has expired"));

    assert_eq!(hub.sessions_created().await, 0);

    // The purge removes them.
    let purged = hub
        .provider
        .sessions()
        .purge_expired(hub.provider.now())
        .await;
    assert!(purged.is_ok());
    assert!(hub.store.dump_device_codes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_code_decided_while_another_browser_was_at_the_idp_is_not_approved_twice() {
    let hub = Hub::new().await;
    let (device_code, user_code) = codes(&hub, CLI).await;
    let (cookie, state) = enter_and_go_to_idp(&hub, &user_code).await;
    let done = approve(&hub, &user_code).await;
    assert_eq!(done.status(), StatusCode::OK);
    let response = hub
        .get(
            &format!("/callback?code={GOOD_UPSTREAM_CODE}&state={state}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        text(response)
            .await
            .contains("has expired or was already used")
    );
    assert_eq!(hub.sessions_created().await, 1);
    let tokens = expect_json(poll(&hub, CLI, &device_code).await, StatusCode::OK).await;
    let sid = payload(tokens["id_token"].as_str().unwrap())["sid"].clone();
    let approved = hub.audit("device.approved").await;
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0].record.details["sid"], sid);
}

#[tokio::test]
async fn codes_belong_to_their_client() {
    let hub = Hub::new().await;
    // A confidential client that opted in authenticates with its secret.
    let (web_code, _) = codes(&hub, WEB).await;
    assert_eq!(
        error_of(poll(&hub, WEB, &web_code).await).await,
        "authorization_pending"
    );
    // Another client cannot redeem it...
    let (cli_code, user_code) = codes(&hub, CLI).await;
    approve(&hub, &user_code).await;
    assert_eq!(
        error_of(poll(&hub, WEB, &cli_code).await).await,
        "invalid_grant"
    );
    // ...and its attempt did not spend it.
    let response = poll(&hub, CLI, &cli_code).await;
    assert_eq!(response.status(), StatusCode::OK);
    let refused = hub.audit("device.token_issued").await;
    assert!(
        refused
            .iter()
            .any(|r| r.record.reason.as_deref() == Some("wrong client"))
    );

    // A client without device_grant may neither start nor poll.
    let response = device_authorization(&hub, SPA, None).await;
    assert_eq!(error_of(response).await, "unauthorized_client");
    assert_eq!(
        error_of(poll(&hub, SPA, &web_code).await).await,
        "unauthorized_client"
    );
    // Client authentication is the token endpoint's.
    let response = hub
        .post_form("/device_authorization", &[("client_id", WEB)], None)
        .await;
    assert_eq!(error_of(response).await, "invalid_client");
    let response = hub
        .post_form("/device_authorization", &[("client_id", "nobody")], None)
        .await;
    assert_eq!(error_of(response).await, "invalid_client");
    // Scope must include openid; unknown scopes are dropped.
    let response = device_authorization(&hub, CLI, Some("profile")).await;
    assert_eq!(error_of(response).await, "invalid_scope");
    let body = expect_json(
        device_authorization(&hub, CLI, Some("openid groups email")).await,
        StatusCode::OK,
    )
    .await;
    assert!(body["device_code"].is_string());
    // Unknown device codes.
    assert_eq!(
        error_of(poll(&hub, CLI, "not-a-device-code").await).await,
        "invalid_grant"
    );
    let response = hub
        .post_form("/token", &[("grant_type", GRANT), ("client_id", CLI)], None)
        .await;
    assert_eq!(error_of(response).await, "invalid_request");
}

#[tokio::test]
async fn a_refused_login_denies_the_device() {
    let hub = Hub::new().await;
    let (device_code, user_code) = codes(&hub, CLI).await;
    let (cookie, state) = enter_and_go_to_idp(&hub, &user_code).await;
    let response = hub
        .get(
            &format!("/callback?error=access_denied&state={state}"),
            Some(&cookie),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(header::LOCATION).is_none());
    assert_eq!(
        error_of(poll(&hub, CLI, &device_code).await).await,
        "access_denied"
    );
    let denied = hub.audit("device.denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0].record.reason.as_deref(),
        Some("upstream_error:access_denied")
    );
    // A decided code cannot be entered again.
    let response = enter(&hub, &user_code).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(text(response).await.contains("already used"));
    assert_eq!(hub.sessions_created().await, 0);
}

#[tokio::test]
async fn wrong_user_codes_get_the_page_again_and_are_throttled() {
    let hub = Hub::new().await;
    let (_, user_code) = codes(&hub, CLI).await;
    // Not a code at all: the page with a hint; not counted.
    for typed in ["", "ABCD-EFGH", "BCDF-GHJ", "BCDF-GHJKL", "<script>"] {
        let response = enter(&hub, typed).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{typed}");
        let html = text(response).await;
        assert!(html.contains("That is not a code"), "{html}");
        assert!(!html.contains("<script>"));
    }
    // Well-formed but unknown: counted.
    let unknown = if user_code == "BBBB-BBBB" {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };
    let failures = usize::try_from(MAX_USER_CODE_FAILURES_PER_MINUTE).unwrap();
    for _ in 0..failures {
        let response = enter(&hub, unknown).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let html = text(response).await;
        assert!(html.contains("Unknown code"), "{html}");
        assert!(html.contains("value=\"BBBB-BBBB\"") || html.contains("value=\"CCCC-CCCC\""));
    }
    // The budget of the minute is spent: even the right code waits.
    let response = enter(&hub, &user_code).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(text(response).await.contains("Too many wrong codes"));
    // Next minute.
    hub.advance(Duration::from_secs(60)).await;
    let response = enter(&hub, &user_code).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_form_must_come_from_the_hubs_page() {
    let hub = Hub::new().await;
    let (_, user_code) = codes(&hub, CLI).await;
    for (origin, referer) in [
        (None, None),
        (Some("https://evil.test"), None),
        (Some("null"), Some("https://hub.test/device")),
        (Some("http://hub.test"), None),
        (None, Some("https://evil.test/device")),
    ] {
        let response = submit(&hub, &user_code, origin, referer).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{origin:?} {referer:?}"
        );
        assert!(response.headers().get(header::SET_COOKIE).is_none());
    }
    // No Origin, but a Referer on the hub: accepted.
    let response = submit(
        &hub,
        &user_code,
        None,
        Some("https://hub.test/device?user_code=x"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn codes_are_stored_only_as_hashes() {
    let hub = Hub::new().await;
    let (device_code, user_code) = codes(&hub, CLI).await;
    enter_and_go_to_idp(&hub, &user_code).await;
    let values = hub.store.dump_device_codes().await.unwrap();
    assert!(values.len() >= 9, "{values:?}");
    let normalised = user_code.replace('-', "");
    for value in &values {
        for secret in [
            device_code.as_str(),
            user_code.as_str(),
            normalised.as_str(),
        ] {
            assert!(!value.contains(secret), "{secret} stored in clear: {value}");
        }
    }
    let row = hub
        .store
        .device_code_by_user_hash(&UserCode::parse(&user_code).unwrap().hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.device_code_hash.len(), 64);
    assert_eq!(
        row.device_code_hash,
        crate::sessions::secrets::sha256_hex(device_code.as_bytes())
    );
}

#[tokio::test]
async fn without_an_upstream_the_page_says_so() {
    let hub = Hub::without_upstream().await;
    let (_, user_code) = codes(&hub, CLI).await;
    let response = enter(&hub, &user_code).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn discovery_lists_the_device_endpoint() {
    let hub = Hub::new().await;
    let doc = expect_json(
        hub.get("/.well-known/openid-configuration", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        doc["device_authorization_endpoint"],
        "https://hub.test/device_authorization"
    );
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(GRANT))
    );
}

#[test]
fn user_codes_are_uniform_over_the_alphabet_and_normalised() {
    let rng = ring::rand::SystemRandom::new();
    let mut counts = [0u32; 20];
    for _ in 0..500 {
        let code = UserCode::generate(&rng).unwrap();
        let shown = code.display();
        assert_eq!(shown.len(), LEN + 1);
        for b in shown.bytes().filter(|b| *b != b'-') {
            let i = ALPHABET.iter().position(|a| *a == b).unwrap();
            counts[i] += 1;
        }
        assert_eq!(UserCode::parse(&shown).unwrap().hash(), code.hash());
    }
    // 4,000 letters, 200 expected per letter: every letter shows up.
    assert!(counts.iter().all(|c| *c > 100), "{counts:?}");
    assert_eq!(
        UserCode::parse(" bcdf-ghjk ").unwrap().display(),
        "BCDF-GHJK"
    );
    assert_eq!(
        UserCode::parse("BC DF GH JK").unwrap().display(),
        "BCDF-GHJK"
    );
    for bad in [
        "",
        "BCDF-GHJ",
        "BCDF-GHJKL",
        "BCDF-GHJA",
        "BCDF-GHJ1",
        "ÉCDF-GHJK",
    ] {
        assert!(UserCode::parse(bad).is_none(), "{bad}");
    }
    assert!(UserCode::parse(&"B".repeat(100)).is_none());
    assert!(!format!("{:?}", UserCode::parse("BCDF-GHJK").unwrap()).contains("BCDF"));
}

#[test]
fn pending_logins_of_both_kinds_decode() {
    let authorize = AuthorizeRequest {
        client_id: "app".to_owned(),
        redirect_uri: "https://app.test/cb".to_owned(),
        scope: "openid".to_owned(),
        state: None,
        nonce: None,
        code_challenge: "x".repeat(43),
    };
    // As /authorize stores it (the bare request), and as the device page stores it.
    let stored = serde_json::to_string(&authorize).unwrap();
    let decoded: LoginPurpose = serde_json::from_str(&stored).unwrap();
    assert_eq!(decoded, LoginPurpose::Authorize(authorize));
    let device = LoginPurpose::Device(DeviceLogin {
        device_id: "d1".to_owned(),
        client_id: CLI.to_owned(),
    });
    let stored = serde_json::to_string(&device).unwrap();
    let decoded: LoginPurpose = serde_json::from_str(&stored).unwrap();
    assert_eq!(decoded, device);
    assert_eq!(decoded.client_id(), CLI);
}
