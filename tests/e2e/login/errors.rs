//! Every refused request gets its RFC 6749 error code and stores nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use tether_e2e::Pkce;

use super::env::{CLIENT_ID, CLIENT_SECRET, LoginEnv, REDIRECT_URI};

/// GETs `url` at the hub without following redirects: (status, Location, Set-Cookie values).
async fn get(
    env: &LoginEnv,
    url: &str,
    cookie: Option<&str>,
) -> (u16, Option<url::Url>, Vec<String>) {
    let mut req = env.hub.http().get(url);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.expect("GET");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url::Url::parse(url).ok()?.join(l).ok());
    let cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    (status, location, cookies)
}

fn query(url: &url::Url) -> BTreeMap<String, String> {
    url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn authorize_refusals_carry_their_codes_and_store_nothing() {
    let env = LoginEnv::start("login-authz-errors", "5m", "").await;
    let before = env.counts().await;
    let pkce = Pkce::new().expect("pkce");

    // A redirect_uri that is not registered: a 400 page, never a redirect to it.
    let mut bad = url::Url::parse(&env.authorize_url(&pkce, "s1", &[])).expect("url");
    let pairs: Vec<(String, String)> = bad
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "redirect_uri" {
                (k, "https://evil.example/cb".to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    bad.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, location, _) = get(&env, bad.as_str(), None).await;
    assert_eq!(status, 400);
    assert!(
        location.is_none(),
        "must not redirect to an unregistered URI"
    );

    // An unknown client: a 400 page as well (nowhere trusted to redirect to).
    let unknown = env
        .authorize_url(&pkce, "s2", &[])
        .replace("client_id=argocd", "client_id=nobody");
    let (status, location, _) = get(&env, &unknown, None).await;
    assert_eq!((status, location), (400, None));

    // `plain` PKCE is refused for everyone, back at the registered redirect_uri.
    let plain = env
        .authorize_url(&pkce, "s3", &[])
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let (_, location, _) = get(&env, &plain, None).await;
    let location = location.expect("error redirect");
    assert!(location.as_str().starts_with(REDIRECT_URI), "{location}");
    assert_eq!(
        query(&location).get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert_eq!(
        query(&location).get("state").map(String::as_str),
        Some("s3")
    );

    // A public client (the built-in tetherctl, a native app) without PKCE.
    let redirect = "http://127.0.0.1:41234/callback";
    let mut no_pkce = url::Url::parse(&format!("{}/authorize", env.hub.url())).expect("url");
    no_pkce
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "tetherctl")
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid")
        .append_pair("state", "s4");
    let (_, location, _) = get(&env, no_pkce.as_str(), None).await;
    let location = location.expect("error redirect");
    assert!(location.as_str().starts_with(redirect), "{location}");
    assert_eq!(
        query(&location).get("error").map(String::as_str),
        Some("invalid_request")
    );

    assert_eq!(
        env.counts().await,
        before,
        "refused authorize requests stored something"
    );
}

#[tokio::test]
async fn a_state_mismatch_at_the_upstream_callback_stores_nothing() {
    let env = LoginEnv::start("login-state", "5m", "").await;
    let pkce = Pkce::new().expect("pkce");
    let (status, location, cookies) = get(&env, &env.authorize_url(&pkce, "s", &[]), None).await;
    assert!(
        (300..400).contains(&status),
        "authorize redirects to the IdP"
    );
    assert!(
        location
            .expect("to the IdP")
            .as_str()
            .starts_with(env.idp.issuer())
    );
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("tether_login="))
        .and_then(|c| c.split(';').next())
        .expect("a login cookie")
        .to_owned();
    let before = env.counts().await;

    let forged = format!("{}/callback?code=forged&state=not-the-state", env.hub.url());
    let (status, location, _) = get(&env, &forged, Some(&cookie)).await;
    assert_eq!((status, location), (400, None));
    // And without any login cookie at all.
    let (status, _, _) = get(&env, &forged, None).await;
    assert_eq!(status, 400);

    let after = env.counts().await;
    assert_eq!(after["sessions"], before["sessions"]);
    assert_eq!(after["auth_codes"], before["auth_codes"]);
    assert_eq!(after["refresh_tokens"], before["refresh_tokens"]);
}

#[tokio::test]
async fn token_refusals_carry_their_codes() {
    let env = LoginEnv::start("login-token-errors", "5m", "sessions: {code_lifetime: 1s}").await;

    // Wrong code_verifier.
    let (code, _) = env.code("alice", "alice-pass").await;
    let before = env.counts().await;
    let wrong = Pkce::new().expect("pkce");
    let (status, body) = env.redeem(&code, &wrong).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let after = env.counts().await;
    assert_eq!(
        after["refresh_tokens"], before["refresh_tokens"],
        "no tokens issued"
    );

    // Unknown client, bad client secret: invalid_client (401).
    let (code, pkce) = env.code("alice", "alice-pass").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let (status, body) = env.token(&form, Some(("nobody", CLIENT_SECRET))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    let (status, body) = env.token(&form, Some((CLIENT_ID, "wrong-secret"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    // Wrong redirect_uri at the token endpoint.
    let mut wrong_redirect = form;
    wrong_redirect[2] = ("redirect_uri", "http://127.0.0.1:9/other");
    let (status, body) = env
        .token(&wrong_redirect, Some((CLIENT_ID, CLIENT_SECRET)))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // The right request works once; the same code again is refused and revokes the session.
    let (code, pkce) = env.code("alice", "alice-pass").await;
    let (status, tokens) = env.redeem(&code, &pkce).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, body) = env.redeem(&code, &pkce).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    let (status, body) = env.refresh(refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "code reuse revokes: {body}"
    );

    // An expired code (code_lifetime 1s here).
    let (code, pkce) = env.code("alice", "alice-pass").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = env.redeem(&code, &pkce).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // An unsupported grant type and a missing parameter.
    let (status, body) = env
        .token(
            &[("grant_type", "password")],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type")),
        "{body}"
    );
    let (status, body) = env
        .token(
            &[("grant_type", "authorization_code")],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
}
