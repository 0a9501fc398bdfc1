//! Health, readiness, errors and metrics, through the router without sockets.

use axum::http::StatusCode;

use super::test_support::{expect_json, get, ready_state, state};

#[tokio::test]
async fn healthz_is_ok_even_before_keys() {
    let (state, _tx) = state(None, Err("down".to_owned()));
    let body = expect_json(get(state, "/healthz").await, StatusCode::OK).await;
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_is_ready_with_store_and_keys() {
    let body = expect_json(get(ready_state(), "/readyz").await, StatusCode::OK).await;
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readyz_is_503_before_keys_are_loaded() {
    let (state, tx) = state(None, Ok(()));
    let body = expect_json(
        get(state.clone(), "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("signing keys")
    );

    // Publishing keys makes the same state ready: handlers read the watch channel.
    tx.send_replace(ready_state().jwks());
    expect_json(get(state, "/readyz").await, StatusCode::OK).await;
}

#[tokio::test]
async fn readyz_is_503_when_the_store_is_down() {
    let (state, _tx) = state(Some("{}"), Err("connection refused".to_owned()));
    let body = expect_json(get(state, "/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        body["error_description"],
        "storage not ready: connection refused"
    );
}

#[tokio::test]
async fn unknown_path_is_a_json_404() {
    let body = expect_json(get(ready_state(), "/nope").await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn internal_errors_do_not_leak() {
    use axum::response::IntoResponse;

    let err = super::HttpError::internal(std::io::Error::other("db password is hunter2"));
    let response = err.into_response();
    let body = expect_json(response, StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_eq!(body["error"], "server_error");
    assert!(!body.to_string().contains("hunter2"));
}

#[tokio::test]
async fn request_latency_is_recorded_by_route_and_status() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let guard = metrics::set_default_local_recorder(&recorder);
    // Only the first poll runs on this thread-local recorder: the current-thread test
    // runtime polls everything here.
    get(ready_state(), "/healthz").await;
    get(ready_state(), "/nope?code=secret").await;
    drop(guard);
    let text = handle.render();
    assert!(
        text.contains(
            r#"tether_hub_http_request_duration_seconds_count{route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn metrics_app_serves_prometheus_text() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("tether_test_total").increment(1)
    });
    let request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(super::metrics::router(handle), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = super::test_support::body(response).await;
    assert!(String::from_utf8_lossy(&text).contains("tether_test_total 1"));
}
