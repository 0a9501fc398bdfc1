//! Claims of the tokens the OIDC endpoints sign: ID tokens and hub access tokens.
//!
//! Typed structs serialized to JSON, so `exp`, `iat`, `nbf` and `auth_time` are integers
//! (the common verifier refuses anything else). Cluster tokens are
//! [`tether_common::token::Claims`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_common::time::UnixTime;
use tether_common::token::claims::name;
use tether_common::token::{Audience, Claims, HasRegisteredClaims};

/// Claim names the OIDC endpoints add to the common ones.
pub mod claim {
    /// OIDC: the end-user's preferred username (same value as `username`).
    pub const PREFERRED_USERNAME: &str = "preferred_username";
    /// OIDC: the nonce of the authorization request.
    pub const NONCE: &str = "nonce";
    /// OIDC: when the user authenticated.
    pub const AUTH_TIME: &str = "auth_time";
    /// The OAuth client a hub access token was issued to.
    pub const CLIENT_ID: &str = "client_id";
    /// The scope of a hub access token.
    pub const SCOPE: &str = "scope";
    /// What a hub token is for; [`TOKEN_USE_ACCESS`](super::TOKEN_USE_ACCESS) on access
    /// tokens, so an ID token is never accepted as one.
    pub const TOKEN_USE: &str = "token_use";
}

/// Signing kinds, counted by `tether_hub_tokens_minted_total{kind}`.
pub mod kind {
    /// ID tokens.
    pub const ID: &str = "id";
    /// Hub access tokens.
    pub const ACCESS: &str = "access";
    /// Cluster tokens from token exchange.
    pub const CLUSTER: &str = "cluster";
}

/// The `token_use` of hub access tokens.
pub const TOKEN_USE_ACCESS: &str = "access";

/// Claims of an OpenID Connect ID token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The hub's issuer.
    pub iss: String,
    /// The stable upstream subject.
    pub sub: String,
    /// The client id.
    pub aud: Audience,
    /// Expiry.
    pub exp: UnixTime,
    /// Issued at.
    pub iat: UnixTime,
    /// When the user logged in upstream (the session's creation).
    pub auth_time: UnixTime,
    /// The authorization request's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The hub session.
    pub sid: String,
    /// The Kubernetes username.
    pub username: String,
    /// Same as `username`, for OIDC clients.
    pub preferred_username: String,
    /// The Kubernetes groups.
    pub groups: Vec<String>,
}

impl HasRegisteredClaims for IdTokenClaims {
    const REQUIRED_CLAIMS: &'static [&'static str] = &[name::SUB, name::IAT, name::SID];
}

/// Claims of a hub access token: `aud` = the hub's issuer (never a cluster), for the
/// hub's own endpoints (userinfo, token exchange, revocation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The registered and identity claims; `aud` is the issuer, `sid` is always set.
    #[serde(flatten)]
    pub claims: Claims,
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scope.
    pub scope: String,
    /// Always [`TOKEN_USE_ACCESS`].
    pub token_use: String,
}

impl AccessTokenClaims {
    /// Claims for a session's access token at `now`.
    #[expect(clippy::too_many_arguments, reason = "one argument per claim")]
    pub fn mint(
        issuer: &str,
        subject: &str,
        username: &str,
        groups: Vec<String>,
        sid: &str,
        client_id: &str,
        scope: &str,
        now: UnixTime,
        lifetime: Duration,
    ) -> Self {
        Self {
            claims: Claims::mint(
                issuer,
                issuer,
                subject,
                username,
                groups,
                Some(sid.to_owned()),
                now,
                lifetime,
            ),
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            token_use: TOKEN_USE_ACCESS.to_owned(),
        }
    }

    /// The session id (always present on tokens the hub minted).
    pub fn sid(&self) -> Option<&str> {
        self.claims.sid.as_deref()
    }
}

impl HasRegisteredClaims for AccessTokenClaims {
    const REQUIRED_CLAIMS: &'static [&'static str] = &[
        name::SUB,
        name::USERNAME,
        name::GROUPS,
        name::JTI,
        name::IAT,
        name::NBF,
        name::SID,
        claim::CLIENT_ID,
        claim::TOKEN_USE,
    ];
}
