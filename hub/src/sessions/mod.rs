//! Hub sessions: browser login state, authorization codes, rotating refresh tokens.
//!
//! A session starts when the upstream IdP logs a user in ([`Sessions::create`]); the client
//! receives an authorization code ([`Sessions::issue_code`]) that it redeems once with its
//! PKCE verifier ([`Sessions::redeem_code`]), then an opaque refresh token that rotates on
//! every use ([`Sessions::refresh`]). Presenting a spent refresh token or a spent code
//! revokes the whole session. Sessions end after an idle timeout and an absolute lifetime.
//!
//! Every opaque value (refresh token, code, login id) is 256 random bits, stored only as
//! its SHA-256; the upstream grant is stored encrypted with the KEK, bound to the session
//! id. Time is always a parameter (`now`).
//!
//! - [`config`]: [`SessionsConfig`] (the `sessions:` section).
//! - [`error`](mod@error): [`SessionError`].
//! - [`secrets`]: random tokens, their hashes, PKCE.
//! - [`service`]: [`Sessions`], the service the endpoints call.

pub mod config;
pub mod error;
pub mod secrets;
pub mod service;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};
use tether_common::time::UnixTime;

pub use config::SessionsConfig;
pub use error::SessionError;
pub use secrets::{pkce_s256_matches, s256_challenge, valid_code_challenge, valid_code_verifier};
pub use service::Sessions;

/// Counter of refresh attempts, labelled `outcome` (`success`, `invalid`, `reuse`,
/// `expired`, `revoked`, `error`).
pub const METRIC_REFRESH: &str = "tether_hub_refresh_total";

/// `revoked_reason` when a spent refresh token was presented again.
pub const REASON_REFRESH_TOKEN_REUSE: &str = "refresh_token_reuse";
/// `revoked_reason` when a spent authorization code was presented again.
pub const REASON_CODE_REUSE: &str = "code_reuse";
/// `revoked_reason` for RFC 7009 revocation of a refresh token.
pub const REASON_TOKEN_REVOKED: &str = "token_revocation";
/// `revoked_reason` for a user logout.
pub const REASON_LOGOUT: &str = "logout";
/// `revoked_reason` when the upstream IdP no longer accepts the user.
pub const REASON_UPSTREAM_REJECTED: &str = "upstream_rejected";

/// The AEAD purpose (part of the associated data) of the stored upstream grant.
pub const UPSTREAM_GRANT_PURPOSE: &str = "session.upstream_grant";

/// Audit kinds written by this module. Records name session ids and clients, never a
/// token, code or secret.
pub mod audit_kind {
    /// A session was created after an upstream login.
    pub const SESSION_CREATED: &str = "session.created";
    /// An authorization code was redeemed (tokens issued).
    pub const CODE_REDEEMED: &str = "code.redeemed";
    /// A spent authorization code was presented again; its session was revoked.
    pub const CODE_REUSE: &str = "code.reuse";
    /// A refresh token was rotated.
    pub const SESSION_REFRESHED: &str = "session.refreshed";
    /// A refresh was refused (unknown token, wrong client, expired session...).
    pub const REFRESH_DENIED: &str = "session.refresh_denied";
    /// A spent refresh token was presented again; the session was revoked.
    pub const REFRESH_REUSE: &str = "session.refresh_reuse";
    /// A session was revoked.
    pub const SESSION_REVOKED: &str = "session.revoked";
    /// The upstream identity of a session was re-validated and updated.
    pub const SESSION_IDENTITY_UPDATED: &str = "session.identity_updated";
}

/// A session id (the `sid` claim): 128 random bits, base64url. Not a secret by itself (it
/// appears in tokens and audit records), but unguessable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// Wraps an id read from a token or the store.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a session belongs to, as the upstream IdP said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionIdentity {
    /// The stable upstream subject.
    pub subject: String,
    /// The username.
    pub username: String,
    /// The groups.
    pub groups: Vec<String>,
}

/// A hub session (never carries its tokens or the upstream grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The session id (`sid`).
    pub id: SessionId,
    /// The stable upstream subject (`sub`).
    pub subject: String,
    /// The username.
    pub username: String,
    /// The groups.
    pub groups: Vec<String>,
    /// The client the user logged in to.
    pub client_id: String,
    /// When the user logged in.
    pub created_at: UnixTime,
    /// Last code redemption or refresh.
    pub last_used_at: UnixTime,
    /// When the session ends whatever its use.
    pub absolute_expires_at: UnixTime,
    /// When the upstream grant was last validated.
    pub upstream_checked_at: UnixTime,
}

impl Session {
    /// The identity part.
    pub fn identity(&self) -> SessionIdentity {
        SessionIdentity {
            subject: self.subject.clone(),
            username: self.username.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// What a redeemed code carries besides the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGrant {
    /// The OIDC `nonce` of the authorization request (goes into the ID token).
    pub nonce: Option<String>,
    /// The granted scope.
    pub scope: String,
    /// The redirect URI the code was issued for.
    pub redirect_uri: String,
}

/// The client's authorization request, kept while the user is at the upstream IdP
/// ([`Sessions::start_login`] / [`Sessions::take_login`] accept any serde type; this is
/// the one the endpoints are expected to use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri` exactly as presented (already checked against the client).
    pub redirect_uri: String,
    /// `scope`.
    pub scope: String,
    /// `state`, returned to the client unchanged.
    #[serde(default)]
    pub state: Option<String>,
    /// `nonce`, copied into the ID token.
    #[serde(default)]
    pub nonce: Option<String>,
    /// `code_challenge` (S256).
    pub code_challenge: String,
}

impl From<crate::upstream::Identity> for SessionIdentity {
    fn from(identity: crate::upstream::Identity) -> Self {
        Self {
            subject: identity.subject,
            username: identity.username,
            groups: identity.groups,
        }
    }
}
