//! What a login yields and what the hub keeps: [`Identity`], [`UpstreamGrant`],
//! [`PendingLogin`], [`UpstreamLogin`].

use std::fmt;

use openidconnect::{CsrfToken, Nonce, PkceCodeChallenge};
use serde::{Deserialize, Serialize};
use tether_common::secret::{Secret, ct_eq};
use tether_common::time::UnixTime;

use super::UpstreamError;

/// Random bytes in each of `state`, `nonce` and the PKCE verifier (256 bits).
const RANDOM_BYTES: u32 = 32;

/// Who logged in, after mapping (prefixes, filter, no `system:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The IdP's stable subject (`sub`), unprefixed.
    pub subject: String,
    /// The Kubernetes username.
    pub username: String,
    /// The Kubernetes groups: sorted, deduplicated.
    pub groups: Vec<String>,
}

/// The upstream tokens the hub keeps to re-validate a session later.
///
/// Store it encrypted ([`UpstreamGrant::to_bytes`] then `Kek::seal_bound`). `Debug` shows no
/// token.
#[derive(Clone)]
pub struct UpstreamGrant {
    /// The IdP access token (for userinfo).
    pub access_token: Secret,
    /// The IdP refresh token, when the IdP gave one (`offline_access`).
    pub refresh_token: Option<Secret>,
    /// When `access_token` expires, if the IdP said (`expires_in`).
    pub access_expires_at: Option<UnixTime>,
}

/// The JSON form of [`UpstreamGrant`] (`Secret` is not `Serialize` on purpose).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantJson<'a> {
    #[serde(borrow)]
    access_token: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    refresh_token: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    access_expires_at: Option<UnixTime>,
}

impl UpstreamGrant {
    /// The grant as JSON bytes, to be encrypted before storage. Holds the tokens in clear.
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = GrantJson {
            access_token: self.access_token.expose().into(),
            refresh_token: self.refresh_token.as_ref().map(|s| s.expose().into()),
            access_expires_at: self.access_expires_at,
        };
        // Serializing strings and integers into a Vec cannot fail.
        serde_json::to_vec(&json).unwrap_or_default()
    }

    /// Parses bytes from [`UpstreamGrant::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, UpstreamError> {
        let json: GrantJson<'_> =
            serde_json::from_slice(bytes).map_err(UpstreamError::GrantFormat)?;
        Ok(Self {
            access_token: Secret::new(json.access_token.into_owned()),
            refresh_token: json.refresh_token.map(|t| Secret::new(t.into_owned())),
            access_expires_at: json.access_expires_at,
        })
    }
}

impl fmt::Debug for UpstreamGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamGrant")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("access_expires_at", &self.access_expires_at)
            .finish()
    }
}

/// What must be kept (server side, or sealed) between [`super::Upstream::begin`] and the
/// callback. Each value is 256 random bits, base64url. `Debug` shows none of them.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingLogin {
    /// The `state` sent to the IdP; the callback's `state` must equal it.
    pub state: String,
    /// The `nonce` the id_token must carry.
    pub nonce: String,
    /// The PKCE (S256) code verifier.
    pub pkce_verifier: String,
}

impl PendingLogin {
    /// Fresh random values, and the S256 challenge of the verifier.
    pub(crate) fn generate() -> (Self, PkceCodeChallenge) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(RANDOM_BYTES);
        let pending = Self {
            state: CsrfToken::new_random_len(RANDOM_BYTES).secret().clone(),
            nonce: Nonce::new_random_len(RANDOM_BYTES).secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        };
        (pending, challenge)
    }

    /// Whether the callback's `state` is this login's, compared in constant time.
    pub fn state_matches(&self, state: &str) -> bool {
        ct_eq(self.state.as_bytes(), state.as_bytes())
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PendingLogin(<redacted>)")
    }
}

/// A successful login or re-validation: who, and the (possibly rotated) upstream grant.
#[derive(Debug, Clone)]
pub struct UpstreamLogin {
    /// The mapped identity.
    pub identity: Identity,
    /// The grant to store (replaces the previous one after a re-validation).
    pub grant: UpstreamGrant,
}
