//! `POST /revoke` (RFC 7009): a refresh token or a hub access token ends its session.
//!
//! The client authenticates as at the token endpoint. Unknown tokens, tokens of another
//! client and already-ended sessions are answered 200 like a success (§2.2).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tether_common::secret::Secret;

use super::error::{OAuthError, no_store};
use super::params::Params;
use super::token::{authenticate, require_form};
use super::userinfo::verify_access_token;
use super::{audit_kind, started};
use crate::http::AppState;
use crate::sessions::{REASON_TOKEN_REVOKED, SessionId};
use crate::store::{AuditOutcome, AuditRecord};

/// Serves the revocation endpoint.
#[tracing::instrument(name = "oidc.revoke", skip_all, fields(client_id = tracing::field::Empty))]
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let provider = started(&state)?;
        require_form(&headers)?;
        let params = Params::parse(&body)?;
        let client = authenticate(&provider, &headers, &params)?;
        tracing::Span::current().record("client_id", client.id());
        let token = params.required("token")?;
        let now = provider.now();
        // A JWT is one of our access tokens (or nothing); anything else may be a refresh
        // token. `token_type_hint` is only a hint (§2.1): the shape decides.
        let (kind, revoked) = if token.split('.').count() == 3 {
            let revoked = match verify_access_token(&provider, token) {
                Ok(claims) if claims.client_id == client.id() => {
                    let sid = SessionId::new(claims.sid().unwrap_or_default());
                    provider
                        .sessions()
                        .revoke(&sid, REASON_TOKEN_REVOKED, now)
                        .await
                        .map_err(OAuthError::internal)?
                }
                _ => false,
            };
            ("access_token", revoked)
        } else {
            let revoked = provider
                .sessions()
                .revoke_by_refresh_token(&Secret::new(token), client.id(), now)
                .await
                .map_err(OAuthError::internal)?;
            ("refresh_token", revoked)
        };
        let outcome = if revoked { "revoked" } else { "no_session" };
        provider
            .audit(
                AuditRecord::new(
                    now.as_secs(),
                    audit_kind::TOKEN_REVOKE,
                    client.id(),
                    AuditOutcome::Success,
                )
                .with_reason(outcome)
                .with_details(serde_json::json!({ "token_type": kind })),
            )
            .await;
        Ok::<_, OAuthError>(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            no_store(&mut response);
            response
        }
        Err(err) => err.into_response(),
    }
}
