//! `client.authentication.k8s.io` `ExecCredential`: what a kubectl exec plugin prints on
//! stdout, and [`ExecInfo`], what kubectl tells the plugin in `KUBERNETES_EXEC_INFO`.
//!
//! The token is a [`Secret`]: `Debug` never shows it; only [`ExecCredential::to_json`]
//! writes it, because printing it is the plugin's whole job.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::time::UnixTime;

/// The environment variable kubectl passes to exec plugins (JSON, an `ExecCredential`
/// with `spec` filled in).
pub const EXEC_INFO_ENV: &str = "KUBERNETES_EXEC_INFO";
/// `client.authentication.k8s.io/v1`, the default.
pub const API_VERSION_V1: &str = "client.authentication.k8s.io/v1";
/// `client.authentication.k8s.io/v1beta1`, for kubectl before 1.22.
pub const API_VERSION_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";
/// The `kind` of both.
pub const KIND: &str = "ExecCredential";

/// Why an `ExecCredential` exchange with kubectl is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ExecCredentialError {
    /// kubectl asked for an API version this plugin does not speak.
    #[error(
        "unsupported ExecCredential apiVersion {0:?}: expected {API_VERSION_V1} or {API_VERSION_V1BETA1}"
    )]
    UnsupportedVersion(String),
    /// `KUBERNETES_EXEC_INFO` is not the JSON kubectl sends.
    #[error("{EXEC_INFO_ENV} is not a valid ExecCredential")]
    BadExecInfo(#[source] serde_json::Error),
}

/// The `client.authentication.k8s.io` version of an `ExecCredential`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecApiVersion {
    /// `client.authentication.k8s.io/v1`.
    #[default]
    V1,
    /// `client.authentication.k8s.io/v1beta1`.
    V1Beta1,
}

impl ExecApiVersion {
    /// The `apiVersion` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => API_VERSION_V1,
            Self::V1Beta1 => API_VERSION_V1BETA1,
        }
    }

    /// Parses an `apiVersion` string.
    pub fn parse(s: &str) -> Result<Self, ExecCredentialError> {
        match s {
            API_VERSION_V1 => Ok(Self::V1),
            API_VERSION_V1BETA1 => Ok(Self::V1Beta1),
            other => Err(ExecCredentialError::UnsupportedVersion(other.to_owned())),
        }
    }
}

impl fmt::Display for ExecApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ExecApiVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What kubectl passes in `KUBERNETES_EXEC_INFO`: the version it wants back and whether a
/// person is at the terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecInfo {
    /// The version to answer with.
    pub api_version: ExecApiVersion,
    /// Whether the plugin may prompt (stdin is a terminal kubectl shares).
    pub interactive: bool,
}

impl ExecInfo {
    /// Parses the variable's value. kubectl sends `{"apiVersion": ..., "kind":
    /// "ExecCredential", "spec": {"interactive": bool, ...}}`; other fields are ignored.
    pub fn parse(json: &str) -> Result<Self, ExecCredentialError> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "apiVersion")]
            api_version: String,
            #[serde(default)]
            spec: Spec,
        }
        #[derive(Default, Deserialize)]
        struct Spec {
            #[serde(default)]
            interactive: bool,
        }
        let raw: Raw = serde_json::from_str(json).map_err(ExecCredentialError::BadExecInfo)?;
        Ok(Self {
            api_version: ExecApiVersion::parse(&raw.api_version)?,
            interactive: raw.spec.interactive,
        })
    }

    /// What a plugin assumes when kubectl passed nothing: v1, not interactive.
    pub fn from_env_value(value: Option<&str>) -> Result<Self, ExecCredentialError> {
        match value {
            Some(json) if !json.trim().is_empty() => Self::parse(json),
            _ => Ok(Self {
                api_version: ExecApiVersion::V1,
                interactive: false,
            }),
        }
    }
}

/// A bearer token for kubectl, valid until `expires_at`.
#[derive(Clone)]
pub struct ExecCredential {
    /// The version kubectl asked for.
    pub api_version: ExecApiVersion,
    /// The bearer token.
    pub token: Secret,
    /// When the token expires; kubectl reuses it until then.
    pub expires_at: UnixTime,
}

impl ExecCredential {
    /// A credential answering `api_version`.
    pub fn new(api_version: ExecApiVersion, token: Secret, expires_at: UnixTime) -> Self {
        Self {
            api_version,
            token,
            expires_at,
        }
    }

    /// The JSON document kubectl reads on stdout (one line, newline-terminated):
    /// `{"apiVersion":..,"kind":"ExecCredential","status":{"token":..,
    /// "expirationTimestamp":"2025-01-02T03:04:05Z"}}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Status<'a> {
            token: &'a str,
            expiration_timestamp: String,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Doc<'a> {
            api_version: ExecApiVersion,
            kind: &'static str,
            status: Status<'a>,
        }
        let doc = Doc {
            api_version: self.api_version,
            kind: KIND,
            status: Status {
                token: self.token.expose(),
                expiration_timestamp: rfc3339(self.expires_at),
            },
        };
        // Strings and a known enum: serializing cannot fail.
        let mut out = serde_json::to_string(&doc).unwrap_or_default();
        out.push('\n');
        out
    }
}

impl fmt::Debug for ExecCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecCredential")
            .field("api_version", &self.api_version)
            .field("token", &self.token)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// RFC 3339 in UTC, whole seconds (`2025-01-02T03:04:05Z`); times before the epoch print
/// as the epoch.
pub fn rfc3339(t: UnixTime) -> String {
    let at = u64::try_from(t.as_secs()).map_or(UNIX_EPOCH, |s| UNIX_EPOCH + Duration::from_secs(s));
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests;
