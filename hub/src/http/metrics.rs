//! The Prometheus app served on the separate metrics listener (plain HTTP).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

/// The scrape route.
pub const METRICS: &str = "/metrics";

/// The Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics` over the recorder behind `handle`.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route(METRICS, get(scrape))
        .fallback(super::error::not_found)
        .with_state(handle)
}

/// Renders every metric.
async fn scrape(State(handle): State<PrometheusHandle>) -> impl IntoResponse {
    // No background upkeep task runs with `install_recorder`: drain histograms here.
    handle.run_upkeep();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], handle.render())
}
