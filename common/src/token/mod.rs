//! JWT tokens: signing keys, JWKS, claims, compact JWS, verification and a verified-token cache.
//!
//! Compact JWS is implemented directly on `ring` (ES256 and RS256 only); `rsa` is used only
//! to generate RSA keys, which `ring` cannot do.
//!
//! - [`alg`]: [`Algorithm`], the two signature algorithms we accept.
//! - [`key`]: [`SigningKey`] (private) and [`KeyId`].
//! - [`jwk`]: [`Jwk`] / [`Jwks`] wire types and [`KeySet`], the parsed public keys.
//! - [`claims`]: [`Claims`] of cluster tokens, [`Audience`], [`HasRegisteredClaims`].
//! - [`jws`]: the compact serialization (`header.payload.signature`) and its strict header.
//! - [`verify`]: [`Verifier`], [`VerifyOptions`] and one [`VerifyError`] variant per reason.
//! - [`cache`]: [`VerifiedCache`], so a hot token's signature is checked once.
//!
//! The hub signs with [`SigningKey::sign`] and serves [`Jwks`]; the agent builds a
//! [`KeySet`] from that JWKS and a [`Verifier`] over it.

pub mod alg;
pub mod cache;
pub mod claims;
pub mod jwk;
pub mod jws;
pub mod key;
pub mod verify;

#[cfg(test)]
mod test_support;

pub use alg::{Algorithm, UnsupportedAlgorithm};
pub use cache::VerifiedCache;
pub use claims::{Audience, Claims, DEFAULT_CLUSTER_TOKEN_LIFETIME, HasRegisteredClaims};
pub use jwk::{Jwk, JwkError, Jwks, KeySet, RejectedJwk, VerifyingKey};
pub use jws::{Header, Segment};
pub use key::{KeyError, KeyId, SigningKey};
pub use verify::{Verifier, VerifyError, VerifyOptions};

/// 128 random bits from the operating system, base64url without padding (22 characters).
///
/// Used for key ids and `jti`. `OsRng` is `rand_core`'s getrandom wrapper (re-exported by
/// `rsa`), which is infallible by signature: it panics only if the OS has no randomness.
pub(crate) fn random_id() -> String {
    use rsa::rand_core::{OsRng, RngCore};

    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    jws::b64_encode(bytes)
}
