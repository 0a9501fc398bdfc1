//! The hub as an OpenID Connect provider.
//!
//! - [`routes`]: route paths, shared by the router and discovery.
//! - [`discovery`]: the provider metadata at `/.well-known/openid-configuration`.
//! - [`jwks`]: the published signing keys.
//! - [`authorize`]: `GET /authorize`, the start of a browser login.
//! - [`callback`]: `GET /callback`, the upstream IdP's redirect back.
//! - [`device`]: the device authorization grant (RFC 8628): `POST /device_authorization`,
//!   the `/device` code entry page and the `device_code` token grant.
//! - [`token`]: `POST /token` with [`refresh`] and [`exchange`] (RFC 8693).
//! - [`userinfo`], [`revoke`] (RFC 7009), [`logout`] (RP-initiated logout).
//! - [`provider`]: [`Provider`], the backends the endpoints use; [`LoginUpstream`].
//! - [`error`]: [`OAuthError`] and [`BrowserError`], the one place errors become responses.
//! - [`params`]: request parameters, client credentials, bearer tokens.
//! - [`claims`]: ID token and hub access token claims.
//! - [`clusters`]: `GET /api/v1/clusters`, the clusters a user may reach (people policy).
//! - [`revalidate`]: re-validation of sessions at the upstream IdP (refresh and the
//!   background sweeper).

pub mod authorize;
pub mod callback;
pub mod claims;
pub mod clusters;
pub mod device;
pub mod discovery;
pub mod error;
pub mod exchange;
pub mod jwks;
pub mod logout;
pub mod params;
pub mod provider;
pub mod refresh;
pub mod revalidate;
pub mod revoke;
pub mod routes;
pub mod token;
pub mod userinfo;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use self::error::{BrowserError, OAuthError, OAuthErrorCode};
pub use self::provider::{Lifetimes, LoginUpstream, Provider};
use crate::http::AppState;

/// Counter of browser logins at the callback, labelled `outcome` (`success`, `refused`,
/// `upstream_refused`, `upstream_error`, `error`).
pub const METRIC_LOGINS: &str = "tether_hub_logins_total";
/// Counter of token endpoint requests, labelled `grant` and `outcome` (`success` or the
/// OAuth error code).
pub const METRIC_TOKEN_REQUESTS: &str = "tether_hub_token_requests_total";

/// Audit kinds written by the OIDC endpoints.
pub mod audit_kind {
    /// A browser login completed (session created, code issued).
    pub const LOGIN_SUCCESS: &str = "login.success";
    /// A browser login was refused (state mismatch, expired login, upstream refusal...).
    pub const LOGIN_REFUSED: &str = "login.refused";
    /// A token exchange for a cluster token (granted or refused).
    pub const TOKEN_EXCHANGE: &str = "token.exchange";
    /// An RFC 7009 revocation request.
    pub const TOKEN_REVOKE: &str = "token.revoke";
    /// A session ended because the upstream IdP no longer accepts the user.
    pub const SESSION_UPSTREAM_REJECTED: &str = "session.upstream_rejected";
    /// An RP-initiated logout.
    pub const LOGOUT: &str = "logout";
    /// RFC 8628: a client started a device authorization (device and user codes issued).
    pub const DEVICE_AUTHORIZED: &str = "device.authorized";
    /// A user entered a device's code and logged in: the device code is approved.
    pub const DEVICE_APPROVED: &str = "device.approved";
    /// The upstream IdP refused the login of a device code (or the user cancelled).
    pub const DEVICE_DENIED: &str = "device.denied";
    /// An approved device code was redeemed for tokens, or a redemption was refused (wrong
    /// client, reuse).
    pub const DEVICE_TOKEN_ISSUED: &str = "device.token_issued";
    /// A user listed the clusters they may reach (`GET /api/v1/clusters`).
    pub const CLUSTERS_LISTED_BY_USER: &str = "cluster.listed_by_user";
}

/// The OIDC provider's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(routes::DISCOVERY, get(discovery::discovery))
        .route(routes::JWKS, get(jwks::jwks))
        .route(routes::AUTHORIZE, get(authorize::authorize))
        .route(routes::CALLBACK, get(callback::callback))
        .route(routes::TOKEN, post(token::token))
        .route(
            routes::USERINFO,
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route(routes::REVOKE, post(revoke::revoke))
        .route(routes::LOGOUT, get(logout::logout).post(logout::logout))
        .route(
            routes::DEVICE_AUTHORIZATION,
            post(device::device_authorization),
        )
        .route(
            routes::DEVICE,
            get(device::device_page).post(device::device_submit),
        )
        .route(routes::CLUSTERS, get(clusters::clusters))
}

/// The provider, or `temporarily_unavailable` while the hub is starting.
fn started(state: &AppState) -> Result<Arc<Provider>, OAuthError> {
    state.provider().ok_or_else(|| {
        OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "the hub is starting; try again in a moment",
        )
    })
}
