//! [`UpstreamError`]: why talking to the upstream IdP failed. No message carries a token.

use std::path::PathBuf;

use super::config::UpstreamConfigError;

/// Why a call to the upstream IdP failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The `upstream` configuration is invalid (e.g. an `http://` issuer without the switch).
    #[error(transparent)]
    Config(#[from] UpstreamConfigError),
    /// The client secret file could not be read, or is empty.
    #[error("upstream.client_secret_file {}: {reason}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// What went wrong (never the content).
        reason: String,
    },
    /// Discovery (the provider metadata or its JWKS) failed at startup.
    #[error("OpenID Connect discovery at {issuer} failed: {reason}")]
    Discovery {
        /// The configured issuer.
        issuer: String,
        /// What went wrong.
        reason: String,
    },
    /// The IdP refused the authorization code, or its token response was unusable.
    #[error("authorization code exchange at the IdP failed: {0}")]
    Exchange(String),
    /// The id_token is missing or invalid (signature, `iss`, `aud`, `exp`, `nonce`, `at_hash`).
    #[error("invalid id_token from the IdP: {0}")]
    IdToken(String),
    /// The userinfo request failed (other than the access token being refused).
    #[error("userinfo at the IdP failed: {0}")]
    Userinfo(String),
    /// An upstream refresh failed for a reason other than a revoked grant.
    #[error("refresh at the IdP failed: {0}")]
    Refresh(String),
    /// A claim the mapping needs is absent (`sub`, or no username claim at all).
    #[error("the IdP sent no {0:?} claim")]
    MissingClaim(String),
    /// The username would be a Kubernetes `system:` identity: the login fails. (A `system:`
    /// group is only dropped, with a warning.)
    #[error("refused a `system:` identity from the IdP: {0}")]
    SystemIdentity(String),
    /// The IdP no longer accepts the grant (`invalid_grant` on refresh, `invalid_token` or
    /// 401 at userinfo): the account is locked, deleted, or its consent revoked. End the session.
    #[error("the upstream account is locked or gone, or its grant was revoked")]
    AccountRevoked,
    /// The upstream access token expired and no refresh token is held: the user must log in
    /// again. End the session.
    #[error("the upstream access token expired and there is no refresh token")]
    GrantExpired,
    /// The subject at the IdP changed between the id_token and userinfo, or across a
    /// re-validation.
    #[error("the IdP answered for another subject")]
    SubjectMismatch,
    /// The IdP could not be reached, timed out, or answered garbage.
    #[error("HTTP request to the IdP failed: {0}")]
    Http(String),
    /// A stored grant (from [`super::UpstreamGrant::to_bytes`]) could not be parsed.
    #[error("stored upstream grant is unreadable: {0}")]
    GrantFormat(#[source] serde_json::Error),
}

impl UpstreamError {
    /// The value of the `outcome` label of `tether_hub_upstream_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::AccountRevoked | Self::GrantExpired => "revoked",
            Self::SystemIdentity(_) | Self::MissingClaim(_) | Self::SubjectMismatch => "refused",
            Self::Http(_) => "unavailable",
            _ => "error",
        }
    }

    /// Whether the IdP may be fine in a moment (transport errors): a refresh may be retried
    /// rather than the session ended.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Http(_))
    }
}
