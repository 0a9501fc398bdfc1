//! The hub as an OpenID Connect provider.
//!
//! - [`routes`]: route paths, shared by the router and discovery.
//! - [`discovery`]: the provider metadata at `/.well-known/openid-configuration`.
//! - [`jwks`]: the published signing keys.

pub mod discovery;
pub mod jwks;
pub mod routes;

#[cfg(test)]
mod tests;

use axum::Router;
use axum::routing::get;

use crate::http::AppState;

/// The OIDC provider's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(routes::DISCOVERY, get(discovery::discovery))
        .route(routes::JWKS, get(jwks::jwks))
}
