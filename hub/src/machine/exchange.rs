//! RFC 8693 token exchange for a workload's own JWT (`subject_token_type` jwt).
//!
//! subject token → (its unverified `iss` is a trusted issuer: verified with that issuer's
//! keys; otherwise: TokenReview on the hub cluster) → [`Workload`] → the first policy for the
//! workload whose selector covers the requested, registered cluster → a cluster token with
//! the policy's identity, for [`Lifetimes::cluster_token`](crate::oidc::Lifetimes).
//!
//! Every outcome is audited (`machine.token_exchange`), counted
//! (`tether_hub_machine_tokens_total{outcome}`) and traced (span `machine.token_exchange`).
//! No description, log line or audit record carries the subject token.

use std::borrow::Cow;

use axum::response::Response;
use serde_json::json;
use tether_common::time::UnixTime;
use tether_common::token::Claims;
use tether_common::token::verify::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES};
use tracing::Instrument as _;

use super::issuers::IssuerError;
use super::policy::{MachinePolicies, Workload};
use super::token_review::{ReviewError, ReviewedUser, Verdict};
use super::{METRIC_MACHINE_TOKENS, Machine, audit_kind, bounded_reason, unverified_claims};
use crate::clients::Client;
use crate::oidc::claims::kind;
use crate::oidc::error::{OAuthError, OAuthErrorCode};
use crate::oidc::exchange::{TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT, cluster_token_response};
use crate::oidc::params::Params;
use crate::oidc::provider::Provider;
use crate::registry::{ClusterName, cluster_audience};
use crate::store::{AuditOutcome, AuditRecord};

