//! The spoke registry: the clusters the hub knows, by [`ClusterName`].
//!
//! Minimal for now (name, labels, creation time); the spoke-join work extends the
//! `clusters` table with new migrations. Rows are read and written through
//! [`Store::add_cluster`](crate::store::Store::add_cluster) and its siblings.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tether_common::time::UnixTime;

use crate::store::StoreError;

#[cfg(test)]
mod tests;

/// Prefix of every cluster audience; OAuth client ids may not start with it.
pub const CLUSTER_AUDIENCE_PREFIX: &str = "tether:cluster:";
/// Longest cluster name (a DNS-1123 label).
pub const CLUSTER_NAME_MAX_LEN: usize = 63;

/// Audit kinds written by the registry.
pub mod audit_kind {
    /// A cluster was registered.
    pub const CLUSTER_ADDED: &str = "cluster.added";
    /// A cluster was removed.
    pub const CLUSTER_REMOVED: &str = "cluster.removed";
}

/// The `aud` of tokens for cluster `name`: `tether:cluster:<name>`. Prefixed so that it can
/// never equal an OAuth client id (ids starting with `tether:` are refused in config).
pub fn cluster_audience(name: &ClusterName) -> String {
    format!("{CLUSTER_AUDIENCE_PREFIX}{name}")
}

/// A cluster name: a DNS-1123 label (1–63 of `a-z`, `0-9`, `-`; starts and ends with an
/// alphanumeric).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

impl ClusterName {
    /// Parses and checks a name.
    pub fn parse(name: &str) -> Result<Self, InvalidClusterName> {
        let invalid = |reason: &'static str| InvalidClusterName {
            name: name.to_owned(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if name.len() > CLUSTER_NAME_MAX_LEN {
            return Err(invalid("must be at most 63 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                "may contain only lowercase letters, digits and '-'",
            ));
        }
        if name.starts_with('-') || name.ends_with('-') {
            return Err(invalid("must start and end with a letter or digit"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ClusterName {
    type Err = InvalidClusterName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ClusterName {
    type Error = InvalidClusterName;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ClusterName> for String {
    fn from(name: ClusterName) -> Self {
        name.0
    }
}

impl AsRef<str> for ClusterName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A string that is not a valid [`ClusterName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cluster name {name:?}: {reason} (a DNS-1123 label)")]
pub struct InvalidClusterName {
    /// The rejected input.
    pub name: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// One registered cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterRow {
    /// Its name.
    pub name: ClusterName,
    /// Free-form labels (used by access policies and ArgoCD).
    pub labels: BTreeMap<String, String>,
    /// When it was registered.
    pub created_at: UnixTime,
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A cluster of this name is already registered.
    #[error("cluster {0} is already registered")]
    AlreadyExists(ClusterName),
    /// No cluster of this name is registered.
    #[error("cluster {0} is not registered")]
    NotFound(ClusterName),
    /// The store failed.
    #[error("cluster registry storage failed")]
    Store(#[from] StoreError),
}
