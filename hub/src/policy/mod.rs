//! Access policy: which clusters a person or a workload may get tokens for, and (for
//! workloads) the Kubernetes identity it assumes there.
//!
//! [`ClusterSelector`] is shared by the people policy (groups → clusters) and the machine
//! policy (workload → clusters + identity); [`KubeIdentity`] is what a machine policy grants.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::registry::ClusterRow;

pub mod people;

pub use self::people::{AccessConfig, AccessRule, PeopleAccess};

/// The prefix Kubernetes reserves for its own users and groups; never granted.
pub const RESERVED_PREFIX: &str = "system:";

/// Which clusters a rule covers: a cluster matches when its name is in `names` (`"*"`
/// matches every name) or when it carries every label in `labels`. An empty selector
/// matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSelector {
    /// Cluster names; `"*"` is every cluster.
    #[serde(default)]
    pub names: Vec<String>,
    /// Labels a cluster must all carry (`env: prod`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl ClusterSelector {
    /// A selector of every cluster.
    pub fn all() -> Self {
        Self {
            names: vec!["*".to_owned()],
            labels: BTreeMap::new(),
        }
    }

    /// True if the selector names nothing at all (a configuration error where a rule has it).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.labels.is_empty()
    }

    /// True if `cluster` is covered.
    pub fn matches(&self, cluster: &ClusterRow) -> bool {
        self.matches_parts(cluster.name.as_str(), &cluster.labels)
    }

    /// True if a cluster of this name and labels is covered.
    pub fn matches_parts(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.names.iter().any(|n| n == "*" || n == name) {
            return true;
        }
        !self.labels.is_empty()
            && self
                .labels
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
    }

    /// Checks the names (each a cluster name or `*`); `field` prefixes the error.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        if self.is_empty() {
            return Err(format!(
                "{field}: names or labels is required (names: [\"*\"] for every cluster)"
            ));
        }
        for name in &self.names {
            if name != "*" {
                crate::registry::ClusterName::parse(name)
                    .map_err(|err| format!("{field}.names: {err}"))?;
            }
        }
        Ok(())
    }
}

/// The Kubernetes identity a workload assumes in a spoke.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeIdentity {
    /// The username the proxy impersonates (never `system:...`).
    pub username: String,
    /// Groups the proxy impersonates (never `system:...`).
    #[serde(default)]
    pub groups: Vec<String>,
}

impl KubeIdentity {
    /// Refuses an empty username and reserved (`system:`) names; `field` prefixes the error.
    pub fn validate(&self, field: &str) -> Result<(), String> {
        if self.username.trim().is_empty() {
            return Err(format!("{field}.username: must not be empty"));
        }
        if self.username.starts_with(RESERVED_PREFIX) {
            return Err(format!(
                "{field}.username: {:?} starts with {RESERVED_PREFIX:?}, which is reserved by Kubernetes",
                self.username
            ));
        }
        for group in &self.groups {
            if group.trim().is_empty() {
                return Err(format!("{field}.groups: a group must not be empty"));
            }
            if group.starts_with(RESERVED_PREFIX) {
                return Err(format!(
                    "{field}.groups: {group:?} starts with {RESERVED_PREFIX:?}, which is reserved by Kubernetes"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
