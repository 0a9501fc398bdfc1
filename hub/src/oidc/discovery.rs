//! `/.well-known/openid-configuration`: what the hub implements today, and nothing more.
//!
//! Endpoints appear here only once they are routed (the authorization and token
//! endpoints arrive with browser login). Verifiers that only check tokens — the
//! Kubernetes API server, go-oidc, openid-client v6 `discovery()` (which checks `issuer`
//! equality and fetches `jwks_uri` lazily) — need no more than this.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use tether_common::token::claims::name;

use super::routes;
use crate::config::Issuer;
use crate::http::AppState;

/// `Cache-Control` of the discovery document: it changes only on reconfiguration.
const CACHE_CONTROL: &str = "public, max-age=300";

/// Claims the hub's tokens carry.
pub const CLAIMS_SUPPORTED: [&str; 10] = [
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
];

/// The provider metadata (OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderMetadata {
    /// The issuer, exactly as in `iss`.
    pub issuer: String,
    /// The JWKS URL.
    pub jwks_uri: String,
    /// REQUIRED by the spec. Empty on purpose: no authorization endpoint exists yet, so
    /// the hub supports no response type; `["code"]` arrives with browser login.
    /// openid-client v6, go-oidc and the Kubernetes API server do not read this field.
    pub response_types_supported: Vec<&'static str>,
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
            jwks_uri: issuer.endpoint(routes::JWKS),
            response_types_supported: Vec::new(),
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: vec![signing_alg.to_owned()],
            claims_supported: CLAIMS_SUPPORTED.to_vec(),
        }
    }

    /// Every endpoint URL listed in the document (each must be routed).
    pub fn endpoints(&self) -> Vec<&str> {
        vec![self.jwks_uri.as_str()]
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
