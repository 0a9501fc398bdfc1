//! Claims of the tokens the hub signs, and the registered claims every verified token has.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// Default lifetime of a cluster token.
pub const DEFAULT_CLUSTER_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Claim names, shared by the types below and the verifier's checks.
pub mod name {
    /// Issuer.
    pub const ISS: &str = "iss";
    /// Audience.
    pub const AUD: &str = "aud";
    /// Subject: the stable upstream subject.
    pub const SUB: &str = "sub";
    /// Kubernetes username.
    pub const USERNAME: &str = "username";
    /// Kubernetes groups.
    pub const GROUPS: &str = "groups";
    /// Hub session id.
    pub const SID: &str = "sid";
    /// Token id.
    pub const JTI: &str = "jti";
    /// Issued at.
    pub const IAT: &str = "iat";
    /// Not before.
    pub const NBF: &str = "nbf";
    /// Expiry.
    pub const EXP: &str = "exp";
}

/// The `aud` claim: a single string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "x"`.
    One(String),
    /// `"aud": ["x", "y"]`.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is (one of) the audience(s).
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }

    /// Every audience value.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let values: &[String] = match self {
            Audience::One(one) => std::slice::from_ref(one),
            Audience::Many(many) => many,
        };
        values.iter().map(String::as_str)
    }
}

impl From<String> for Audience {
    fn from(audience: String) -> Self {
        Audience::One(audience)
    }
}

impl From<&str> for Audience {
    fn from(audience: &str) -> Self {
        Audience::One(audience.to_owned())
    }
}

impl From<Vec<String>> for Audience {
    fn from(audiences: Vec<String>) -> Self {
        Audience::Many(audiences)
    }
}

/// A claims type the [`Verifier`](super::Verifier) can return.
///
/// The verifier always requires `iss`, `aud` and `exp` and checks them, and checks `nbf` and
/// `iat` when present; this trait names the other claims that must be present, so a missing
/// one is reported as [`VerifyError::MissingClaim`](super::VerifyError::MissingClaim).
pub trait HasRegisteredClaims {
    /// Claims that must be present besides `iss`, `aud` and `exp`.
    const REQUIRED_CLAIMS: &'static [&'static str];
}

/// Claims of a cluster token (and of the hub's id tokens). All are required except `sid`;
/// other claims in a token are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the hub's issuer URL.
    pub iss: String,
    /// Audience: the spoke's cluster audience.
    pub aud: Audience,
    /// The stable upstream subject.
    pub sub: String,
    /// The Kubernetes username.
    pub username: String,
    /// The Kubernetes groups.
    pub groups: Vec<String>,
    /// The hub session this token was exchanged from; absent on the machine path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Unique token id (128 random bits).
    pub jti: String,
    /// Issued at.
    pub iat: UnixTime,
    /// Not valid before.
    pub nbf: UnixTime,
    /// Expiry: not valid at or after.
    pub exp: UnixTime,
}

impl Claims {
    /// New claims with a fresh `jti`, `iat` = `nbf` = `now` and `exp` = `now + lifetime`.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per claim; the hub's call sites name each"
    )]
    pub fn mint(
        issuer: impl Into<String>,
        audience: impl Into<Audience>,
        subject: impl Into<String>,
        username: impl Into<String>,
        groups: Vec<String>,
        sid: Option<String>,
        now: UnixTime,
        lifetime: Duration,
    ) -> Self {
        Self {
            iss: issuer.into(),
            aud: audience.into(),
            sub: subject.into(),
            username: username.into(),
            groups,
            sid,
            jti: super::random_id(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime),
        }
    }
}

impl HasRegisteredClaims for Claims {
    const REQUIRED_CLAIMS: &'static [&'static str] = &[
        name::SUB,
        name::USERNAME,
        name::GROUPS,
        name::JTI,
        name::IAT,
        name::NBF,
    ];
}

#[cfg(test)]
mod tests;
