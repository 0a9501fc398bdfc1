//! RFC 8693 token exchange: a hub access token for a short-lived cluster token.
//!
//! The subject token is verified with the hub's own published keys (audience = the
//! issuer), must have been issued to the requesting client, and its session must still be
//! live; the audience must be a registered cluster the client may exchange for and the
//! people policy ([`crate::policy::PeopleAccess`]) must let the session's groups reach.
//! The cluster token carries the session's current identity.

use axum::response::Response;
use tether_common::token::Claims;

use super::audit_kind;
use super::claims::{AccessTokenClaims, TOKEN_USE_ACCESS, kind};
use super::error::{OAuthError, OAuthErrorCode};
use super::params::Params;
use super::provider::Provider;
use super::token::{TOKEN_TYPE_BEARER, TokenResponse, session_error, token_response};
use crate::clients::Client;
use crate::registry::{ClusterName, cluster_audience};
use crate::sessions::SessionId;
use crate::store::{AuditOutcome, AuditRecord};

/// RFC 8693 §3: an OAuth access token.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a JWT.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The token exchange grant; every outcome is audited.
pub async fn token_exchange(
    provider: &Provider,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    // A workload's own JWT (ServiceAccount or trusted issuer): the machine path, which
    // audits (`machine.token_exchange`) and counts on its own.
    if params.get("subject_token_type") == Some(TOKEN_TYPE_JWT) {
        return crate::machine::token_exchange(provider, client, params).await;
    }
    let audience = params.get("audience").unwrap_or_default().to_owned();
    let result = exchange(provider, client, params).await;
    let now = provider.now().as_secs();
    let record = match &result {
        Ok((claims, _)) => AuditRecord::new(
            now,
            audit_kind::TOKEN_EXCHANGE,
            claims.sub.as_str(),
            AuditOutcome::Success,
        )
        .with_subject(claims.sid.clone().unwrap_or_default())
        .with_details(serde_json::json!({
            "client_id": client.id(),
            "cluster": audience,
            "username": claims.username,
            "jti": claims.jti,
            "exp": claims.exp.as_secs(),
        })),
        Err(err) => AuditRecord::new(
            now,
            audit_kind::TOKEN_EXCHANGE,
            client.id(),
            AuditOutcome::Denied,
        )
        .with_reason(format!("{}: {}", err.code(), err.description()))
        .with_details(
            serde_json::json!({ "client_id": client.id(), "cluster": bounded(&audience) }),
        ),
    };
    provider.audit(record).await;
    let (claims, token) = result?;
    Ok(cluster_token_response(&claims, token))
}

/// The RFC 8693 answer carrying a cluster token (people's and machines' alike).
pub fn cluster_token_response(claims: &Claims, token: String) -> Response {
    let expires_in = u64::try_from(claims.exp.as_secs() - claims.iat.as_secs()).unwrap_or(0);
    token_response(TokenResponse {
        access_token: token,
        token_type: TOKEN_TYPE_BEARER,
        expires_in,
        id_token: None,
        refresh_token: None,
        scope: None,
        issued_token_type: Some(TOKEN_TYPE_JWT),
    })
}

async fn exchange(
    provider: &Provider,
    client: &Client,
    params: &Params,
) -> Result<(Claims, String), OAuthError> {
    let subject_token = params.required("subject_token")?;
    if params.required("subject_token_type")? != TOKEN_TYPE_ACCESS_TOKEN {
        return Err(OAuthError::invalid_request(
            "subject_token_type must be urn:ietf:params:oauth:token-type:access_token (a hub access token)",
        ));
    }
    if params
        .get("requested_token_type")
        .is_some_and(|t| t != TOKEN_TYPE_JWT && t != TOKEN_TYPE_ACCESS_TOKEN)
    {
        return Err(OAuthError::invalid_request(
            "requested_token_type must be urn:ietf:params:oauth:token-type:jwt",
        ));
    }
    if params.get("actor_token").is_some() {
        return Err(OAuthError::invalid_request(
            "delegation (actor_token) is not supported",
        ));
    }
    let audience = params.required("audience")?;
    let target =
        |description: &'static str| OAuthError::new(OAuthErrorCode::InvalidTarget, description);
    let cluster =
        ClusterName::parse(audience).map_err(|_| target("audience is not a cluster name"))?;

    let now = provider.now();
    let subject: AccessTokenClaims = provider
        .verifier(provider.issuer().as_str())
        .verify_as(subject_token, now)
        .map_err(|err| {
            tracing::info!(reason = %err, "subject_token refused");
            OAuthError::invalid_grant("subject_token is not a valid hub access token")
        })?;
    if subject.token_use != TOKEN_USE_ACCESS {
        return Err(OAuthError::invalid_grant(
            "subject_token is not a hub access token",
        ));
    }
    if subject.client_id != client.id() {
        return Err(OAuthError::invalid_grant(
            "subject_token was issued to another client",
        ));
    }
    let sid = subject
        .sid()
        .ok_or_else(|| OAuthError::invalid_grant("subject_token has no session"))?;

    let Some(row) = provider
        .store()
        .cluster(&cluster)
        .await
        .map_err(OAuthError::internal)?
    else {
        return Err(target("unknown cluster"));
    };
    if !client.may_exchange_for(&cluster) {
        return Err(target("this client may not obtain tokens for this cluster"));
    }
    let session = provider
        .sessions()
        .session(&SessionId::new(sid), now)
        .await
        .map_err(session_error)?;
    // The people policy (`access`), on the session's current groups.
    if !provider.access().allows(&session.groups, &row) {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidTarget,
            format!("your groups do not grant access to cluster {cluster}"),
        ));
    }
    let claims = Claims::mint(
        provider.issuer().as_str(),
        cluster_audience(&cluster),
        session.subject.as_str(),
        session.username.as_str(),
        session.groups.clone(),
        Some(session.id.as_str().to_owned()),
        now,
        provider.lifetimes().cluster_token,
    );
    let token = provider.sign(&claims, kind::CLUSTER)?;
    Ok((claims, token))
}

/// A client-sent value, bounded for the audit log.
fn bounded(value: &str) -> String {
    value.chars().take(64).collect()
}
