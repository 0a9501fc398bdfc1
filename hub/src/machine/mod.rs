//! Machine tokens: a workload presents its own credential and gets a short-lived token
//! for one spoke, with no static credential stored anywhere.
//!
//! ArgoCD's application controller presents its projected ServiceAccount token; the hub
//! checks it with TokenReview on the hub cluster (cached, one review per token however many
//! requests carry it). A CI job presents its OIDC token, verified with its issuer's JWKS. An
//! access policy then names the clusters the workload may reach and the identity the spoke's
//! proxy impersonates, and the hub signs a 60-second cluster token.
//!
//! - [`config`]: the `machine` section and its validation.
//! - [`token_review`]: [`TokenReviewer`] (the apiserver call, [`KubeTokenReviewer`]) and
//!   [`TokenReviews`], the cache with single flight in front of it.
//! - [`issuers`]: [`TrustedIssuers`]: external JWT issuers, their JWKS fetched and cached.
//! - [`policy`]: [`Workload`] identities and the [`MachinePolicies`] that match them.
//! - [`exchange`]: the RFC 8693 token exchange for `subject_token_type` JWT.
//!
//! Wire format (`POST /token`, any authenticated client, e.g. `client_id=tetherctl`):
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//! `subject_token_type=urn:ietf:params:oauth:token-type:jwt`, `subject_token=<workload
//! JWT>`, `audience=<cluster name>`. The answer is a cluster token (`issued_token_type`
//! jwt, `expires_in` 60) whose `sub` is `serviceaccount:NS/NAME` or `<issuer name>:<sub>`
//! and whose `username`/`groups` are the policy's identity (no `sid`).

pub mod config;
pub mod exchange;
pub mod issuers;
pub mod policy;
pub mod token_review;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value};
use tether_common::time::UnixTime;

use crate::config::Config;
use crate::hub_cluster::HubClusterError;

pub use self::config::{
    MachineConfig, MachinePolicyConfig, TokenReviewConfig, TrustedIssuerConfig,
};
pub use self::exchange::token_exchange;
pub use self::issuers::{IssuerError, TrustedIssuers};
pub use self::policy::{MachinePolicies, MachinePolicy, Workload};
pub use self::token_review::{
    KubeTokenReviewer, ReviewError, ReviewResponse, ReviewedUser, TokenReviewer, TokenReviews,
    Verdict,
};

/// Counter of machine token exchanges, labelled `outcome` (`success` or the OAuth error
/// code).
pub const METRIC_MACHINE_TOKENS: &str = "tether_hub_machine_tokens_total";
/// Counter of TokenReview calls made to the hub cluster's apiserver, labelled `outcome`
/// (`authenticated`, `unauthenticated`, `error`).
pub const METRIC_TOKEN_REVIEWS: &str = "tether_hub_token_reviews_total";
/// Counter of TokenReview cache lookups, labelled `result` (`hit`, `miss`, `coalesced`:
/// joined a review already in flight).
pub const METRIC_TOKEN_REVIEW_CACHE: &str = "tether_hub_token_review_cache_total";
/// Gauge of entries in the TokenReview cache.
pub const METRIC_TOKEN_REVIEW_CACHE_ENTRIES: &str = "tether_hub_token_review_cache_entries";
/// Counter of trusted issuers' discovery/JWKS fetches, labelled `issuer` (its name) and
/// `outcome` (`success`, `error`).
pub const METRIC_JWKS_FETCHES: &str = "tether_hub_machine_jwks_fetches_total";

/// Audit kinds written by the machine path.
pub mod audit_kind {
    /// A machine token exchange (issued or refused).
    pub const MACHINE_TOKEN_EXCHANGE: &str = "machine.token_exchange";
}

/// Why the machine path could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// A trusted issuer's HTTP client could not be built (unreadable or invalid CA file).
    #[error("machine.trusted_issuers[{name}]: {reason}")]
    Issuer {
        /// The issuer's name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The hub cluster's client could not be built (unreadable kubeconfig).
    #[error(transparent)]
    HubCluster(#[from] HubClusterError),
}

/// The machine path's backends: the TokenReview cache (when a hub cluster is configured),
/// the trusted issuers and the policies.
#[derive(Debug)]
pub struct Machine {
    reviews: Option<TokenReviews>,
    issuers: TrustedIssuers,
    policies: MachinePolicies,
}

impl Machine {
    /// Builds the backends from the validated `machine` section; `reviewer` is `None` when
    /// no hub cluster is configured (then only trusted issuers' tokens are accepted).
    pub fn new(
        config: &MachineConfig,
        reviewer: Option<Arc<dyn TokenReviewer>>,
    ) -> Result<Self, MachineError> {
        Ok(Self {
            reviews: reviewer.map(|r| TokenReviews::new(r, &config.token_review)),
            issuers: TrustedIssuers::new(&config.trusted_issuers)?,
            policies: MachinePolicies::from_config(&config.policies),
        })
    }

    /// The machine path of `config`, if it has a `machine` section: TokenReview through the
    /// `hub_cluster` client when that section is present (no request is made yet).
    pub async fn from_config(config: &Config) -> Result<Option<Self>, MachineError> {
        let Some(machine) = &config.machine else {
            return Ok(None);
        };
        let reviewer: Option<Arc<dyn TokenReviewer>> = match &config.hub_cluster {
            Some(hub_cluster) => Some(Arc::new(KubeTokenReviewer::new(
                hub_cluster.client().await?,
            ))),
            None => None,
        };
        let built = Self::new(machine, reviewer)?;
        tracing::info!(
            policies = built.policies.len(),
            trusted_issuers = machine.trusted_issuers.len(),
            token_review = built.reviews.is_some(),
            "machine tokens enabled"
        );
        Ok(Some(built))
    }

    /// The TokenReview cache, if a hub cluster is configured.
    pub fn reviews(&self) -> Option<&TokenReviews> {
        self.reviews.as_ref()
    }

    /// The trusted external issuers.
    pub fn issuers(&self) -> &TrustedIssuers {
        &self.issuers
    }

    /// The access policies.
    pub fn policies(&self) -> &MachinePolicies {
        &self.policies
    }
}

/// The payload of a compact JWS, decoded WITHOUT verifying anything. Only for routing (which
/// issuer?) and for shortening caches (`exp`), never for granting.
pub(crate) fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The unverified `exp` of a token, if it is a JWT with an integer `exp`.
pub(crate) fn unverified_exp(token: &str) -> Option<UnixTime> {
    unverified_claims(token)?
        .get("exp")
        .and_then(Value::as_i64)
        .map(UnixTime::from_secs)
}

/// Longest reason text passed on from the apiserver or an issuer.
const MAX_REASON_CHARS: usize = 200;

/// A reason from elsewhere (the apiserver's `status.error`), made safe to answer and log:
/// one line, bounded, and with anything shaped like a JWT replaced.
pub(crate) fn bounded_reason(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|word| {
            let jwt_like = word.len() >= 32 && word.matches('.').count() >= 2;
            if jwt_like {
                "<token>".to_owned()
            } else {
                word.chars().filter(|c| !c.is_control()).collect()
            }
        })
        .collect();
    let line = words.join(" ");
    if line.chars().count() > MAX_REASON_CHARS {
        let mut cut: String = line.chars().take(MAX_REASON_CHARS).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}
