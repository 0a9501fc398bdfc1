//! Per-request tracing spans and the latency histogram.
//!
//! Only the method, the matched route template, the status and the latency are recorded:
//! never the URI (queries can carry codes and tokens) nor headers.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

/// Histogram of request latency in seconds, labelled `route` and `status`.
pub const REQUEST_DURATION: &str = "tether_hub_http_request_duration_seconds";

/// The `route` label of requests that matched no route (keeps label cardinality bounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The tower-http trace layer the hub uses.
pub type HttpTraceLayer =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, (), RecordResponse>;

/// A trace layer with [`RequestSpan`] and [`RecordResponse`].
pub fn trace_layer() -> HttpTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(RecordResponse)
}

/// The route template a request matched, or [`UNMATCHED_ROUTE`].
fn route_of<B>(request: &http::Request<B>) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}

/// Opens an `http.request` span with the method and the matched route.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &http::Request<B>) -> Span {
        tracing::info_span!(
            "http.request",
            http.method = %request.method(),
            http.route = route_of(request),
            http.status = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        )
    }
}

/// Records status and latency on the span and logs one line per response.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordResponse;

impl<B> OnResponse<B> for RecordResponse {
    fn on_response(self, response: &http::Response<B>, latency: Duration, span: &Span) {
        let status = response.status().as_u16();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        span.record("http.status", status);
        span.record("latency_ms", latency_ms);
        tracing::info!(status, latency_ms, "request served");
    }
}

/// Middleware: observes [`REQUEST_DURATION`] for every request.
pub async fn record_duration(request: Request, next: Next) -> Response {
    let route = route_of(&request).to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(REQUEST_DURATION, "route" => route, "status" => status)
        .record(start.elapsed().as_secs_f64());
    response
}
