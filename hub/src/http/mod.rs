//! The hub's HTTP surface.
//!
//! - [`router`]: the whole app as an [`axum::Router`], testable with `oneshot`.
//! - [`state`]: [`AppState`], shared by handlers.
//! - [`error`]: [`HttpError`], the one place errors become responses.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`observe`]: request spans and the latency histogram.
//! - [`server`]: HTTPS and plain-HTTP serving with graceful shutdown.
//! - [`metrics`]: the Prometheus `/metrics` app for the separate listener.

pub mod error;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod server;
pub mod state;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::routing::get;

pub use self::error::HttpError;
pub use self::state::{AppState, Probe, ProbeResult, PublishedJwks};
use crate::oidc;

/// The hub's public app: OIDC provider routes, health, a JSON 404, tracing and metrics.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(oidc::router())
        .route(health::HEALTHZ, get(health::healthz))
        .route(health::READYZ, get(health::readyz))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn(observe::record_duration))
        .layer(observe::trace_layer())
        .with_state(state)
}
