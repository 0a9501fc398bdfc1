//! Workload identities and the access policies that grant them clusters.
//!
//! A [`Workload`] is who presented the subject token: a hub-cluster ServiceAccount (from
//! TokenReview) or a trusted issuer's subject with its verified claims. [`MachinePolicies`]
//! finds, in configuration order, the first policy for that workload whose cluster selector
//! covers the requested cluster.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use super::config::{MachinePolicyConfig, ServiceAccountRef};
use crate::policy::{ClusterSelector, KubeIdentity};
use crate::registry::ClusterRow;

/// The username prefix of ServiceAccounts in TokenReview answers.
pub const SERVICEACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// Who presented the subject token.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// A ServiceAccount of the hub cluster.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A subject of a trusted issuer.
    Issuer {
        /// The issuer's configured name (`ci`).
        issuer: String,
        /// The token's `sub`.
        subject: String,
        /// All the token's claims (verified).
        claims: Map<String, Value>,
    },
}

impl Workload {
    /// The ServiceAccount behind a TokenReview username `system:serviceaccount:NS:NAME`.
    pub fn from_serviceaccount_username(username: &str) -> Option<Self> {
        let rest = username.strip_prefix(SERVICEACCOUNT_USER_PREFIX)?;
        let (namespace, name) = rest.split_once(':')?;
        if namespace.is_empty() || name.is_empty() || name.contains(':') {
            return None;
        }
        Some(Self::ServiceAccount {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The `sub` of the cluster tokens it gets: `serviceaccount:NS/NAME` or `ISSUER:SUB`.
    pub fn token_subject(&self) -> String {
        match self {
            Self::ServiceAccount { namespace, name } => {
                format!("serviceaccount:{namespace}/{name}")
            }
            Self::Issuer {
                issuer, subject, ..
            } => format!("{issuer}:{subject}"),
        }
    }
}

impl fmt::Display for Workload {
    /// `serviceaccount argocd/argocd-application-controller`, `ci subject repo:org/app`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceAccount { namespace, name } => {
                write!(f, "serviceaccount {namespace}/{name}")
            }
            Self::Issuer {
                issuer, subject, ..
            } => write!(f, "{issuer} subject {subject}"),
        }
    }
}

/// Which workloads a policy covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    ServiceAccount(ServiceAccountRef),
    Issuer {
        issuer: String,
        claims: BTreeMap<String, String>,
    },
}

impl Matcher {
    fn matches(&self, workload: &Workload) -> bool {
        match (self, workload) {
            (Self::ServiceAccount(sa), Workload::ServiceAccount { namespace, name }) => {
                sa.namespace == *namespace && sa.name == *name
            }
            (
                Self::Issuer { issuer, claims },
                Workload::Issuer {
                    issuer: token_issuer,
                    claims: token_claims,
                    ..
                },
            ) => {
                issuer == token_issuer
                    && claims.iter().all(|(claim, want)| {
                        token_claims.get(claim).and_then(Value::as_str) == Some(want.as_str())
                    })
            }
            _ => false,
        }
    }
}

/// One machine access policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachinePolicy {
    name: String,
    matcher: Matcher,
    clusters: ClusterSelector,
    identity: KubeIdentity,
}

impl MachinePolicy {
    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The clusters it grants.
    pub fn clusters(&self) -> &ClusterSelector {
        &self.clusters
    }

    /// The identity the spoke's proxy impersonates.
    pub fn identity(&self) -> &KubeIdentity {
        &self.identity
    }

    /// Whether it covers `workload` (whatever the cluster).
    pub fn covers(&self, workload: &Workload) -> bool {
        self.matcher.matches(workload)
    }
}

/// The configured policies, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachinePolicies {
    policies: Vec<MachinePolicy>,
}

impl MachinePolicies {
    /// The policies of a validated configuration (a policy naming neither a ServiceAccount
    /// nor an issuer cannot pass validation; it would be skipped here).
    pub fn from_config(configs: &[MachinePolicyConfig]) -> Self {
        let policies = configs
            .iter()
            .filter_map(|c| {
                let matcher = match (&c.serviceaccount, &c.issuer) {
                    (Some(sa), None) => Matcher::ServiceAccount(sa.clone()),
                    (None, Some(issuer)) => Matcher::Issuer {
                        issuer: issuer.clone(),
                        claims: c.claims.clone(),
                    },
                    _ => return None,
                };
                Some(MachinePolicy {
                    name: c.name.clone(),
                    matcher,
                    clusters: c.clusters.clone(),
                    identity: c.identity.clone(),
                })
            })
            .collect();
        Self { policies }
    }

    /// Every policy covering `workload`, in order.
    pub fn for_workload<'a>(&'a self, workload: &'a Workload) -> Vec<&'a MachinePolicy> {
        self.policies
            .iter()
            .filter(|p| p.covers(workload))
            .collect()
    }

    /// The first of `candidates` whose selector covers `cluster`.
    pub fn first_for_cluster<'a>(
        candidates: &[&'a MachinePolicy],
        cluster: &ClusterRow,
    ) -> Option<&'a MachinePolicy> {
        candidates
            .iter()
            .copied()
            .find(|p| p.clusters.matches(cluster))
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }
}
