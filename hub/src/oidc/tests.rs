//! Discovery and JWKS through the router without sockets.

use axum::http::{StatusCode, header};

use super::discovery::ProviderMetadata;
use super::routes;
use crate::http::test_support::{
    TEST_JWKS, TEST_MAX_AGE, body, expect_json, get, ready_state, state,
};

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
    assert_eq!(doc["response_types_supported"], serde_json::json!([]));
    assert!(
        doc["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&"groups".into())
    );
    for absent in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "revocation_endpoint",
    ] {
        assert!(
            doc.get(absent).is_none(),
            "{absent} is listed but not implemented"
        );
    }
}

#[tokio::test]
async fn every_listed_endpoint_is_routed() {
    let state = ready_state();
    let metadata = ProviderMetadata::new(state.issuer(), state.signing_alg());
    let doc = serde_json::to_value(&metadata).unwrap();
    let urls: Vec<&str> = doc
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.ends_with("_uri") || key.ends_with("_endpoint"))
        .filter_map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(urls, metadata.endpoints());
    for url in urls {
        let path = url.strip_prefix(state.issuer().as_str()).unwrap();
        let response = get(state.clone(), path).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
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
