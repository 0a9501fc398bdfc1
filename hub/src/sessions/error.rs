//! [`SessionError`]: why a session operation failed.

use crate::store::StoreError;

/// Why a session operation failed. Only [`SessionError::InvalidGrant`] and
/// [`SessionError::InvalidRequest`] reasons are meant for the client; the others map to a
/// generic server error (or `invalid_grant` where the endpoint says so).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The code, refresh token or PKCE verifier is not acceptable (RFC 6749 `invalid_grant`).
    /// The reason is safe to show a client.
    #[error("invalid grant: {0}")]
    InvalidGrant(&'static str),
    /// A parameter is malformed (RFC 6749 `invalid_request`); the reason is safe to show.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// No such session (or login) exists.
    #[error("no such session")]
    NotFound,
    /// The session (or the pending login) expired.
    #[error("the session has expired")]
    Expired,
    /// The session was revoked.
    #[error("the session was revoked")]
    Revoked,
    /// The stored login request could not be encoded or decoded.
    #[error("cannot encode or decode the pending login")]
    Encoding(#[source] serde_json::Error),
    /// Encryption or decryption with the KEK failed (wrong KEK or a tampered row).
    #[error("cannot encrypt or decrypt the upstream grant")]
    Crypto(#[source] crate::keys::KeyError),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// The store failed.
    #[error("session storage failed")]
    Store(#[from] StoreError),
}

impl SessionError {
    /// True for errors that are the client's fault (`invalid_grant`, `invalid_request`,
    /// an expired, revoked or unknown session), false for server-side failures.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidGrant(_)
                | Self::InvalidRequest(_)
                | Self::NotFound
                | Self::Expired
                | Self::Revoked
        )
    }
}
