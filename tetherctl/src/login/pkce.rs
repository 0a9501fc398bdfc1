//! PKCE (RFC 7636, S256 only) and the random values of a login.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};
use sha2::{Digest, Sha256};
use tether_common::secret::Secret;

use crate::error::{Error, Result};

/// `code_challenge_method`.
pub const METHOD: &str = "S256";

/// `n` random bytes, base64url without padding.
pub fn random_token(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Login("the system random number generator failed".to_owned()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A code verifier and its S256 challenge.
#[derive(Debug)]
pub struct Pkce {
    /// The verifier (43 characters from 256 random bits); sent only to the token endpoint.
    pub verifier: Secret,
    /// `BASE64URL(SHA256(verifier))`; sent in the authorization request.
    pub challenge: String,
}

impl Pkce {
    /// A fresh pair.
    pub fn new() -> Result<Self> {
        Ok(Self::from_verifier(random_token(32)?))
    }

    /// The pair for a given verifier.
    pub fn from_verifier(verifier: String) -> Self {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier: Secret::new(verifier),
            challenge,
        }
    }
}
