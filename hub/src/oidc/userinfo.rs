//! `GET|POST /userinfo`: who the bearer of a hub access token is, as the session says now.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::claims::{AccessTokenClaims, TOKEN_USE_ACCESS};
use super::error::{OAuthError, no_store};
use super::params::bearer_token;
use super::provider::Provider;
use super::started;
use crate::http::AppState;
use crate::sessions::SessionId;

/// The UserInfo response.
#[derive(Debug, Serialize)]
pub struct UserInfo {
    /// The stable upstream subject.
    pub sub: String,
    /// The Kubernetes username.
    pub username: String,
    /// Same as `username`.
    pub preferred_username: String,
    /// The Kubernetes groups.
    pub groups: Vec<String>,
}

/// Serves the UserInfo endpoint (token in `Authorization: Bearer` only).
#[tracing::instrument(name = "oidc.userinfo", skip_all)]
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let provider = started(&state)?;
        let token = bearer_token(&headers).ok_or_else(|| {
            OAuthError::invalid_token("send a hub access token as Authorization: Bearer")
        })?;
        let claims = verify_access_token(&provider, token)?;
        let sid = claims.sid().unwrap_or_default();
        let session = provider
            .sessions()
            .session(&SessionId::new(sid), provider.now())
            .await
            .map_err(|err| {
                if err.is_client_error() {
                    OAuthError::invalid_token("the session of this token has ended")
                } else {
                    OAuthError::internal(err)
                }
            })?;
        Ok::<_, OAuthError>(UserInfo {
            sub: session.subject,
            preferred_username: session.username.clone(),
            username: session.username,
            groups: session.groups,
        })
    }
    .await;
    match result {
        Ok(info) => {
            let mut response = Json(info).into_response();
            no_store(&mut response);
            response
        }
        Err(err) => err.into_response(),
    }
}

/// Verifies a hub access token (signature by the published keys, `iss`, `aud` = issuer,
/// `exp`, `token_use`); any failure is `invalid_token`.
pub fn verify_access_token(
    provider: &Provider,
    token: &str,
) -> Result<AccessTokenClaims, OAuthError> {
    let claims: AccessTokenClaims = provider
        .verifier(provider.issuer().as_str())
        .verify_as(token, provider.now())
        .map_err(|err| {
            tracing::info!(reason = %err, "access token refused");
            OAuthError::invalid_token("the access token is invalid or expired")
        })?;
    if claims.token_use != TOKEN_USE_ACCESS || claims.sid().is_none() {
        return Err(OAuthError::invalid_token("not a hub access token"));
    }
    Ok(claims)
}
