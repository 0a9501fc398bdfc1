//! The `refresh_token` grant: rotate the refresh token, re-validate the user upstream when
//! due, and mint tokens with the (possibly changed) identity.
//!
//! The rotation happens first (it is atomic in the store and is what finds the session),
//! so once it succeeded the client must get its new refresh token unless the session ends:
//! an upstream IdP that is merely unreachable does not fail the refresh (the check is
//! retried later); an upstream that refuses the account ends the session. The check itself
//! is [`super::revalidate`], shared with the background sweeper.

use axum::response::Response;
use tether_common::secret::Secret;

use super::authorize::granted_scope;
use super::error::OAuthError;
use super::params::Params;
use super::provider::Provider;
use super::revalidate::{Trigger, revalidate_if_due};
use super::token::{TokenResponse, mint, session_error, token_response};
use crate::clients::Client;
use crate::sessions::Session;

/// What a refreshed token's scope is when the client asks for none (RFC 6749 §6 says "the
/// original scope"; sessions do not keep it, and every hub token carries the same claims).
const DEFAULT_REFRESH_SCOPE: &str = "openid";

/// `refresh_token`.
pub async fn refresh_token(
    provider: &Provider,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    let token = Secret::new(params.required("refresh_token")?);
    let scope = match params.get("scope") {
        Some(requested) => Some(granted_scope(requested).ok_or_else(|| {
            OAuthError::new(
                super::error::OAuthErrorCode::InvalidScope,
                "scope must include openid",
            )
        })?),
        None => None,
    };
    let now = provider.now();
    let (session, new_token) = provider
        .sessions()
        .refresh(&token, client.id(), now)
        .await
        .map_err(session_error)?;
    let session = revalidate(provider, session).await?;
    let tokens = mint(
        provider,
        &session,
        client.id(),
        scope.as_deref().unwrap_or(DEFAULT_REFRESH_SCOPE),
        None,
    )?;
    Ok(token_response(TokenResponse {
        refresh_token: Some(new_token.expose().to_owned()),
        scope,
        ..tokens
    }))
}

/// Re-validates `session` at the upstream IdP if due ([`revalidate_if_due`], shared with
/// the background sweeper); `invalid_grant` if the IdP no longer accepts the user.
async fn revalidate(provider: &Provider, session: Session) -> Result<Session, OAuthError> {
    revalidate_if_due(provider, session, Trigger::Refresh, provider.now())
        .await
        .map_err(session_error)?
        .into_session()
        .ok_or_else(|| {
            OAuthError::invalid_grant("the upstream account is no longer active; log in again")
        })
}
