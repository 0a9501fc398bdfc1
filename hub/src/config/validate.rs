//! Semantic checks that serde cannot express: each names the offending field.

use url::Url;

use super::{Config, ConfigError};
use crate::keys::KeyError;

impl Config {
    /// Checks relations between fields; called by every constructor.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_issuer()?;
        self.validate_listeners()?;
        self.validate_tls()?;
        self.validate_keys()?;
        self.validate_telemetry()?;
        self.validate_sessions_and_clients()?;
        self.validate_argocd()?;
        if let Some(upstream) = &self.upstream {
            // The upstream issuer has its own `upstream.dangerous_allow_http_issuer` switch.
            upstream
                .validate()
                .map_err(|err| ConfigError::invalid(err.field, err.reason))?;
        }
        if let Some(access) = &self.access {
            access
                .validate()
                .map_err(|(field, reason)| ConfigError::invalid(field, reason))?;
        }
        if let Some(machine) = &self.machine {
            machine
                .validate(self.hub_cluster.is_some())
                .map_err(|(field, reason)| ConfigError::invalid(field, reason))?;
        }
        Ok(())
    }

    fn validate_issuer(&self) -> Result<(), ConfigError> {
        let url = self.issuer.url();
        self.validate_url("issuer", url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::invalid(
                "issuer",
                "must not have a query or a fragment (OpenID Connect Discovery 1.0 §2)",
            ));
        }
        Ok(())
    }

    /// An https URL with a host and no credentials; http only behind the dangerous switch.
    fn validate_url(&self, field: &str, url: &Url) -> Result<(), ConfigError> {
        match url.scheme() {
            "https" => {}
            "http" if self.dangerous_allow_http_issuer => {}
            "http" => {
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "{url} must be https (set `dangerous_allow_http_issuer: true` only for tests)"
                    ),
                ));
            }
            other => {
                return Err(ConfigError::invalid(
                    field,
                    format!("unsupported scheme {other:?}, expected https"),
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::invalid(field, "must have a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::invalid(field, "must not carry credentials"));
        }
        Ok(())
    }

    fn validate_listeners(&self) -> Result<(), ConfigError> {
        let same_port = self.listen.port() == self.metrics.listen.port() && self.listen.port() != 0;
        if same_port
            && (self.listen.ip() == self.metrics.listen.ip()
                || self.listen.ip().is_unspecified()
                || self.metrics.listen.ip().is_unspecified())
        {
            return Err(ConfigError::invalid(
                "metrics.listen",
                format!(
                    "{} collides with listen {}",
                    self.metrics.listen, self.listen
                ),
            ));
        }
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let tls = &self.tls;
        match (&tls.cert_file, &tls.key_file, tls.self_signed) {
            (Some(_), Some(_), false) => Ok(()),
            (None, None, true) if tls.self_signed_dir.is_some() => Ok(()),
            (None, None, true) => Err(ConfigError::invalid(
                "tls.self_signed_dir",
                "required with `self_signed: true` (the CA is kept there for clients to trust)",
            )),
            (Some(_), None, false) => Err(ConfigError::invalid(
                "tls.key_file",
                "required with tls.cert_file",
            )),
            (None, Some(_), false) => Err(ConfigError::invalid(
                "tls.cert_file",
                "required with tls.key_file",
            )),
            (None, None, false) => Err(ConfigError::invalid(
                "tls",
                "set `cert_file` and `key_file`, or `self_signed: true`",
            )),
            (_, _, true) => Err(ConfigError::invalid(
                "tls.self_signed",
                "cannot be combined with cert_file/key_file",
            )),
        }
    }

    fn validate_keys(&self) -> Result<(), ConfigError> {
        self.keys.validate().map_err(|err| {
            // The keys module names its field first (`keys.publish_lead (5s) must ...`).
            let reason = match err {
                KeyError::InvalidConfig { reason } => reason,
                other => other.to_string(),
            };
            let field = reason
                .split_whitespace()
                .next()
                .filter(|word| word.starts_with("keys."))
                .unwrap_or("keys")
                .to_owned();
            ConfigError::invalid(field, reason)
        })?;
        // Also checked by the keys module; kept here because the JWKS handler relies on it.
        let max_age = self.keys.jwks_max_age();
        let publish_lead = self.keys.publish_lead;
        if publish_lead <= max_age {
            return Err(ConfigError::invalid(
                "keys.publish_lead",
                format!(
                    "{} must be longer than the JWKS max-age ({}), or a verifier holding a cached \
                     key set could see a token signed by a key it has not fetched yet",
                    humantime::format_duration(publish_lead),
                    humantime::format_duration(max_age),
                ),
            ));
        }
        let lifetime = self.tokens.cluster_token_lifetime.as_duration();
        if lifetime.is_zero() {
            return Err(ConfigError::invalid(
                "tokens.cluster_token_lifetime",
                "must be positive",
            ));
        }
        let max_lifetime = self.keys.max_token_lifetime;
        if lifetime > max_lifetime {
            return Err(ConfigError::invalid(
                "tokens.cluster_token_lifetime",
                format!(
                    "{} exceeds keys.max_token_lifetime ({})",
                    humantime::format_duration(lifetime),
                    humantime::format_duration(max_lifetime),
                ),
            ));
        }
        Ok(())
    }

    fn validate_sessions_and_clients(&self) -> Result<(), ConfigError> {
        self.sessions
            .check(self.keys.max_token_lifetime)
            .map_err(|(field, reason)| ConfigError::invalid(field, reason))?;
        crate::clients::validate_clients(&self.clients)
            .map_err(|(field, reason)| ConfigError::invalid(field, reason))
    }

    fn validate_argocd(&self) -> Result<(), ConfigError> {
        let Some(argocd) = &self.argocd else {
            return Ok(());
        };
        if self.hub_cluster.is_none() {
            return Err(ConfigError::invalid(
                "hub_cluster",
                "required by `argocd` (the cluster Secrets are written there): add \
                 `hub_cluster: {}` for the in-cluster ServiceAccount, or \
                 `hub_cluster: {kubeconfig: FILE}`",
            ));
        }
        if let Some(url) = &argocd.hub_url {
            self.validate_url("argocd.hub_url", url)?;
        }
        argocd
            .validate()
            .map_err(|(field, reason)| ConfigError::invalid(field, reason))
    }

    fn validate_telemetry(&self) -> Result<(), ConfigError> {
        let telemetry = &self.telemetry;
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&telemetry.log_level) {
            return Err(ConfigError::invalid(
                "telemetry.log_level",
                format!("invalid filter {:?}: {err}", telemetry.log_level),
            ));
        }
        if let Some(endpoint) = &telemetry.otlp_endpoint
            && !matches!(endpoint.scheme(), "http" | "https")
        {
            return Err(ConfigError::invalid(
                "telemetry.otlp_endpoint",
                format!(
                    "unsupported scheme {:?}, expected http or https",
                    endpoint.scheme()
                ),
            ));
        }
        Ok(())
    }
}