/// Why a machine exchange was refused or failed. Descriptions are public; none carries the
/// subject token.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// A request parameter is missing or malformed (`invalid_request`).
    #[error(transparent)]
    Request(OAuthError),
    /// The hub has no `machine` section (`invalid_request`).
    #[error("machine tokens are not enabled on this hub (no `machine` section)")]
    Disabled,
    /// The subject token is not valid: TokenReview refused it, it expired, its signature or
    /// audience is wrong, or its issuer is not trusted (`invalid_grant`).
    #[error("subject_token refused: {0}")]
    SubjectRefused(String),
    /// The hub cluster authenticated a user that is not a ServiceAccount (`invalid_grant`).
    #[error("subject_token authenticates {0:?} on the hub cluster, which is not a ServiceAccount")]
    NotServiceAccount(String),
    /// No policy covers the workload (`invalid_grant`).
    #[error("no machine policy grants {0}")]
    NoPolicy(String),
    /// The audience is not a cluster name, or no such cluster is registered (`invalid_target`).
    #[error("{0}")]
    UnknownCluster(&'static str),
    /// The workload's policies do not cover the cluster (`invalid_target`).
    #[error("no machine policy grants {workload} access to cluster {cluster}")]
    ClusterNotGranted {
        /// The workload.
        workload: String,
        /// The cluster.
        cluster: String,
    },
    /// The hub cluster could not review the token (`temporarily_unavailable`).
    #[error("the hub cluster cannot review the token now; try again later")]
    HubClusterUnavailable(#[source] ReviewError),
    /// A trusted issuer's keys could not be fetched (`temporarily_unavailable`).
    #[error("the keys of trusted issuer {issuer} cannot be fetched now; try again later")]
    IssuerUnavailable {
        /// The issuer's name.
        issuer: String,
        /// What failed.
        reason: String,
    },
    /// Signing or the store failed (`server_error`, logged with a correlation id).
    #[error(transparent)]
    Internal(OAuthError),
}

impl ExchangeError {
    /// The OAuth error answered to the client.
    fn into_oauth(self) -> OAuthError {
        let description: Cow<'static, str> = Cow::Owned(self.to_string());
        match self {
            Self::Request(err) | Self::Internal(err) => err,
            Self::Disabled => OAuthError::invalid_request(description),
            Self::SubjectRefused(_) | Self::NotServiceAccount(_) | Self::NoPolicy(_) => {
                OAuthError::invalid_grant(description)
            }
            Self::UnknownCluster(_) | Self::ClusterNotGranted { .. } => {
                OAuthError::new(OAuthErrorCode::InvalidTarget, description)
            }
            Self::HubClusterUnavailable(_) | Self::IssuerUnavailable { .. } => {
                OAuthError::new(OAuthErrorCode::TemporarilyUnavailable, description)
            }
        }
    }

    /// The audit outcome: refusals are `denied`, failures `failure`.
    fn audit_outcome(&self) -> AuditOutcome {
        match self {
            Self::HubClusterUnavailable(_) | Self::IssuerUnavailable { .. } | Self::Internal(_) => {
                AuditOutcome::Failure
            }
            _ => AuditOutcome::Denied,
        }
    }

    /// The audit reason: the public description, plus the internal cause where there is one.
    fn audit_reason(&self) -> String {
        match self {
            Self::HubClusterUnavailable(cause) => format!("{self}: {cause}"),
            Self::IssuerUnavailable { reason, .. } => format!("{self}: {reason}"),
            Self::Request(err) | Self::Internal(err) => {
                format!("{}: {}", err.code(), err.description())
            }
            _ => self.to_string(),
        }
    }
}

/// What is known so far about an exchange, for its audit record and span.
#[derive(Debug, Default)]
struct Attempt {
    workload: Option<Workload>,
    user: Option<ReviewedUser>,
    policy: Option<String>,
}

/// The machine token exchange; every outcome is audited and counted.
pub async fn token_exchange(
    provider: &Provider,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    let audience = params.get("audience").unwrap_or_default().to_owned();
    let cluster_label = bounded_reason(&bounded(&audience));
    let span = tracing::info_span!(
        "machine.token_exchange",
        cluster = %cluster_label,
        workload = tracing::field::Empty,
        policy = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    async move {
        let mut attempt = Attempt::default();
        let result = exchange(provider, params, &mut attempt).await;
        let span = tracing::Span::current();
        if let Some(workload) = &attempt.workload {
            span.record("workload", tracing::field::display(workload));
        }
        if let Some(policy) = &attempt.policy {
            span.record("policy", policy.as_str());
        }
        let outcome = match &result {
            Ok(_) => "success",
            Err(err) => match err {
                ExchangeError::Request(e) | ExchangeError::Internal(e) => e.code().as_str(),
                ExchangeError::Disabled => OAuthErrorCode::InvalidRequest.as_str(),
                ExchangeError::SubjectRefused(_)
                | ExchangeError::NotServiceAccount(_)
                | ExchangeError::NoPolicy(_) => OAuthErrorCode::InvalidGrant.as_str(),
                ExchangeError::UnknownCluster(_) | ExchangeError::ClusterNotGranted { .. } => {
                    OAuthErrorCode::InvalidTarget.as_str()
                }
                ExchangeError::HubClusterUnavailable(_) | ExchangeError::IssuerUnavailable { .. } => {
                    OAuthErrorCode::TemporarilyUnavailable.as_str()
                }
            },
        };
        span.record("outcome", outcome);
        metrics::counter!(METRIC_MACHINE_TOKENS, "outcome" => outcome).increment(1);
        provider
            .audit(audit_record(provider.now(), client, &cluster_label, &attempt, &result))
            .await;
        match result {
            Ok((claims, token)) => {
                tracing::info!(jti = %claims.jti, username = %claims.username, "machine token issued");
                Ok(cluster_token_response(&claims, token))
            }
            Err(err) => {
                tracing::info!(reason = %err.audit_reason(), "machine token refused");
                Err(err.into_oauth())
            }
        }
    }
    .instrument(span)
    .await
}

/// The exchange itself; `attempt` collects the workload and policy as they are found.
async fn exchange(
    provider: &Provider,
    params: &Params,
    attempt: &mut Attempt,
) -> Result<(Claims, String), ExchangeError> {
    let machine = provider.machine().ok_or(ExchangeError::Disabled)?;
    let subject_token = params
        .required("subject_token")
        .map_err(ExchangeError::Request)?;
    if params
        .get("requested_token_type")
        .is_some_and(|t| t != TOKEN_TYPE_JWT && t != TOKEN_TYPE_ACCESS_TOKEN)
    {
        return Err(ExchangeError::Request(OAuthError::invalid_request(
            "requested_token_type must be urn:ietf:params:oauth:token-type:jwt",
        )));
    }
    if params.get("actor_token").is_some() {
        return Err(ExchangeError::Request(OAuthError::invalid_request(
            "delegation (actor_token) is not supported",
        )));
    }
    let audience = params
        .required("audience")
        .map_err(ExchangeError::Request)?;
    let cluster = ClusterName::parse(audience)
        .map_err(|_| ExchangeError::UnknownCluster("audience is not a cluster name"))?;

    let now = provider.now();
    let workload = authenticate(machine, subject_token, now, attempt).await?;
    let workload = attempt.workload.insert(workload);
    let candidates = machine.policies().for_workload(workload);
    if candidates.is_empty() {
        return Err(ExchangeError::NoPolicy(workload.to_string()));
    }
    let row = provider
        .store()
        .cluster(&cluster)
        .await
        .map_err(|err| ExchangeError::Internal(OAuthError::internal(err)))?
        .ok_or(ExchangeError::UnknownCluster("unknown cluster"))?;
    let policy = MachinePolicies::first_for_cluster(&candidates, &row).ok_or_else(|| {
        ExchangeError::ClusterNotGranted {
            workload: workload.to_string(),
            cluster: cluster.to_string(),
        }
    })?;
    attempt.policy = Some(policy.name().to_owned());
    let identity = policy.identity();
    let claims = Claims::mint(
        provider.issuer().as_str(),
        cluster_audience(&cluster),
        workload.token_subject(),
        identity.username.as_str(),
        identity.groups.clone(),
        None,
        now,
        provider.lifetimes().cluster_token,
    );
    let token = provider
        .sign(&claims, kind::CLUSTER)
        .map_err(ExchangeError::Internal)?;
    Ok((claims, token))
}

/// Checks the subject token and says who presented it.
async fn authenticate(
    machine: &Machine,
    token: &str,
    now: UnixTime,
    attempt: &mut Attempt,
) -> Result<Workload, ExchangeError> {
    if token.len() > DEFAULT_MAX_TOKEN_BYTES {
        return Err(ExchangeError::SubjectRefused(format!(
            "it is larger than {DEFAULT_MAX_TOKEN_BYTES} bytes"
        )));
    }
    let unverified = unverified_claims(token);
    // Refusing on an unverified claim is safe, and spares the apiserver and the issuer.
    let exp = unverified
        .as_ref()
        .and_then(|c| c.get("exp"))
        .and_then(serde_json::Value::as_i64);
    if exp.is_some_and(|exp| UnixTime::from_secs(exp).saturating_add(DEFAULT_LEEWAY) <= now) {
        return Err(ExchangeError::SubjectRefused("it has expired".to_owned()));
    }
    let iss = unverified
        .as_ref()
        .and_then(|c| c.get("iss"))
        .and_then(serde_json::Value::as_str);

    if let Some(issuer) = iss.and_then(|iss| machine.issuers().get(iss)) {
        return match issuer.verify(token, now).await {
            Ok(verified) => Ok(Workload::Issuer {
                issuer: issuer.name().to_owned(),
                subject: verified.sub,
                claims: verified.claims,
            }),
            Err(err @ IssuerError::Refused { .. }) => {
                Err(ExchangeError::SubjectRefused(err.to_string()))
            }
            Err(IssuerError::Unavailable { issuer, reason }) => {
                Err(ExchangeError::IssuerUnavailable { issuer, reason })
            }
        };
    }
    // Name the issuer too, unless it is the hub cluster's own: then the TokenReview's
    // reason is the whole story.
    let untrusted = |what: String, reviews: Option<&super::TokenReviews>| match iss {
        Some(iss) if !reviews.is_some_and(|r| r.is_hub_cluster_issuer(iss)) => format!(
            "{what}, and its issuer {:?} is not a trusted issuer",
            bounded_reason(&bounded(iss))
        ),
        _ => what,
    };
    let Some(reviews) = machine.reviews() else {
        return Err(ExchangeError::SubjectRefused(untrusted(
            "no hub cluster is configured to review ServiceAccount tokens".to_owned(),
            None,
        )));
    };
    match reviews.review(token, now).await {
        Verdict::Authenticated(user) => {
            attempt.user = Some(user.as_ref().clone());
            Workload::from_serviceaccount_username(&user.username)
                .ok_or_else(|| ExchangeError::NotServiceAccount(bounded(&user.username)))
        }
        Verdict::Unauthenticated(reason) => {
            let what = if reason.is_empty() {
                "the hub cluster did not authenticate it (TokenReview)".to_owned()
            } else {
                format!("the hub cluster did not authenticate it (TokenReview: {reason})")
            };
            Err(ExchangeError::SubjectRefused(untrusted(
                what,
                Some(reviews),
            )))
        }
        Verdict::Failed(err) => Err(ExchangeError::HubClusterUnavailable(err)),
    }
}

/// The `machine.token_exchange` record: actor = the workload (`serviceaccount:NS/NAME`,
/// `ci:SUB`) or the client when the token was refused; subject = the cluster.
fn audit_record(
    now: UnixTime,
    client: &Client,
    cluster: &str,
    attempt: &Attempt,
    result: &Result<(Claims, String), ExchangeError>,
) -> AuditRecord {
    let actor = attempt.workload.as_ref().map_or_else(
        || format!("client:{}", client.id()),
        Workload::token_subject,
    );
    let mut details = json!({
        "client_id": client.id(),
        "cluster": cluster,
        "workload": attempt.workload.as_ref().map(ToString::to_string),
        "policy": attempt.policy,
    });
    if let Some(user) = &attempt.user {
        details["serviceaccount_uid"] = json!(user.uid);
        if let Some(pod) = user.extra.get("authentication.kubernetes.io/pod-name") {
            details["pod"] = json!(pod);
        }
    }
    let record = match result {
        Ok((claims, _)) => {
            details["username"] = json!(claims.username);
            details["groups"] = json!(claims.groups);
            details["jti"] = json!(claims.jti);
            details["exp"] = json!(claims.exp.as_secs());
            AuditRecord::new(
                now.as_secs(),
                audit_kind::MACHINE_TOKEN_EXCHANGE,
                actor,
                AuditOutcome::Success,
            )
        }
        Err(err) => AuditRecord::new(
            now.as_secs(),
            audit_kind::MACHINE_TOKEN_EXCHANGE,
            actor,
            err.audit_outcome(),
        )
        .with_reason(err.audit_reason()),
    };
    record.with_subject(cluster).with_details(details)
}

/// A client-sent value, bounded for the audit log and messages.
fn bounded(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests;
