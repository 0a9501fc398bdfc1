//! The `refresh_token` grant: rotate the refresh token, re-validate the user upstream when
//! due, and mint tokens with the (possibly changed) identity.
//!
//! The rotation happens first (it is atomic in the store and is what finds the session),
//! so once it succeeded the client must get its new refresh token unless the session ends:
//! an upstream IdP that is merely unreachable does not fail the refresh (the check is
//! retried on the next one); an upstream that refuses the account ends the session.

use axum::response::Response;
use tether_common::secret::Secret;

use super::error::OAuthError;
use super::params::Params;
use super::provider::Provider;
use super::token::{TokenResponse, mint, session_error, token_response};
use super::{audit_kind, authorize::granted_scope};
use crate::clients::Client;
use crate::sessions::{REASON_UPSTREAM_REJECTED, Session, SessionIdentity};
use crate::store::{AuditOutcome, AuditRecord};
use crate::upstream::{UpstreamError, UpstreamGrant};

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
    let session = revalidate_if_due(provider, session).await?;
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

/// Re-validates `session` at the upstream IdP if `recheck_interval` has passed.
async fn revalidate_if_due(provider: &Provider, session: Session) -> Result<Session, OAuthError> {
    let Some(upstream) = provider.upstream() else {
        return Ok(session);
    };
    let now = provider.now();
    if !provider
        .sessions()
        .needs_upstream_check(&session, upstream.recheck_interval(), now)
    {
        return Ok(session);
    }
    let bytes = provider
        .sessions()
        .upstream_grant(&session)
        .await
        .map_err(session_error)?;
    let result = match UpstreamGrant::from_bytes(&bytes) {
        Ok(grant) => upstream.revalidate(&grant).await,
        Err(err) => Err(err),
    }
    // The IdP must still be talking about the same account (a recycled or re-bound grant
    // naming someone else ends the session).
    .and_then(|login| {
        if login.identity.subject == session.subject {
            Ok(login)
        } else {
            Err(UpstreamError::SubjectMismatch)
        }
    });
    match result {
        Ok(login) => {
            let identity = SessionIdentity {
                subject: login.identity.subject,
                username: login.identity.username,
                groups: login.identity.groups,
            };
            let grant = zeroize::Zeroizing::new(login.grant.to_bytes());
            provider
                .sessions()
                .update_identity(&session.id, &identity, &grant, now)
                .await
                .map_err(session_error)
        }
        Err(err) if err.is_transient() => {
            tracing::warn!(sid = %session.id, error = %err, "upstream IdP unreachable; keeping the session's identity until the next refresh");
            Ok(session)
        }
        Err(err) => {
            let reason = match &err {
                UpstreamError::AccountRevoked => "upstream_account_revoked".to_owned(),
                other => format!("upstream_{}", other.outcome()),
            };
            tracing::warn!(sid = %session.id, error = %err, "upstream IdP no longer accepts the user: ending the session");
            provider
                .sessions()
                .revoke(&session.id, REASON_UPSTREAM_REJECTED, now)
                .await
                .map_err(session_error)?;
            provider
                .audit(
                    AuditRecord::new(
                        now.as_secs(),
                        audit_kind::SESSION_UPSTREAM_REJECTED,
                        session.subject.as_str(),
                        AuditOutcome::Denied,
                    )
                    .with_subject(session.id.as_str())
                    .with_reason(reason)
                    .with_details(serde_json::json!({ "username": session.username })),
                )
                .await;
            Err(OAuthError::invalid_grant(
                "the upstream account is no longer active; log in again",
            ))
        }
    }
}
