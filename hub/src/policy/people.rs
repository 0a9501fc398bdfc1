//! The people policy: which clusters a signed-in person may get tokens for, by group.
//!
//! The `access:` section of the configuration ([`AccessConfig`]) lists rules; a rule
//! grants the clusters its [`ClusterSelector`] matches to every session that carries one of
//! its groups. [`PeopleAccess`] is the policy the hub applies:
//!
//! - section absent: [`PeopleAccess::open`], every signed-in user may get tokens for every
//!   registered cluster (the hub logs a warning at startup; spoke RBAC still decides what
//!   they can do there);
//! - section present: deny unless some rule's groups intersect the session's groups and its
//!   selector matches the cluster (an empty `rules` list denies everyone).
//!
//! ```yaml
//! access:
//!   rules:
//!     - groups: [k8s-admins, k8s-viewers]
//!       clusters: { names: ["*"] }
//!     - groups: ["*"]                     # every signed-in user ...
//!       clusters: { labels: { env: dev } } # ... may reach the dev clusters
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{ClusterSelector, RESERVED_PREFIX};
use crate::registry::ClusterRow;

/// The group pattern that matches every signed-in user, whatever their groups.
pub const ANY_GROUP: &str = "*";

/// The `access:` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// The rules; a session may reach a cluster when any rule grants it.
    #[serde(default)]
    pub rules: Vec<AccessRule>,
}

/// One rule: sessions with any of `groups` may get tokens for the `clusters`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    /// Kubernetes groups as the hub maps them (after `upstream.groups_prefix`); `"*"` is
    /// every signed-in user.
    pub groups: Vec<String>,
    /// The clusters granted.
    pub clusters: ClusterSelector,
}

impl AccessConfig {
    /// Checks every rule; the error is `(field, reason)` with the field path
    /// (`access.rules[0].groups`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (i, rule) in self.rules.iter().enumerate() {
            rule.validate(&format!("access.rules[{i}]"))?;
        }
        Ok(())
    }
}

impl AccessRule {
    /// True if a session with `groups` is covered by this rule.
    pub fn covers(&self, groups: &[String]) -> bool {
        self.groups
            .iter()
            .any(|granted| granted == ANY_GROUP || groups.contains(granted))
    }

    /// Checks the rule; `field` is its path (`access.rules[0]`).
    fn validate(&self, field: &str) -> Result<(), (String, String)> {
        let groups_field = format!("{field}.groups");
        if self.groups.is_empty() {
            return Err((
                groups_field,
                "must list at least one group (\"*\" for every signed-in user)".to_owned(),
            ));
        }
        for group in &self.groups {
            if group.trim().is_empty() {
                return Err((groups_field, "a group must not be empty".to_owned()));
            }
            if group.starts_with(RESERVED_PREFIX) {
                return Err((
                    groups_field,
                    format!(
                        "{group:?} starts with {RESERVED_PREFIX:?}: the hub never passes such groups \
                         through, so the rule could never match"
                    ),
                ));
            }
        }
        self.clusters
            .validate(&format!("{field}.clusters"))
            .map_err(split_field)
    }
}

/// The people policy the hub applies (cheap to clone).
#[derive(Debug, Clone)]
pub struct PeopleAccess {
    /// `None`: no `access` section, everything is allowed.
    rules: Option<Arc<[AccessRule]>>,
}

impl PeopleAccess {
    /// The policy of a configuration: [`PeopleAccess::open`] without an `access` section.
    pub fn from_config(config: Option<&AccessConfig>) -> Self {
        match config {
            Some(config) => Self::rules(config.rules.clone()),
            None => Self::open(),
        }
    }

    /// Every signed-in user may get tokens for every registered cluster.
    pub fn open() -> Self {
        Self { rules: None }
    }

    /// Deny unless one of `rules` grants.
    pub fn rules(rules: Vec<AccessRule>) -> Self {
        Self {
            rules: Some(rules.into()),
        }
    }

    /// True without an `access` section (everything allowed).
    pub fn is_open(&self) -> bool {
        self.rules.is_none()
    }

    /// True if a session with `groups` may get tokens for `cluster`.
    pub fn allows(&self, groups: &[String], cluster: &ClusterRow) -> bool {
        self.allows_parts(groups, cluster.name.as_str(), &cluster.labels)
    }

    /// True if a session with `groups` may get tokens for a cluster of this name and labels.
    pub fn allows_parts(
        &self,
        groups: &[String],
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        match &self.rules {
            None => true,
            Some(rules) => rules
                .iter()
                .any(|rule| rule.covers(groups) && rule.clusters.matches_parts(name, labels)),
        }
    }
}

impl Default for PeopleAccess {
    /// [`PeopleAccess::open`], as without an `access` section.
    fn default() -> Self {
        Self::open()
    }
}

/// `"field: reason"` (as [`ClusterSelector::validate`] words it) into `(field, reason)`.
fn split_field(message: String) -> (String, String) {
    match message.split_once(": ") {
        Some((field, reason)) => (field.to_owned(), reason.to_owned()),
        None => ("access".to_owned(), message),
    }
}

#[cfg(test)]
mod tests;
