//! JWK / JWKS wire types (RFC 7517) and [`KeySet`], the public keys a verifier trusts.

use std::collections::HashMap;

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::alg::Algorithm;
use super::jws;
use super::key::KeyId;

/// `use` value of a signing key.
pub const USE_SIG: &str = "sig";
/// `crv` value of a P-256 key.
pub const CRV_P256: &str = "P-256";
/// Length of a P-256 coordinate in bytes.
const P256_COORD_LEN: usize = 32;
/// Smallest RSA modulus we accept, in bits (ring's RS256 verifier enforces the same).
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus ring verifies, in bits.
const MAX_RSA_BITS: usize = 8192;

/// One public JSON Web Key. Only public parameters exist here: a private JWK's `d`, `p`,
/// `q`, ... are dropped when parsing and can never be serialized.
///
/// Fields are strings so that a JWKS with a key we cannot use still parses; [`KeySet`]
/// sorts usable keys from unusable ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `"EC"` or `"RSA"`.
    pub kty: String,
    /// Key id; matched against the token header's `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<KeyId>,
    /// Algorithm, `"ES256"` or `"RS256"`; inferred from the key type when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; must be `"sig"` when present.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// EC curve, `"P-256"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, base64url (32 bytes for P-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url (32 bytes for P-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

impl Jwk {
    /// An ES256 signing JWK from raw P-256 coordinates.
    pub fn ec_p256(kid: KeyId, x: &[u8], y: &[u8]) -> Self {
        Self {
            kty: Algorithm::Es256.key_type().to_owned(),
            kid: Some(kid),
            alg: Some(Algorithm::Es256.as_str().to_owned()),
            use_: Some(USE_SIG.to_owned()),
            crv: Some(CRV_P256.to_owned()),
            x: Some(jws::b64_encode(x)),
            y: Some(jws::b64_encode(y)),
            n: None,
            e: None,
        }
    }

    /// An RS256 signing JWK from the big-endian modulus and exponent.
    pub fn rsa(kid: KeyId, n: &[u8], e: &[u8]) -> Self {
        Self {
            kty: Algorithm::Rs256.key_type().to_owned(),
            kid: Some(kid),
            alg: Some(Algorithm::Rs256.as_str().to_owned()),
            use_: Some(USE_SIG.to_owned()),
            crv: None,
            x: None,
            y: None,
            n: Some(jws::b64_encode(n)),
            e: Some(jws::b64_encode(e)),
        }
    }
}

/// A JWK Set: the document the hub serves and agents fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, in no particular order.
    pub keys: Vec<Jwk>,
}

impl FromIterator<Jwk> for Jwks {
    fn from_iter<I: IntoIterator<Item = Jwk>>(iter: I) -> Self {
        Self {
            keys: iter.into_iter().collect(),
        }
    }
}

/// Why a JWK cannot be used to verify tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// The JWK has no `kid`, so no token could select it.
    #[error("JWK has no kid")]
    MissingKid,
    /// Another JWK earlier in the set has the same `kid`; the first one is kept.
    #[error("duplicate kid")]
    DuplicateKid,
    /// `kty` is neither `EC` nor `RSA`.
    #[error("unsupported key type")]
    UnsupportedKeyType,
    /// `alg` is present but is not ES256 or RS256.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// `alg` does not fit `kty` (e.g. ES256 on an RSA key).
    #[error("algorithm does not match key type")]
    AlgorithmKeyTypeMismatch,
    /// `use` is present and is not `sig`.
    #[error("key is not for signatures")]
    NotForSignatures,
    /// An EC key on a curve other than P-256.
    #[error("unsupported curve")]
    UnsupportedCurve,
    /// A parameter the key type needs is absent.
    #[error("missing parameter {0}")]
    MissingParameter(&'static str),
    /// A parameter is not valid base64url, or has the wrong length.
    #[error("invalid parameter {0}")]
    InvalidParameter(&'static str),
    /// An RSA modulus outside 2048..=8192 bits.
    #[error("RSA modulus size not accepted")]
    RsaKeySize,
}

/// A JWK that [`KeySet::from_jwks`] left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedJwk {
    /// The JWK's `kid`, when it had one.
    pub kid: Option<KeyId>,
    /// Why it was left out.
    pub reason: JwkError,
}

/// One parsed public key, ready to check signatures.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    key: PublicKey,
}

#[derive(Debug, Clone)]
enum PublicKey {
    /// Uncompressed SEC1 point.
    Ec(UnparsedPublicKey<Vec<u8>>),
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
}

