//! `GET|POST /logout` (`end_session_endpoint`, OpenID Connect RP-Initiated Logout 1.0).
//!
//! `id_token_hint` (signature checked, expiry not: a logout with an old ID token is still
//! a logout) names the session to end. The browser is sent to `post_logout_redirect_uri`
//! only if it is registered for the client the ID token was issued to; otherwise a small
//! "signed out" page is shown. The hub keeps no browser session of its own, so there is
//! no cookie to clear.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use url::Url;

use super::claims::IdTokenClaims;
use super::error::{BrowserError, OAuthError, no_store, page, see_other};
use super::params::Params;
use super::provider::Provider;
use super::{audit_kind, started};
use crate::http::AppState;
use crate::sessions::{REASON_LOGOUT, SessionId};
use crate::store::{AuditOutcome, AuditRecord};

/// How long after its `exp` an ID token is still accepted as a logout hint.
const HINT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Serves the end-session endpoint.
#[tracing::instrument(name = "oidc.logout", skip_all, fields(client_id = tracing::field::Empty))]
pub async fn logout(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let result = async {
        let provider = started(&state)?;
        let params = Params::parse_both(query.as_deref(), &body)?;
        end_session(&provider, &params).await
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn end_session(provider: &Provider, params: &Params) -> Result<Response, BrowserError> {
    let now = provider.now();
    let hint = match params.get("id_token_hint") {
        Some(token) => Some(verify_hint(provider, token, params.get("client_id"))?),
        None => None,
    };
    let client_id = hint
        .as_ref()
        .and_then(|claims| claims.aud.iter().next().map(str::to_owned))
        .or_else(|| params.get("client_id").map(str::to_owned));
    if let Some(client_id) = &client_id {
        tracing::Span::current().record("client_id", client_id.as_str());
    }
    if let Some(claims) = &hint {
        let revoked = provider
            .sessions()
            .revoke(&SessionId::new(claims.sid.as_str()), REASON_LOGOUT, now)
            .await
            .map_err(OAuthError::internal)?;
        provider
            .audit(
                AuditRecord::new(
                    now.as_secs(),
                    audit_kind::LOGOUT,
                    claims.sub.as_str(),
                    AuditOutcome::Success,
                )
                .with_subject(claims.sid.as_str())
                .with_reason(if revoked { "revoked" } else { "already_ended" })
                .with_details(serde_json::json!({ "client_id": client_id })),
            )
            .await;
    }
    if let Some(target) = params.get("post_logout_redirect_uri") {
        let client = client_id
            .as_deref()
            .and_then(|id| provider.clients().get(id))
            .ok_or_else(|| {
                OAuthError::invalid_request(
                    "post_logout_redirect_uri needs id_token_hint or client_id",
                )
            })?;
        if !client.post_logout_redirect_allowed(target) {
            return Err(OAuthError::invalid_request(
                "post_logout_redirect_uri is not registered for this client",
            )
            .into());
        }
        let mut target = Url::parse(target)
            .map_err(|_| OAuthError::invalid_request("post_logout_redirect_uri is not a URL"))?;
        if let Some(state) = params.get("state") {
            target.query_pairs_mut().append_pair("state", state);
        }
        return Ok(see_other(target.as_str()));
    }
    let mut response = page(
        "Signed out",
        "You are signed out of Tether. You can close this window.",
    )
    .into_response();
    no_store(&mut response);
    Ok(response)
}

/// Verifies an ID token the hub issued (signature, `iss`, `aud`; expiry tolerated for
/// [`HINT_MAX_AGE`]). The audience is `client_id` if given, else the token's own `aud`
/// (authenticated by the signature check that follows).
fn verify_hint(
    provider: &Provider,
    token: &str,
    client_id: Option<&str>,
) -> Result<IdTokenClaims, OAuthError> {
    let invalid =
        || OAuthError::invalid_request("id_token_hint is not an ID token issued by this hub");
    let audience = match client_id {
        Some(id) => id.to_owned(),
        None => unverified_audience(token).ok_or_else(invalid)?,
    };
    provider
        .verifier_with_leeway(&audience, HINT_MAX_AGE)
        .verify_as::<IdTokenClaims>(token, provider.now())
        .map_err(|err| {
            tracing::info!(reason = %err, "id_token_hint refused");
            invalid()
        })
}

/// The first `aud` of a JWT's payload, before verification (only to choose what to verify
/// against).
fn unverified_audience(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match value.get("aud")? {
        serde_json::Value::String(aud) => Some(aud.clone()),
        serde_json::Value::Array(auds) => auds.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}
