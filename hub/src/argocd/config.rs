//! `argocd`: where ArgoCD reads cluster Secrets and how its controller gets a credential.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::HumanDuration;

/// Default namespace ArgoCD looks for cluster Secrets in.
pub const DEFAULT_NAMESPACE: &str = "argocd";
/// Default path of `tetherctl` inside the ArgoCD images (the usual `custom-tools` volume).
pub const DEFAULT_CREDENTIAL_COMMAND: &str = "/custom-tools/tetherctl";
/// Default token file: the controller pod's ServiceAccount token.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Default interval between full reconciliations.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// Shortest accepted `resync_interval`.
pub const MIN_RESYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Longest accepted `resync_interval`.
pub const MAX_RESYNC_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The `argocd` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdConfig {
    /// The namespace ArgoCD reads cluster Secrets from.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// `tetherctl` as the ArgoCD controller runs it (`execProviderConfig.command`).
    #[serde(default = "default_credential_command")]
    pub credential_command: String,
    /// The token `tetherctl credential` presents: the controller's ServiceAccount token.
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    /// The hub URL `tetherctl credential` talks to; default: the issuer.
    #[serde(default)]
    pub hub_url: Option<Url>,
    /// PEM file of the CA `tetherctl credential` trusts for the hub; default: the hub's
    /// self-signed TLS CA when `tls.self_signed`, otherwise none (system roots).
    #[serde(default)]
    pub hub_ca_file: Option<PathBuf>,
    /// How often every replica compares the Secrets with the registry (changes seen by a
    /// replica are written at once).
    #[serde(default = "default_resync_interval")]
    pub resync_interval: HumanDuration,
}

impl Default for ArgoCdConfig {
    fn default() -> Self {
        Self {
            namespace: default_namespace(),
            credential_command: default_credential_command(),
            token_file: default_token_file(),
            hub_url: None,
            hub_ca_file: None,
            resync_interval: default_resync_interval(),
        }
    }
}

impl ArgoCdConfig {
    /// Checks the fields on their own (`hub_url`'s scheme and the `hub_cluster` dependency
    /// are checked by [`crate::config::Config::validate`]); errors are (field, reason).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let invalid = |field: &str, reason: String| Err((format!("argocd.{field}"), reason));
        if let Err(reason) = super::secret::dns1123_label(&self.namespace) {
            return invalid(
                "namespace",
                format!("{:?} is not a namespace name: {reason}", self.namespace),
            );
        }
        let command = self.credential_command.as_str();
        if command.trim().is_empty() || command.trim() != command {
            return invalid(
                "credential_command",
                format!(
                    "{command:?}: give the path of tetherctl in the ArgoCD image, e.g. {DEFAULT_CREDENTIAL_COMMAND}"
                ),
            );
        }
        if !self.token_file.is_absolute() {
            return invalid(
                "token_file",
                format!(
                    "{} must be an absolute path in the ArgoCD controller's pod, e.g. {DEFAULT_TOKEN_FILE}",
                    self.token_file.display()
                ),
            );
        }
        if self.token_file.to_str().is_none() {
            return invalid("token_file", "must be valid UTF-8".to_owned());
        }
        let resync = self.resync_interval.as_duration();
        if !(MIN_RESYNC_INTERVAL..=MAX_RESYNC_INTERVAL).contains(&resync) {
            return invalid(
                "resync_interval",
                format!("{} must be between 1s and 24h", self.resync_interval),
            );
        }
        Ok(())
    }
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

fn default_credential_command() -> String {
    DEFAULT_CREDENTIAL_COMMAND.to_owned()
}

fn default_token_file() -> PathBuf {
    PathBuf::from(DEFAULT_TOKEN_FILE)
}

fn default_resync_interval() -> HumanDuration {
    HumanDuration::new(DEFAULT_RESYNC_INTERVAL)
}
