//! `/.well-known/openid-configuration`: what the hub implements today, and nothing more.
//!
//! Endpoints appear here only once they are routed; every URL is built from the same
//! [`routes`] constants the router uses. The authorization endpoint is listed even when
//! no upstream IdP is configured: it then answers `temporarily_unavailable`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use tether_common::token::claims::name;

use super::authorize::{RESPONSE_TYPE_CODE, SCOPES_SUPPORTED};
use super::claims::claim;
use super::routes;
use super::token::grant_type;
use crate::config::Issuer;
use crate::http::AppState;

/// `Cache-Control` of the discovery document: it changes only on reconfiguration.
const CACHE_CONTROL: &str = "public, max-age=300";

/// Grant types the token endpoint implements.
pub const GRANT_TYPES_SUPPORTED: [&str; 4] = [
    grant_type::AUTHORIZATION_CODE,
    grant_type::REFRESH_TOKEN,
    grant_type::TOKEN_EXCHANGE,
    grant_type::DEVICE_CODE,
];

/// Client authentication methods of the token and revocation endpoints.
pub const TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED: [&str; 3] =
    ["client_secret_basic", "client_secret_post", "none"];

/// Claims the hub's tokens carry.
pub const CLAIMS_SUPPORTED: [&str; 13] = [
    name::ISS,
    name::SUB,
    name::AUD,
    name::EXP,
    name::IAT,
    name::NBF,
    name::JTI,
    name::SID,
    name::USERNAME,
    name::GROUPS,
    claim::PREFERRED_USERNAME,
    claim::NONCE,
    claim::AUTH_TIME,
];

/// The provider metadata (OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderMetadata {
    /// The issuer, exactly as in `iss`.
    pub issuer: String,
    /// The authorization endpoint (browser login through the upstream IdP).
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The UserInfo endpoint.
    pub userinfo_endpoint: String,
    /// RFC 7009 revocation.
    pub revocation_endpoint: String,
    /// RP-initiated logout.
    pub end_session_endpoint: String,
    /// The JWKS URL.
    pub jwks_uri: String,
    /// RFC 8628 device authorization (RFC 8414 metadata name).
    pub device_authorization_endpoint: String,
    /// Only the authorization code flow.
    pub response_types_supported: Vec<&'static str>,
    /// Authorization responses go in the query string.
    pub response_modes_supported: Vec<&'static str>,
    /// See [`GRANT_TYPES_SUPPORTED`].
    pub grant_types_supported: Vec<&'static str>,
    /// PKCE: `S256` only (`plain` is refused).
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// See [`TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED`].
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Same as the token endpoint's.
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Scopes the hub grants; others are ignored.
    pub scopes_supported: Vec<&'static str>,
    /// RFC 9207: authorization responses carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// `public`: `sub` is the stable upstream subject, the same for every client.
    pub subject_types_supported: Vec<&'static str>,
    /// The configured signing algorithm.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Claims the hub's tokens carry.
    pub claims_supported: Vec<&'static str>,
}

impl ProviderMetadata {
    /// The metadata of a hub with `issuer` signing with `signing_alg`.
    pub fn new(issuer: &Issuer, signing_alg: &str) -> Self {
        Self {
            issuer: issuer.as_str().to_owned(),
            authorization_endpoint: issuer.endpoint(routes::AUTHORIZE),
            token_endpoint: issuer.endpoint(routes::TOKEN),
            userinfo_endpoint: issuer.endpoint(routes::USERINFO),
            revocation_endpoint: issuer.endpoint(routes::REVOKE),
            end_session_endpoint: issuer.endpoint(routes::LOGOUT),
            jwks_uri: issuer.endpoint(routes::JWKS),
            device_authorization_endpoint: issuer.endpoint(routes::DEVICE_AUTHORIZATION),
            response_types_supported: vec![RESPONSE_TYPE_CODE],
            response_modes_supported: vec!["query"],
            grant_types_supported: GRANT_TYPES_SUPPORTED.to_vec(),
            code_challenge_methods_supported: vec![super::authorize::PKCE_S256],
            token_endpoint_auth_methods_supported: TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED.to_vec(),
            revocation_endpoint_auth_methods_supported: TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED
                .to_vec(),
            scopes_supported: SCOPES_SUPPORTED.to_vec(),
            authorization_response_iss_parameter_supported: true,
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: vec![signing_alg.to_owned()],
            claims_supported: CLAIMS_SUPPORTED.to_vec(),
        }
    }

    /// Every endpoint URL listed in the document (each must be routed).
    pub fn endpoints(&self) -> Vec<&str> {
        vec![
            self.authorization_endpoint.as_str(),
            self.token_endpoint.as_str(),
            self.userinfo_endpoint.as_str(),
            self.revocation_endpoint.as_str(),
            self.end_session_endpoint.as_str(),
            self.jwks_uri.as_str(),
            self.device_authorization_endpoint.as_str(),
        ]
    }
}

/// Serves the discovery document.
pub async fn discovery(State(state): State<AppState>) -> impl IntoResponse {
    let metadata = ProviderMetadata::new(state.issuer(), state.signing_alg());
    (
        [(header::CACHE_CONTROL, CACHE_CONTROL)],
        axum::Json(metadata),
    )
}
