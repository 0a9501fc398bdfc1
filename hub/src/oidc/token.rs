//! `POST /token`: client authentication, then one of four grants —
//! `authorization_code` (here), `refresh_token` ([`super::refresh`]), RFC 8693 token
//! exchange ([`super::exchange`]) and the RFC 8628 device code ([`super::device`]).
//!
//! Every answer carries `Cache-Control: no-store`; every request is counted in
//! `tether_hub_token_requests_total{grant,outcome}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tether_common::secret::Secret;

use super::claims::{AccessTokenClaims, IdTokenClaims, kind};
use super::error::{OAuthError, OAuthErrorCode};
use super::params::{ClientCredentials, Params};
use super::provider::Provider;
use super::{METRIC_TOKEN_REQUESTS, exchange, refresh, started};
use crate::clients::{Client, ClientError};
use crate::http::AppState;
use crate::sessions::{Session, SessionError};

/// `grant_type` values.
pub mod grant_type {
    /// RFC 6749 §4.1.3.
    pub const AUTHORIZATION_CODE: &str = "authorization_code";
    /// RFC 6749 §6.
    pub const REFRESH_TOKEN: &str = "refresh_token";
    /// RFC 8693 §2.1.
    pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    /// RFC 8628 §3.4 ([`crate::oidc::device`]).
    pub const DEVICE_CODE: &str = crate::oidc::device::GRANT_TYPE;
}

/// The `token_type` of every token the endpoint issues.
pub const TOKEN_TYPE_BEARER: &str = "Bearer";

/// Serves the token endpoint.
#[tracing::instrument(name = "oidc.token", skip_all, fields(grant_type = tracing::field::Empty, client_id = tracing::field::Empty, outcome = tracing::field::Empty))]
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let mut grant_label = "unknown";
    let result = async {
        let provider = started(&state)?;
        require_form(&headers)?;
        let params = Params::parse(&body)?;
        let grant = params.required("grant_type")?;
        grant_label = match grant {
            grant_type::AUTHORIZATION_CODE => "authorization_code",
            grant_type::REFRESH_TOKEN => "refresh_token",
            grant_type::TOKEN_EXCHANGE => "token_exchange",
            grant_type::DEVICE_CODE => "device_code",
            _ => "other",
        };
        tracing::Span::current().record("grant_type", grant_label);
        let client = authenticate(&provider, &headers, &params)?;
        tracing::Span::current().record("client_id", client.id());
        match grant {
            grant_type::AUTHORIZATION_CODE => authorization_code(&provider, &client, &params).await,
            grant_type::REFRESH_TOKEN => refresh::refresh_token(&provider, &client, &params).await,
            grant_type::TOKEN_EXCHANGE => exchange::token_exchange(&provider, &client, &params).await,
            grant_type::DEVICE_CODE => super::device::device_code_grant(&provider, &client, &params).await,
            _ => Err(OAuthError::new(
                OAuthErrorCode::UnsupportedGrantType,
                "supported grant types: authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:token-exchange, urn:ietf:params:oauth:grant-type:device_code",
            )),
        }
    }
    .await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(err) => err.code().as_str(),
    };
    tracing::Span::current().record("outcome", outcome);
    metrics::counter!(METRIC_TOKEN_REQUESTS, "grant" => grant_label, "outcome" => outcome)
        .increment(1);
    match result {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// The body must be a form (RFC 6749 §3.2).
pub fn require_form(headers: &HeaderMap) -> Result<(), OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

/// Authenticates the client (`client_secret_basic`, `client_secret_post`, or `none` for
/// public clients). Every failure is the same `invalid_client`.
pub fn authenticate(
    provider: &Provider,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Client, OAuthError> {
    let credentials = ClientCredentials::from_request(headers, params)?;
    provider
        .clients()
        .authenticate(&credentials.client_id, credentials.secret.as_ref())
        .cloned()
        .map_err(|err| {
            tracing::info!(reason = %err, "client authentication failed");
            let description = match err {
                ClientError::UnexpectedSecret(_) => "public clients must not send a client secret",
                _ => "client authentication failed",
            };
            OAuthError::invalid_client(description, credentials.basic)
        })
}

/// `authorization_code`: redeem the code (PKCE S256, same client and redirect URI).
async fn authorization_code(
    provider: &Provider,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    let code = Secret::new(params.required("code")?);
    let redirect_uri = params.required("redirect_uri")?;
    let code_verifier = params.required("code_verifier")?;
    let now = provider.now();
    let (session, grant) = provider
        .sessions()
        .redeem_code(&code, client.id(), redirect_uri, code_verifier, now)
        .await
        .map_err(session_error)?;
    let tokens = mint(
        provider,
        &session,
        client.id(),
        &grant.scope,
        grant.nonce.as_deref(),
    )?;
    let refresh_token = provider
        .sessions()
        .issue_refresh(&session, client.id(), now)
        .await
        .map_err(session_error)?;
    Ok(token_response(TokenResponse {
        refresh_token: Some(refresh_token.expose().to_owned()),
        scope: Some(grant.scope),
        ..tokens
    }))
}

/// The access and ID tokens of `session` for `client_id`.
pub fn mint(
    provider: &Provider,
    session: &Session,
    client_id: &str,
    scope: &str,
    nonce: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let now = provider.now();
    let issuer = provider.issuer().as_str();
    let lifetimes = provider.lifetimes();
    let access = AccessTokenClaims::mint(
        issuer,
        &session.subject,
        &session.username,
        session.groups.clone(),
        session.id.as_str(),
        client_id,
        scope,
        now,
        lifetimes.access_token,
    );
    let id = IdTokenClaims {
        iss: issuer.to_owned(),
        sub: session.subject.clone(),
        aud: client_id.into(),
        exp: now.saturating_add(lifetimes.id_token),
        iat: now,
        auth_time: session.created_at,
        nonce: nonce.map(str::to_owned),
        sid: session.id.as_str().to_owned(),
        username: session.username.clone(),
        preferred_username: session.username.clone(),
        groups: session.groups.clone(),
    };
    Ok(TokenResponse {
        access_token: provider.sign(&access, kind::ACCESS)?,
        token_type: TOKEN_TYPE_BEARER,
        expires_in: lifetimes.access_token.as_secs(),
        id_token: Some(provider.sign(&id, kind::ID)?),
        refresh_token: None,
        scope: None,
        issued_token_type: None,
    })
}

/// A successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Serialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    /// The ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The new refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 8693: the type of `access_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// JSON with `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
pub fn token_response(body: TokenResponse) -> Response {
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A session error as the token endpoint answers it.
pub fn session_error(err: SessionError) -> OAuthError {
    match err {
        SessionError::InvalidGrant(reason) => OAuthError::invalid_grant(reason),
        SessionError::InvalidRequest(reason) => OAuthError::invalid_request(reason),
        SessionError::NotFound => OAuthError::invalid_grant("the session does not exist"),
        SessionError::Expired => OAuthError::invalid_grant("the session has expired; log in again"),
        SessionError::Revoked => OAuthError::invalid_grant("the session was revoked; log in again"),
        other => OAuthError::internal(other),
    }
}

#[cfg(test)]
mod tests;
