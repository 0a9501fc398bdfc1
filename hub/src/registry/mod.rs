//! The spoke registry: the clusters the hub knows, by [`ClusterName`].
//!
//! A cluster is `pending` (added, join token issued), `joined` (an agent redeemed the token
//! and holds a hub-signed certificate) or `removed` (identity revoked; re-adding it starts
//! over). Rows are read and written through
//! [`Store::add_cluster`](crate::store::Store::add_cluster) and its siblings; join tokens
//! live in [`join_token`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tether_common::time::UnixTime;

use crate::store::StoreError;

pub mod join_token;
#[cfg(test)]
mod tests;

pub use join_token::{JoinSecret, JoinToken, JoinTokenId, JoinTokenRow};

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
    /// An agent redeemed a join token.
    pub const CLUSTER_JOINED: &str = "cluster.joined";
    /// An agent renewed its certificate.
    pub const CLUSTER_RENEWED: &str = "cluster.renewed";
    /// The clusters were listed.
    pub const CLUSTERS_LISTED: &str = "cluster.listed";
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

/// Where a cluster is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    /// Added; its join token has not been redeemed.
    Pending,
    /// An agent joined and holds a certificate.
    Joined,
    /// Removed: its identity is revoked.
    Removed,
}

impl ClusterState {
    /// The stored (and wire) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Joined => "joined",
            Self::Removed => "removed",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "joined" => Some(Self::Joined),
            "removed" => Some(Self::Removed),
            _ => None,
        }
    }
}

/// A cluster with its registration state (what the Admin API lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterRecord {
    /// Name, labels, creation time.
    #[serde(flatten)]
    pub row: ClusterRow,
    /// Its state.
    pub state: ClusterState,
    /// Serial (lowercase hex) of the agent's current certificate, once joined.
    pub cert_serial: Option<String>,
    /// End of validity of that certificate.
    pub cert_not_after: Option<UnixTime>,
    /// The agent's version, as last reported.
    pub agent_version: String,
    /// The agent's last heartbeat (or join).
    pub last_seen: Option<UnixTime>,
    /// Where kubectl reaches the spoke's proxy.
    pub proxy_url: String,
    /// The CA (PEM) of the proxy's certificate.
    pub proxy_ca_pem: String,
}

/// What an agent reports in a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentReport {
    /// The agent's version.
    pub agent_version: String,
    /// Where kubectl reaches the spoke's proxy.
    pub proxy_url: String,
    /// The CA (PEM) of the proxy's certificate.
    pub proxy_ca_pem: String,
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
    /// The cluster is not in a state that allows the operation (e.g. joining twice).
    #[error("cluster {name} is {state}")]
    WrongState {
        /// The cluster.
        name: ClusterName,
        /// Its state.
        state: &'static str,
    },
    /// The store failed.
    #[error("cluster registry storage failed")]
    Store(#[from] StoreError),
}
