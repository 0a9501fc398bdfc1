//! Join tokens: `ID.SECRET`, single-use, short-lived, bound to one cluster name.
//!
//! The hub stores the id in clear (it is the row key) and only the SHA-256 (hex) of the
//! secret; redemption compares hashes in constant time and marks the row used with a
//! compare-and-set, so two concurrent joins with one token cannot both succeed.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use tether_common::time::UnixTime;
use zeroize::Zeroizing;

use super::ClusterName;

/// Random bytes in a token id (hex: 16 characters).
const ID_BYTES: usize = 8;
/// Random bytes in a token secret (base64url: 43 characters).
const SECRET_BYTES: usize = 32;

/// The public half of a join token (the row key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinTokenId(String);

impl JoinTokenId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let mut bytes = [0u8; ID_BYTES];
        SystemRandom::new().fill(&mut bytes)?;
        Ok(Self(hex(&bytes)))
    }

    /// Parses an id (16 lowercase hex digits).
    pub fn parse(s: &str) -> Option<Self> {
        let ok =
            s.len() == ID_BYTES * 2 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Self(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JoinTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The secret half of a join token. `Debug` is redacted; no `PartialEq`: compare
/// [`JoinSecret::hash`]es with [`hashes_match`].
pub struct JoinSecret(Zeroizing<String>);

impl JoinSecret {
    /// A fresh random secret.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        SystemRandom::new().fill(bytes.as_mut())?;
        Ok(Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))))
    }

    /// The secret text (to show once, in the join token).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Lowercase hex SHA-256 of the secret: what the store keeps.
    pub fn hash(&self) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, self.0.as_bytes()).as_ref())
    }
}

impl fmt::Debug for JoinSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JoinSecret(<redacted>)")
    }
}

/// A whole join token as the agent presents it: `ID.SECRET`.
#[derive(Debug)]
pub struct JoinToken {
    /// The id.
    pub id: JoinTokenId,
    /// The secret.
    pub secret: JoinSecret,
}

impl JoinToken {
    /// Parses `ID.SECRET`; `None` if it is not shaped like a join token.
    pub fn parse(token: &str) -> Option<Self> {
        let (id, secret) = token.trim().split_once('.')?;
        let id = JoinTokenId::parse(id)?;
        let ok = !secret.is_empty()
            && secret.len() <= 128
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self {
            id,
            secret: JoinSecret(Zeroizing::new(secret.to_owned())),
        })
    }

    /// The token text `ID.SECRET` (a secret: show once).
    pub fn expose(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}.{}", self.id, self.secret.expose()))
    }
}

/// A stored join token (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTokenRow {
    /// Its id.
    pub id: JoinTokenId,
    /// Lowercase hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The cluster it joins.
    pub cluster: ClusterName,
    /// When it was created.
    pub created_at: UnixTime,
    /// When it stops working.
    pub expires_at: UnixTime,
    /// When it was redeemed, if it was.
    pub used_at: Option<UnixTime>,
}

impl JoinTokenRow {
    /// Whether `secret` is this token's secret (constant-time over the hashes).
    pub fn secret_matches(&self, secret: &JoinSecret) -> bool {
        hashes_match(&self.secret_hash, &secret.hash())
    }
}

/// Constant-time equality of two hex hashes.
pub fn hashes_match(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
