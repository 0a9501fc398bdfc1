//! The `machine` section: TokenReview cache, trusted external issuers, access policies.
//!
//! [`MachineConfig::validate`] checks what serde cannot and names the offending field
//! (`machine.policies[1].issuer: "ci" is not a trusted issuer`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::{HumanDuration, Issuer};
use crate::policy::{ClusterSelector, KubeIdentity};

/// Default `machine.token_review.cache_ttl`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Default `machine.token_review.cache_size`.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;
/// Default `machine.token_review.max_concurrent`.
pub const DEFAULT_MAX_CONCURRENT: usize = 32;
/// Longest `cache_ttl` accepted: a deleted ServiceAccount must stop working soon.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(300);

/// `machine`: how workloads (ArgoCD, CI jobs) obtain cluster tokens with their own credential.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// How ServiceAccount tokens are reviewed on the hub cluster.
    #[serde(default)]
    pub token_review: TokenReviewConfig,
    /// External issuers whose JWTs are accepted (e.g. a CI system's OIDC tokens).
    #[serde(default)]
    pub trusted_issuers: Vec<TrustedIssuerConfig>,
    /// Which workload may reach which clusters, as whom. The first match wins.
    #[serde(default)]
    pub policies: Vec<MachinePolicyConfig>,
}

/// `machine.token_review`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenReviewConfig {
    /// `spec.audiences` of each TokenReview; empty means the apiserver's own audiences.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// A positive review is reused until the token's `exp` or this long, whichever is first.
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: HumanDuration,
    /// Most tokens remembered at once.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// Most reviews of distinct tokens in flight; more wait their turn (never refused).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
}

impl Default for TokenReviewConfig {
    fn default() -> Self {
        Self {
            audiences: Vec::new(),
            cache_ttl: default_cache_ttl(),
            cache_size: DEFAULT_CACHE_SIZE,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
        }
    }
}

fn default_cache_ttl() -> HumanDuration {
    HumanDuration::new(DEFAULT_CACHE_TTL)
}

fn default_cache_size() -> usize {
    DEFAULT_CACHE_SIZE
}

fn default_max_concurrent() -> usize {
    DEFAULT_MAX_CONCURRENT
}

/// `machine.trusted_issuers[]`: an external OpenID Connect issuer of workload JWTs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// The name policies refer to; also the prefix of the token's `sub` (`ci:<sub>`).
    pub name: String,
    /// The `iss` of its tokens, compared exactly (no trailing slash); its discovery
    /// document gives `jwks_uri`.
    pub issuer: Issuer,
    /// The `aud` its tokens must carry (e.g. `tether`).
    pub audience: String,
    /// The JWKS URL, skipping discovery.
    #[serde(default)]
    pub jwks_uri: Option<Url>,
    /// A PEM CA file: the only roots trusted for this issuer's HTTPS (default: system roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Fetch discovery and keys over plain http (loopback tests only).
    #[serde(default)]
    pub dangerous_allow_http: bool,
}

/// `machine.policies[]`: one workload (a ServiceAccount, or an issuer's tokens with given
/// claims), the clusters it may reach, and the identity it has there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachinePolicyConfig {
    /// Unique name, shown in audit records.
    pub name: String,
    /// A ServiceAccount of the hub cluster (checked with TokenReview).
    #[serde(default)]
    pub serviceaccount: Option<ServiceAccountRef>,
    /// A trusted issuer's `name` (with `claims`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Claims the issuer's token must carry, each an exact string match.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// The clusters granted.
    pub clusters: ClusterSelector,
    /// The identity the spoke's proxy impersonates.
    pub identity: KubeIdentity,
}

/// A ServiceAccount by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A field path and what is wrong with it.
pub type FieldError = (String, String);

impl MachineConfig {
    /// Checks the section; `hub_cluster` tells whether a hub cluster is configured
    /// (ServiceAccount policies need it).
    pub fn validate(&self, hub_cluster: bool) -> Result<(), FieldError> {
        self.token_review.validate()?;
        let issuers = validate_issuers(&self.trusted_issuers)?;
        let mut names = BTreeSet::new();
        for (i, policy) in self.policies.iter().enumerate() {
            let field = |name: &str| format!("machine.policies[{i}].{name}");
            let err = |name: &str, reason: String| Err((field(name), reason));
            if !valid_name(&policy.name) {
                return err(
                    "name",
                    format!(
                        "{:?} must be non-empty, without whitespace or ':'",
                        policy.name
                    ),
                );
            }
            if !names.insert(policy.name.as_str()) {
                return err("name", format!("{:?} is defined twice", policy.name));
            }
            match (&policy.serviceaccount, &policy.issuer) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err((
                        format!("machine.policies[{i}]"),
                        "name exactly one of `serviceaccount` or `issuer`".to_owned(),
                    ));
                }
                (Some(sa), None) => {
                    if !hub_cluster {
                        return err(
                            "serviceaccount",
                            "needs the `hub_cluster` section (ServiceAccount tokens are \
                             checked with TokenReview on the hub cluster)"
                                .to_owned(),
                        );
                    }
                    validate_dns_label(&sa.namespace).map_err(|reason| {
                        (
                            field("serviceaccount.namespace"),
                            format!("{:?} {reason}", sa.namespace),
                        )
                    })?;
                    validate_dns_subdomain(&sa.name).map_err(|reason| {
                        (
                            field("serviceaccount.name"),
                            format!("{:?} {reason}", sa.name),
                        )
                    })?;
                    if !policy.claims.is_empty() {
                        return err("claims", "only applies to `issuer` policies".to_owned());
                    }
                }
                (None, Some(issuer)) => {
                    if !issuers.contains(issuer.as_str()) {
                        return err(
                            "issuer",
                            format!(
                                "{issuer:?} is not the name of a machine.trusted_issuers entry"
                            ),
                        );
                    }
                    if policy.claims.is_empty() {
                        return err(
                            "claims",
                            "at least one claim is required: an issuer's tokens are often \
                             shared by many workloads (every repository of a CI service)"
                                .to_owned(),
                        );
                    }
                    if let Some(key) = policy.claims.keys().find(|k| k.trim().is_empty()) {
                        return err("claims", format!("claim name {key:?} must not be empty"));
                    }
                }
            }
            policy
                .clusters
                .validate(&field("clusters"))
                .map_err(|reason| split_field(reason, &field("clusters")))?;
            policy
                .identity
                .validate(&field("identity"))
                .map_err(|reason| split_field(reason, &field("identity")))?;
        }
        Ok(())
    }
}

