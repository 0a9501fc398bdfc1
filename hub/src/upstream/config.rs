//! [`UpstreamConfig`]: the `upstream:` section of the hub configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tether_common::time::UnixTime;
use url::Url;

use crate::config::HumanDuration;

/// Default scopes asked at login (`offline_access` for an upstream refresh token).
pub const DEFAULT_SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];
/// Default claim holding the username (Okta puts the login, usually the email, there).
pub const DEFAULT_USERNAME_CLAIM: &str = "preferred_username";
/// Default claim holding the groups.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// Default interval between re-validations at the IdP.
pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The prefix Kubernetes reserves for itself: never accepted from the IdP.
pub const SYSTEM_PREFIX: &str = "system:";

/// `upstream`: the enterprise IdP (Okta, or any OpenID Connect provider) the hub logs users
/// in with. Without this section browser login is disabled.
///
/// The username is taken from `username_claim`, falling back to `email` (unless
/// `email_verified` is `false`), then to `sub`. Groups come from `groups_claim` in the
/// id_token or, when the id_token does not carry it (Okta's thin id_token), from userinfo;
/// they are filtered by `groups_filter`, then prefixed. A `system:` username fails the login;
/// a `system:` group is dropped with a warning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The IdP's issuer URL; discovery is fetched from `{issuer}/.well-known/openid-configuration`.
    pub issuer: Url,
    /// The hub's client id at the IdP.
    pub client_id: String,
    /// A file holding the client secret (mounted from a Secret), read once at startup and
    /// trimmed; absent for a public client (PKCE only). Never logged.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked at login (default `openid profile email groups offline_access`).
    #[serde(default = "UpstreamConfig::default_scopes")]
    pub scopes: Vec<String>,
    /// The claim holding the username (default `preferred_username`); falls back to `email`,
    /// then `sub`.
    #[serde(default = "UpstreamConfig::default_username_claim")]
    pub username_claim: String,
    /// The claim holding the groups (default `groups`): an array of strings or one string.
    #[serde(default = "UpstreamConfig::default_groups_claim")]
    pub groups_claim: String,
    /// Keep only groups matching one of these patterns (`*` matches any run of characters);
    /// empty keeps every group. Applied before prefixing.
    #[serde(default)]
    pub groups_filter: Vec<String>,
    /// Prepended to every username (e.g. `okta:`).
    #[serde(default)]
    pub username_prefix: Option<String>,
    /// Prepended to every group (e.g. `okta:`).
    #[serde(default)]
    pub groups_prefix: Option<String>,
    /// How often a hub refresh re-validates the user at the IdP (default `5m`).
    #[serde(
        default = "UpstreamConfig::default_recheck_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub recheck_interval: Duration,
    /// Accept an `http://` issuer: only for loopback test IdPs (`http://127.0.0.1:PORT`).
    #[serde(default)]
    pub dangerous_allow_http_issuer: bool,
}

impl UpstreamConfig {
    /// A configuration with every default, for `issuer` and `client_id`.
    pub fn new(issuer: Url, client_id: impl Into<String>) -> Self {
        Self {
            issuer,
            client_id: client_id.into(),
            client_secret_file: None,
            scopes: Self::default_scopes(),
            username_claim: Self::default_username_claim(),
            groups_claim: Self::default_groups_claim(),
            groups_filter: Vec::new(),
            username_prefix: None,
            groups_prefix: None,
            recheck_interval: DEFAULT_RECHECK_INTERVAL,
            dangerous_allow_http_issuer: false,
        }
    }

    /// Whether a session last checked at the IdP at `last_checked` is due for another check.
    pub fn recheck_due(&self, last_checked: UnixTime, now: UnixTime) -> bool {
        last_checked.saturating_add(self.recheck_interval) <= now
    }

    /// Checks what serde cannot; the error names the field (`upstream.<field>`).
    pub fn validate(&self) -> Result<(), UpstreamConfigError> {
        let issuer = &self.issuer;
        match issuer.scheme() {
            "https" => {}
            "http" if self.dangerous_allow_http_issuer => {}
            "http" => {
                return Err(UpstreamConfigError::new(
                    "upstream.issuer",
                    format!(
                        "{issuer} must be https (set `upstream.dangerous_allow_http_issuer: true` only for a loopback test IdP)"
                    ),
                ));
            }
            other => {
                return Err(UpstreamConfigError::new(
                    "upstream.issuer",
                    format!("unsupported scheme {other:?}, expected https"),
                ));
            }
        }
        if issuer.host_str().is_none_or(str::is_empty) {
            return Err(UpstreamConfigError::new(
                "upstream.issuer",
                "must have a host",
            ));
        }
        if !issuer.username().is_empty() || issuer.password().is_some() {
            return Err(UpstreamConfigError::new(
                "upstream.issuer",
                "must not carry credentials",
            ));
        }
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(UpstreamConfigError::new(
                "upstream.issuer",
                "must not have a query or a fragment (OpenID Connect Discovery 1.0 §2)",
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(UpstreamConfigError::new(
                "upstream.client_id",
                "must not be empty",
            ));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(UpstreamConfigError::new(
                "upstream.scopes",
                "must include `openid`",
            ));
        }
        if let Some(bad) = self.scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
            return Err(UpstreamConfigError::new(
                "upstream.scopes",
                format!("{bad:?} is not a scope token"),
            ));
        }
        for (field, value) in [
            ("upstream.username_claim", &self.username_claim),
            ("upstream.groups_claim", &self.groups_claim),
        ] {
            if value.trim().is_empty() {
                return Err(UpstreamConfigError::new(field, "must not be empty"));
            }
        }
        if self.groups_filter.iter().any(String::is_empty) {
            return Err(UpstreamConfigError::new(
                "upstream.groups_filter",
                "patterns must not be empty",
            ));
        }
        for (field, prefix) in [
            ("upstream.username_prefix", &self.username_prefix),
            ("upstream.groups_prefix", &self.groups_prefix),
        ] {
            if let Some(prefix) = prefix {
                if prefix.is_empty() {
                    return Err(UpstreamConfigError::new(
                        field,
                        "must not be empty (omit it instead)",
                    ));
                }
                if prefix.starts_with(SYSTEM_PREFIX) {
                    return Err(UpstreamConfigError::new(
                        field,
                        "must not start with `system:` (reserved by Kubernetes)",
                    ));
                }
            }
        }
        if self.recheck_interval.is_zero() {
            return Err(UpstreamConfigError::new(
                "upstream.recheck_interval",
                "must be positive",
            ));
        }
        Ok(())
    }

    fn default_scopes() -> Vec<String> {
        DEFAULT_SCOPES.map(str::to_owned).to_vec()
    }

    fn default_username_claim() -> String {
        DEFAULT_USERNAME_CLAIM.to_owned()
    }

    fn default_groups_claim() -> String {
        DEFAULT_GROUPS_CLAIM.to_owned()
    }

    fn default_recheck_interval() -> Duration {
        DEFAULT_RECHECK_INTERVAL
    }
}

/// An invalid `upstream` field, as reported by [`UpstreamConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct UpstreamConfigError {
    /// The field, `upstream.<name>`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl UpstreamConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A humantime string (`5m`) into a [`Duration`].
fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    HumanDuration::deserialize(deserializer).map(HumanDuration::as_duration)
}
