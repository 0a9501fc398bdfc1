//! `GET /api/v1/clusters`: the clusters the bearer of a hub access token may reach, with
//! what kubectl needs to reach them (`tetherctl kubeconfig`).
//!
//! The token is verified as at token exchange (signed by the hub, `aud` = issuer,
//! `token_use` = access, live session). The list holds only clusters that are joined, have
//! announced a proxy URL, and that the people policy ([`crate::policy::PeopleAccess`]) lets
//! the session's current groups reach, sorted by name:
//!
//! ```json
//! {"clusters":[{"name":"spoke-1","labels":{"env":"dev"},
//!   "proxy_url":"https://127.0.0.1:4443","proxy_ca_pem":"-----BEGIN CERTIFICATE-----\n..."}]}
//! ```
//!
//! Refusals are RFC 6750 `invalid_token` (401, `WWW-Authenticate: Bearer
//! error="invalid_token"`, JSON `{error, error_description}`). Every answer is
//! `Cache-Control: no-store`; each is counted in `tether_hub_cluster_listings_total{outcome}`
//! and a successful one is audited (`cluster.listed_by_user`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::audit_kind;
use super::error::{OAuthError, no_store};
use super::params::bearer_token;
use super::provider::Provider;
use super::started;
use super::userinfo::verify_access_token;
use crate::http::AppState;
use crate::registry::ClusterState;
use crate::sessions::{Session, SessionId};
use crate::store::{AuditOutcome, AuditRecord};

/// Counter of cluster listings, labelled `outcome` (`success` or the OAuth error code).
pub const METRIC_CLUSTER_LISTINGS: &str = "tether_hub_cluster_listings_total";

/// The description of the refusal when the token's session has ended.
pub const SESSION_ENDED: &str = "your hub session has ended; run `tetherctl login`";

/// The response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterList {
    /// The clusters, sorted by name.
    pub clusters: Vec<UserCluster>,
}

/// One cluster the user may reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserCluster {
    /// Its name (the token exchange `audience`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Where kubectl reaches its proxy.
    pub proxy_url: String,
    /// The CA (PEM) of the proxy's certificate.
    pub proxy_ca_pem: String,
}

/// Serves the listing (token in `Authorization: Bearer` only).
#[tracing::instrument(
    name = "api.clusters",
    skip_all,
    fields(outcome = tracing::field::Empty, count = tracing::field::Empty)
)]
pub async fn clusters(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let provider = started(&state)?;
        let token = bearer_token(&headers).ok_or_else(|| {
            OAuthError::invalid_token("send a hub access token as Authorization: Bearer")
        })?;
        let claims = verify_access_token(&provider, token)?;
        let sid = claims.sid().unwrap_or_default();
        let now = provider.now();
        let session = provider
            .sessions()
            .session(&SessionId::new(sid), now)
            .await
            .map_err(|err| {
                if err.is_client_error() {
                    OAuthError::invalid_token(SESSION_ENDED)
                } else {
                    OAuthError::internal(err)
                }
            })?;
        let list = reachable(&provider, &session).await?;
        provider
            .audit(
                AuditRecord::new(
                    now.as_secs(),
                    audit_kind::CLUSTERS_LISTED_BY_USER,
                    session.subject.as_str(),
                    AuditOutcome::Success,
                )
                .with_subject(session.id.as_str())
                .with_details(serde_json::json!({
                    "username": session.username,
                    "client_id": claims.client_id,
                    "count": list.clusters.len(),
                })),
            )
            .await;
        Ok::<_, OAuthError>(list)
    }
    .await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(err) => err.code().as_str(),
    };
    let span = tracing::Span::current();
    span.record("outcome", outcome);
    metrics::counter!(METRIC_CLUSTER_LISTINGS, "outcome" => outcome).increment(1);
    match result {
        Ok(list) => {
            span.record("count", list.clusters.len());
            let mut response = Json(list).into_response();
            no_store(&mut response);
            response
        }
        Err(err) => err.into_response(),
    }
}

/// The joined clusters with a proxy URL that `session` may reach, by name.
pub async fn reachable(provider: &Provider, session: &Session) -> Result<ClusterList, OAuthError> {
    let records = provider
        .store()
        .list_cluster_records()
        .await
        .map_err(OAuthError::internal)?;
    let mut clusters: Vec<UserCluster> = records
        .into_iter()
        .filter(|record| {
            record.state == ClusterState::Joined
                && !record.proxy_url.is_empty()
                && provider.access().allows(&session.groups, &record.row)
        })
        .map(|record| UserCluster {
            name: record.row.name.as_str().to_owned(),
            labels: record.row.labels,
            proxy_url: record.proxy_url,
            proxy_ca_pem: record.proxy_ca_pem,
        })
        .collect();
    // The store lists by name already; sorting here keeps the promise whatever the backend's
    // collation.
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ClusterList { clusters })
}

#[cfg(test)]
mod tests;
