//! Random opaque values, their stored hashes, and PKCE (RFC 7636).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom as _, SystemRandom};
use tether_common::secret::{Secret, ct_eq};

use super::SessionError;

/// Bytes of entropy in refresh tokens, codes and login ids (256 bits).
pub const TOKEN_BYTES: usize = 32;
/// Bytes of entropy in a session id (128 bits).
pub const SESSION_ID_BYTES: usize = 16;

/// `n` random bytes as unpadded base64url.
pub(crate) fn random_b64(rng: &SystemRandom, n: usize) -> Result<String, SessionError> {
    let mut bytes = vec![0u8; n];
    rng.fill(&mut bytes).map_err(|_| SessionError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A fresh 256-bit opaque token (43 base64url characters).
pub(crate) fn random_token(rng: &SystemRandom) -> Result<Secret, SessionError> {
    random_b64(rng, TOKEN_BYTES).map(Secret::new)
}

/// Lowercase hex SHA-256 of `value`: what the store keeps instead of a token.
pub fn sha256_hex(value: &[u8]) -> String {
    hex(digest(&SHA256, value).as_ref())
}

/// The stored form of a token.
pub fn token_hash(token: &Secret) -> String {
    sha256_hex(token.expose().as_bytes())
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// An S256 `code_challenge`: base64url (no padding) of a SHA-256, i.e. 43 characters.
pub fn valid_code_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// The S256 challenge of `verifier`: `BASE64URL(SHA256(verifier))`.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// RFC 7636 §4.6 with S256, compared in constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    ct_eq(s256_challenge(verifier).as_bytes(), challenge.as_bytes())
}
