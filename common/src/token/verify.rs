//! Token verification: [`Verifier`] checks structure, header, signature and claims, and says
//! exactly what was wrong with a [`VerifyError`]. Errors never contain the token.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::alg::Algorithm;
use super::cache::VerifiedCache;
use super::claims::{Audience, Claims, HasRegisteredClaims, name};
use super::jwk::KeySet;
use super::jws::{self, CRIT, Header, Parts, Segment, TYP_JWT};
use crate::time::UnixTime;

/// Default clock skew tolerated on `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default largest token accepted, in bytes (checked before any decoding).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;

/// What a [`Verifier`] expects of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Required `iss`, compared exactly.
    pub issuer: String,
    /// Our audience: must be `aud` or one element of it.
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Longer tokens are rejected before any decoding.
    pub max_token_bytes: usize,
}

impl VerifyOptions {
    /// Options with the default leeway (30 s) and size limit (8 KiB).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Why a token was rejected. One variant per reason; none carries token content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is longer than [`VerifyOptions::max_token_bytes`]; nothing was decoded.
    #[error("token too large ({len} bytes, limit {max})")]
    TokenTooLarge {
        /// Length of the token.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The token is not three `.`-separated segments.
    #[error("token is not a compact JWS (need three segments)")]
    WrongSegmentCount,
    /// A segment is not strict base64url.
    #[error("token {0} is not valid base64url")]
    InvalidBase64(Segment),
    /// A segment is not valid JSON.
    #[error("token {0} is not valid JSON")]
    InvalidJson(Segment),
    /// A segment is JSON but not an object.
    #[error("token {0} is not a JSON object")]
    NotAnObject(Segment),
    /// The header has an unknown parameter or a parameter of the wrong type.
    #[error("token header has an unknown or mistyped parameter")]
    InvalidHeader,
    /// The header has no `alg`.
    #[error("token header has no alg")]
    MissingAlgorithm,
    /// `alg` is `none` (in any case): an unsigned token.
    #[error("unsigned token (alg none)")]
    AlgNone,
    /// `alg` is an HMAC algorithm (HS256/HS384/HS512): never accepted with public keys.
    #[error("HMAC algorithm not accepted")]
    HmacAlgorithm,
    /// `alg` is neither ES256 nor RS256.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The header has `crit`; we understand no extensions.
    #[error("token header has crit")]
    CritHeader,
    /// `typ` is present and is not `JWT`.
    #[error("token typ is not JWT")]
    InvalidType,
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// No trusted key has the header's `kid` (unknown key, or rotated out).
    #[error("unknown key id")]
    UnknownKid,
    /// The header's `alg` is not the algorithm of the key named by `kid`.
    #[error("token alg {header} does not match key alg {key}")]
    AlgorithmMismatch {
        /// `alg` in the header.
        header: Algorithm,
        /// The key's algorithm.
        key: Algorithm,
    },
    /// The signature does not verify with the key named by `kid`.
    #[error("bad signature")]
    BadSignature,
    /// A required claim is absent.
    #[error("missing claim {0}")]
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type (e.g. `exp` as a string or a fraction).
    #[error("claim {claim} has the wrong type")]
    InvalidClaimType {
        /// Claim name (a path, for nested claims).
        claim: String,
    },
    /// The claims do not fit the expected claims type for another reason.
    #[error("claims do not have the expected shape")]
    InvalidClaims,
    /// `iss` is not our issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// Our audience is not in `aud`.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` is at or before `now - leeway`.
    #[error("token expired")]
    Expired,
    /// `nbf` is after `now + leeway`.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is after `now + leeway`.
    #[error("token issued in the future")]
    IssuedInFuture,
}

/// Checks tokens against a [`KeySet`] and [`VerifyOptions`]. Cheap to share (`Arc`); build a
/// new one when the JWKS changes.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: KeySet,
    opts: VerifyOptions,
}

impl Verifier {
    /// A verifier trusting `keys`.
    pub fn new(keys: KeySet, opts: VerifyOptions) -> Self {
        Self { keys, opts }
    }

    /// The trusted keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The options.
    pub fn options(&self) -> &VerifyOptions {
        &self.opts
    }

    /// Verifies a cluster token and returns its [`Claims`].
    pub fn verify(&self, token: &str, now: UnixTime) -> Result<Claims, VerifyError> {
        self.verify_as(token, now)
    }

