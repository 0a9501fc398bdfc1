//! Private signing keys and their ids.

use std::borrow::Borrow;
use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::alg::Algorithm;
use super::jwk::Jwk;
use super::jws;

/// Size of the RSA keys we generate.
pub const RSA_KEY_BITS: usize = 2048;

/// A key id (`kid`): names one key in a JWKS and in a token header.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// Wraps an existing id (for example one read from storage).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// A fresh random id: 128 bits, base64url without padding.
    pub fn generate() -> Self {
        Self(super::random_id())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for KeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<String> for KeyId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for KeyId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

/// Why a key could not be generated, loaded or used to sign.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The RSA key generator failed.
    #[error("RSA key generation failed")]
    RsaGenerate(#[source] rsa::Error),
    /// A generated RSA key could not be encoded as PKCS#8.
    #[error("encoding the RSA key as PKCS#8 failed")]
    RsaEncode(#[source] rsa::pkcs8::Error),
    /// The EC key generator failed (the system RNG failed).
    #[error("EC key generation failed")]
    EcGenerate,
    /// `ring` rejected the PKCS#8 document for this algorithm (wrong key type, curve or size,
    /// or a malformed document).
    #[error("{alg} private key rejected: {reason}")]
    Rejected {
        /// The algorithm the key was loaded for.
        alg: Algorithm,
        /// `ring`'s reason.
        reason: String,
    },
    /// The claims could not be serialized to JSON.
    #[error("serializing claims failed")]
    Serialize(#[source] serde_json::Error),
    /// `ring` failed to produce a signature.
    #[error("signing failed")]
    Sign,
}

/// A private signing key: its id, algorithm and PKCS#8 document.
///
/// `Debug` shows the id and algorithm only. The PKCS#8 bytes are zeroed on drop and leave
/// this type only through [`SigningKey::dangerous_pkcs8_der`].
pub struct SigningKey {
    kid: KeyId,
    alg: Algorithm,
    pair: Pair,
    pkcs8: Zeroizing<Vec<u8>>,
    /// `base64url(header JSON)`: fixed for a key, so computed once.
    encoded_header: String,
    rng: SystemRandom,
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl SigningKey {
    /// Generates a new key with a random [`KeyId`]: P-256 for ES256, 2048-bit RSA for RS256.
    ///
    /// RSA generation is slow (hundreds of milliseconds, seconds in debug builds).
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let kid = KeyId::generate();
        match alg {
            Algorithm::Es256 => {
                let rng = SystemRandom::new();
                let doc =
                    EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                        .map_err(|_| KeyError::EcGenerate)?;
                Self::from_pkcs8(kid, alg, doc.as_ref())
            }
            Algorithm::Rs256 => {
                use rsa::pkcs8::EncodePrivateKey as _;

                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_KEY_BITS)
                    .map_err(KeyError::RsaGenerate)?;
                let doc = key.to_pkcs8_der().map_err(KeyError::RsaEncode)?;
                Self::from_pkcs8(kid, alg, doc.as_bytes())
            }
        }
    }

    /// Loads a key from a PKCS#8 v1/v2 DER document (as stored by the hub).
    pub fn from_pkcs8(kid: KeyId, alg: Algorithm, pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let rejected = |e: ring::error::KeyRejected| KeyError::Rejected {
            alg,
            reason: e.to_string(),
        };
        let pair = match alg {
            Algorithm::Es256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8_der,
                    &rng,
                )
                .map_err(rejected)?,
            ),
            Algorithm::Rs256 => Pair::Rsa(RsaKeyPair::from_pkcs8(pkcs8_der).map_err(rejected)?),
        };
        let encoded_header = jws::encode_header(alg, &kid).map_err(KeyError::Serialize)?;
        Ok(Self {
            kid,
            alg,
            pair,
            pkcs8: Zeroizing::new(pkcs8_der.to_vec()),
            encoded_header,
            rng,
        })
    }

    /// The key id, written into every token header this key signs.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The signature algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public half as a JWK (`use` = `sig`), ready to put in the served [`Jwks`](super::Jwks).
    pub fn public_jwk(&self) -> Jwk {
        match &self.pair {
            Pair::Ec(pair) => {
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let coords = pair.public_key().as_ref().get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                Jwk::ec_p256(self.kid.clone(), x, y)
            }
            Pair::Rsa(pair) => {
                let parts: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                Jwk::rsa(self.kid.clone(), &parts.n, &parts.e)
            }
        }
    }

    /// Signs `claims` as a compact JWS with header `{"alg", "kid", "typ": "JWT"}`.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(KeyError::Serialize)?;
        self.sign_encoded(&self.encoded_header, &jws::b64_encode(payload))
    }

    /// The private key as PKCS#8 DER. Only for the hub to encrypt the key at rest; never log,
    /// serialize or send it.
    pub fn dangerous_pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// `header.payload.signature` over already-encoded parts. Tests use it to craft tokens
    /// with hand-written headers and payloads.
    pub(crate) fn sign_encoded(&self, header: &str, payload: &str) -> Result<String, KeyError> {
        // 344 = base64url length of a 2048-bit RSA signature, the largest we usually make.
        let mut token = String::with_capacity(header.len() + payload.len() + 2 + 344);
        token.push_str(header);
        token.push('.');
        token.push_str(payload);
        let signature = self.sign_bytes(token.as_bytes())?;
        token.push('.');
        token.push_str(&jws::b64_encode(signature));
        Ok(token)
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&self.rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
