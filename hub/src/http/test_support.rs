//! Fixtures for handler tests: an [`AppState`] without sockets, store or key manager.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use tokio::sync::watch;
use tower::ServiceExt;

use super::{AppState, Probe, ProbeResult, PublishedJwks};
use crate::config::Issuer;

/// A JWKS document for tests.
pub const TEST_JWKS: &str =
    r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256","x":"x","y":"y"}]}"#;

/// The JWKS max-age tests use.
pub const TEST_MAX_AGE: Duration = Duration::from_secs(60);

/// A store probe that always answers the same.
pub struct FixedProbe(pub ProbeResult);

impl Probe for FixedProbe {
    fn check(&self) -> Pin<Box<dyn Future<Output = ProbeResult> + Send + '_>> {
        Box::pin(std::future::ready(self.0.clone()))
    }
}

/// A state for `https://hub.test`; `jwks` is `None` for "keys not loaded".
pub fn state(
    jwks: Option<&str>,
    store: ProbeResult,
) -> (AppState, watch::Sender<Option<Arc<PublishedJwks>>>) {
    let published = jwks.map(|body| {
        Arc::new(PublishedJwks {
            body: Bytes::from(body.to_owned()),
        })
    });
    let (tx, rx) = watch::channel(published);
    let issuer = Issuer::parse("https://hub.test").unwrap();
    let state = AppState::new(
        issuer,
        "ES256",
        rx,
        TEST_MAX_AGE,
        Arc::new(FixedProbe(store)),
    );
    (state, tx)
}

/// A ready state.
pub fn ready_state() -> AppState {
    state(Some(TEST_JWKS), Ok(())).0
}

/// Sends one GET through the router.
pub async fn get(state: AppState, path: &str) -> Response {
    let request = Request::get(path).body(Body::empty()).unwrap();
    super::router(state).oneshot(request).await.unwrap()
}

/// Reads a response body.
pub async fn body(response: Response) -> Bytes {
    axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap()
}

/// Reads a JSON response body.
pub async fn json(response: Response) -> serde_json::Value {
    serde_json::from_slice(&body(response).await).unwrap()
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> serde_json::Value {
    assert_eq!(response.status(), status);
    json(response).await
}