impl VerifyingKey {
    /// Parses a JWK; the `kid` is not looked at here.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JwkError> {
        if jwk.use_.as_deref().is_some_and(|u| u != USE_SIG) {
            return Err(JwkError::NotForSignatures);
        }
        let alg = match jwk.kty.as_str() {
            "EC" => Algorithm::Es256,
            "RSA" => Algorithm::Rs256,
            _ => return Err(JwkError::UnsupportedKeyType),
        };
        if let Some(declared) = &jwk.alg {
            let declared: Algorithm = declared
                .parse()
                .map_err(|_| JwkError::UnsupportedAlgorithm)?;
            if declared != alg {
                return Err(JwkError::AlgorithmKeyTypeMismatch);
            }
        }
        let key = match alg {
            Algorithm::Es256 => Self::ec_key(jwk)?,
            Algorithm::Rs256 => Self::rsa_key(jwk)?,
        };
        Ok(Self { alg, key })
    }

    /// The only algorithm this key verifies.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Checks `signature` over `message`. `true` only for a valid signature.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            PublicKey::Ec(key) => key.verify(message, signature).is_ok(),
            PublicKey::Rsa(key) => key
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }

    fn ec_key(jwk: &Jwk) -> Result<PublicKey, JwkError> {
        match jwk.crv.as_deref() {
            None => return Err(JwkError::MissingParameter("crv")),
            Some(CRV_P256) => {}
            Some(_) => return Err(JwkError::UnsupportedCurve),
        }
        let x = param(jwk.x.as_deref(), "x")?;
        let y = param(jwk.y.as_deref(), "y")?;
        if x.len() != P256_COORD_LEN {
            return Err(JwkError::InvalidParameter("x"));
        }
        if y.len() != P256_COORD_LEN {
            return Err(JwkError::InvalidParameter("y"));
        }
        let mut point = Vec::with_capacity(1 + 2 * P256_COORD_LEN);
        point.push(0x04);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        Ok(PublicKey::Ec(UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            point,
        )))
    }

    fn rsa_key(jwk: &Jwk) -> Result<PublicKey, JwkError> {
        let n = param(jwk.n.as_deref(), "n")?;
        let e = param(jwk.e.as_deref(), "e")?;
        if n.first() == Some(&0) || n.is_empty() {
            return Err(JwkError::InvalidParameter("n"));
        }
        if e.first() == Some(&0) || e.is_empty() || e.len() > 4 {
            return Err(JwkError::InvalidParameter("e"));
        }
        let bits = n.len() * 8;
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(JwkError::RsaKeySize);
        }
        Ok(PublicKey::Rsa(RsaPublicKeyComponents { n, e }))
    }
}

fn param(value: Option<&str>, name: &'static str) -> Result<Vec<u8>, JwkError> {
    let value = value.ok_or(JwkError::MissingParameter(name))?;
    jws::b64_decode(value).ok_or(JwkError::InvalidParameter(name))
}

/// The public keys a [`Verifier`](super::Verifier) trusts, by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<KeyId, VerifyingKey>,
    rejected: Vec<RejectedJwk>,
}

impl KeySet {
    /// Parses every usable key in `jwks`. Unusable ones are skipped and listed in
    /// [`KeySet::rejected`] (log them); a set with no usable key verifies nothing.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let mut set = Self::default();
        for jwk in &jwks.keys {
            if let Err(reason) = set.insert(jwk) {
                set.rejected.push(RejectedJwk {
                    kid: jwk.kid.clone(),
                    reason,
                });
            }
        }
        set
    }

    /// Adds one key. Fails, leaving the set unchanged, if the JWK is unusable or its `kid`
    /// is already present.
    pub fn insert(&mut self, jwk: &Jwk) -> Result<(), JwkError> {
        let kid = jwk.kid.as_ref().ok_or(JwkError::MissingKid)?;
        if self.keys.contains_key(kid) {
            return Err(JwkError::DuplicateKid);
        }
        let key = VerifyingKey::from_jwk(jwk)?;
        self.keys.insert(kid.clone(), key);
        Ok(())
    }

    /// The key with this id.
    pub fn key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// The ids of usable keys, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// JWKs left out by [`KeySet::from_jwks`], with reasons.
    pub fn rejected(&self) -> &[RejectedJwk] {
        &self.rejected
    }
}

#[cfg(test)]
mod tests;