    /// Like [`Verifier::verify`], but answers from `cache` when this exact token was verified
    /// before and has not expired, and caches a newly verified token.
    ///
    /// The cache must belong to this verifier's keys and options: clear it when they change.
    pub fn verify_cached(
        &self,
        cache: &VerifiedCache,
        token: &str,
        now: UnixTime,
    ) -> Result<Arc<Claims>, VerifyError> {
        self.check_size(token)?;
        if let Some(claims) = cache.get(token, now) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verify(token, now)?);
        cache.insert(token, claims.clone(), now);
        Ok(claims)
    }

    /// Verifies a token and deserializes its claims as `C`.
    pub fn verify_as<C>(&self, token: &str, now: UnixTime) -> Result<C, VerifyError>
    where
        C: DeserializeOwned + HasRegisteredClaims,
    {
        self.check_size(token)?;
        let parts = Parts::split(token)?;
        let header_bytes = jws::decode_segment(parts.header, Segment::Header)?;
        let payload_bytes = jws::decode_segment(parts.payload, Segment::Payload)?;
        let signature = jws::decode_segment(parts.signature, Segment::Signature)?;

        let header = jws::json_object(&header_bytes, Segment::Header)?;
        self.check_signature(header, &parts, &signature)?;

        // Only authenticated bytes reach the claims parser.
        let payload = jws::json_object(&payload_bytes, Segment::Payload)?;
        check_present(&payload, C::REQUIRED_CLAIMS)?;
        self.check_registered(&payload, now)?;
        decode_claims(&Value::Object(payload))
    }

    fn check_size(&self, token: &str) -> Result<(), VerifyError> {
        if token.len() > self.opts.max_token_bytes {
            return Err(VerifyError::TokenTooLarge {
                len: token.len(),
                max: self.opts.max_token_bytes,
            });
        }
        Ok(())
    }

    /// Header checks in order (alg, crit, typ, kid, key alg), then the signature.
    fn check_signature(
        &self,
        header_json: Map<String, Value>,
        parts: &Parts<'_>,
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        let has_crit = header_json.contains_key(CRIT);
        let header: Header = serde_json::from_value(Value::Object(header_json))
            .map_err(|_| VerifyError::InvalidHeader)?;
        let alg = classify_alg(header.alg.as_deref())?;
        if has_crit {
            return Err(VerifyError::CritHeader);
        }
        if header
            .typ
            .as_deref()
            .is_some_and(|typ| !typ.eq_ignore_ascii_case(TYP_JWT))
        {
            return Err(VerifyError::InvalidType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::MissingKid)?;
        let key = self.keys.key(kid).ok_or(VerifyError::UnknownKid)?;
        if key.alg() != alg {
            return Err(VerifyError::AlgorithmMismatch {
                header: alg,
                key: key.alg(),
            });
        }
        if !key.verify(parts.signing_input.as_bytes(), signature) {
            return Err(VerifyError::BadSignature);
        }
        Ok(())
    }

    /// Types of `iss`, `aud`, `exp`, `nbf`, `iat`, then their values.
    fn check_registered(
        &self,
        claims: &Map<String, Value>,
        now: UnixTime,
    ) -> Result<(), VerifyError> {
        let iss = claims
            .get(name::ISS)
            .and_then(Value::as_str)
            .ok_or_else(|| wrong_type(name::ISS))?;
        let aud = claims
            .get(name::AUD)
            .ok_or(VerifyError::MissingClaim(name::AUD))?;
        let aud = Audience::deserialize(aud).map_err(|_| wrong_type(name::AUD))?;
        let exp = time_claim(claims, name::EXP)?.ok_or(VerifyError::MissingClaim(name::EXP))?;
        let nbf = time_claim(claims, name::NBF)?;
        let iat = time_claim(claims, name::IAT)?;

        if iss.is_empty() || iss != self.opts.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if self.opts.audience.is_empty() || !aud.contains(&self.opts.audience) {
            return Err(VerifyError::WrongAudience);
        }
        let leeway = self.opts.leeway;
        if exp <= now.saturating_sub(leeway) {
            return Err(VerifyError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(VerifyError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(VerifyError::IssuedInFuture);
        }
        Ok(())
    }
}

/// Maps the header's `alg` to an [`Algorithm`], with a distinct error for each bad kind.
fn classify_alg(alg: Option<&str>) -> Result<Algorithm, VerifyError> {
    let alg = alg.ok_or(VerifyError::MissingAlgorithm)?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(VerifyError::AlgNone);
    }
    if alg.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) {
        return Err(VerifyError::HmacAlgorithm);
    }
    alg.parse().map_err(|_| VerifyError::UnsupportedAlgorithm)
}

/// `iss`, `aud`, `exp` and the claim type's own required claims must be present.
fn check_present(
    claims: &Map<String, Value>,
    required: &'static [&'static str],
) -> Result<(), VerifyError> {
    [name::ISS, name::AUD, name::EXP]
        .iter()
        .chain(required)
        .find(|claim| !claims.contains_key(**claim))
        .map_or(Ok(()), |claim| Err(VerifyError::MissingClaim(claim)))
}

/// A NumericDate claim: absent, or a JSON integer (not a string, float or bool).
fn time_claim(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<UnixTime>, VerifyError> {
    claims
        .get(claim)
        .map(|v| {
            v.as_i64()
                .map(UnixTime::from_secs)
                .ok_or_else(|| wrong_type(claim))
        })
        .transpose()
}

fn wrong_type(claim: &str) -> VerifyError {
    VerifyError::InvalidClaimType {
        claim: claim.to_owned(),
    }
}

/// Deserializes the claims type, naming the claim at fault.
fn decode_claims<C: DeserializeOwned>(payload: &Value) -> Result<C, VerifyError> {
    serde_path_to_error::deserialize(payload).map_err(|err| {
        let path = err.path().to_string();
        if path.is_empty() || path == "." {
            VerifyError::InvalidClaims
        } else {
            VerifyError::InvalidClaimType { claim: path }
        }
    })
}

#[cfg(test)]
mod tests;