impl TokenReviewConfig {
    fn validate(&self) -> Result<(), FieldError> {
        let field = |name: &str| format!("machine.token_review.{name}");
        let ttl = self.cache_ttl.as_duration();
        if ttl.is_zero() || ttl > MAX_CACHE_TTL {
            return Err((
                field("cache_ttl"),
                format!(
                    "{} must be between 1s and {} (a deleted ServiceAccount keeps working \
                     until its cached review expires)",
                    self.cache_ttl,
                    humantime::format_duration(MAX_CACHE_TTL)
                ),
            ));
        }
        if self.cache_size == 0 {
            return Err((field("cache_size"), "must be at least 1".to_owned()));
        }
        if self.max_concurrent == 0 {
            return Err((field("max_concurrent"), "must be at least 1".to_owned()));
        }
        if let Some(bad) = self.audiences.iter().find(|a| a.trim().is_empty()) {
            return Err((field("audiences"), format!("{bad:?} must not be empty")));
        }
        Ok(())
    }
}

/// Checks the issuers; returns their names.
fn validate_issuers(issuers: &[TrustedIssuerConfig]) -> Result<BTreeSet<&str>, FieldError> {
    let mut names = BTreeSet::new();
    let mut urls = BTreeSet::new();
    for (i, issuer) in issuers.iter().enumerate() {
        let field = |name: &str| format!("machine.trusted_issuers[{i}].{name}");
        let err = |name: &str, reason: String| Err((field(name), reason));
        if !valid_name(&issuer.name) {
            return err(
                "name",
                format!(
                    "{:?} must be non-empty, without whitespace or ':'",
                    issuer.name
                ),
            );
        }
        if !names.insert(issuer.name.as_str()) {
            return err("name", format!("{:?} is defined twice", issuer.name));
        }
        if !urls.insert(issuer.issuer.as_str()) {
            return err(
                "issuer",
                format!("{} is already trusted under another name", issuer.issuer),
            );
        }
        if issuer.audience.trim().is_empty() {
            return err("audience", "must not be empty".to_owned());
        }
        check_url(issuer.issuer.url(), issuer.dangerous_allow_http)
            .map_err(|r| (field("issuer"), r))?;
        if let Some(jwks) = &issuer.jwks_uri {
            check_url(jwks, issuer.dangerous_allow_http).map_err(|r| (field("jwks_uri"), r))?;
        }
        if let Some(ca) = &issuer.ca_file
            && ca.as_os_str().is_empty()
        {
            return err("ca_file", "must not be empty".to_owned());
        }
    }
    Ok(names)
}

/// An https URL with a host and no credentials (http only behind the dangerous switch).
fn check_url(url: &Url, allow_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(format!(
                "{url} must be https (set `dangerous_allow_http: true` only for tests)"
            ));
        }
        other => return Err(format!("unsupported scheme {other:?}, expected https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must have a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".to_owned());
    }
    Ok(())
}

/// A name usable in audit records and token subjects.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
}

/// A Kubernetes namespace name (DNS-1123 label).
fn validate_dns_label(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may contain only lowercase letters, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must start and end with a letter or digit");
    }
    Ok(())
}

/// A ServiceAccount name (DNS-1123 subdomain).
fn validate_dns_subdomain(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    name.split('.').try_for_each(validate_dns_label)
}

/// The policy helpers return `"<field>.sub: reason"` or `"<field>: reason"`: split it back
/// into a field and a reason.
fn split_field(message: String, field: &str) -> FieldError {
    match message.strip_prefix(field) {
        Some(rest) => match rest.split_once(": ") {
            Some((suffix, reason)) => (format!("{field}{suffix}"), reason.to_owned()),
            None => (field.to_owned(), message),
        },
        None => (field.to_owned(), message),
    }
}
