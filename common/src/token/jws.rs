//! The JWS compact serialization (RFC 7515 §7.1): `base64url(header).base64url(payload).base64url(signature)`.
//!
//! Base64url is strict: no padding, no whitespace, no non-canonical trailing bits.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::alg::Algorithm;
use super::key::KeyId;
use super::verify::VerifyError;

/// `typ` of every token we sign.
pub const TYP_JWT: &str = "JWT";
/// Header parameter names.
pub(crate) const CRIT: &str = "crit";

/// One of the three parts of a compact JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// The protected header.
    Header,
    /// The payload (claims).
    Payload,
    /// The signature.
    Signature,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Segment::Header => "header",
            Segment::Payload => "payload",
            Segment::Signature => "signature",
        })
    }
}

/// A received JOSE header, parsed strictly: any parameter other than these four (for
/// example `jwk`, `jku`, `x5u`, `b64`) makes the token invalid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Algorithm name as sent; classified by the verifier.
    #[serde(default)]
    pub alg: Option<String>,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
    /// Media type; `JWT` (any case) when present.
    #[serde(default)]
    pub typ: Option<String>,
    /// Critical extensions. We understand none, so its presence rejects the token.
    #[serde(default)]
    pub crit: Option<Value>,
}

/// The header we write.
#[derive(Serialize)]
struct OutHeader<'a> {
    alg: Algorithm,
    kid: &'a KeyId,
    typ: &'static str,
}

/// A token split into its three still-encoded segments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

impl<'a> Parts<'a> {
    /// Splits on `.`; exactly three segments.
    pub(crate) fn split(token: &'a str) -> Result<Self, VerifyError> {
        let mut it = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(VerifyError::WrongSegmentCount);
        };
        let signing_input = token
            .get(..header.len() + 1 + payload.len())
            .ok_or(VerifyError::WrongSegmentCount)?;
        Ok(Self {
            signing_input,
            header,
            payload,
            signature,
        })
    }
}

/// Base64url without padding.
pub(crate) fn b64_encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url decoding; `None` when invalid.
pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes a segment, reporting which one failed.
pub(crate) fn decode_segment(text: &str, segment: Segment) -> Result<Vec<u8>, VerifyError> {
    b64_decode(text).ok_or(VerifyError::InvalidBase64(segment))
}

/// Parses decoded JSON that must be an object.
pub(crate) fn json_object(
    bytes: &[u8],
    segment: Segment,
) -> Result<Map<String, Value>, VerifyError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(VerifyError::NotAnObject(segment)),
        Err(_) => Err(VerifyError::InvalidJson(segment)),
    }
}

/// `base64url({"alg":..,"kid":..,"typ":"JWT"})`.
pub(crate) fn encode_header(alg: Algorithm, kid: &KeyId) -> Result<String, serde_json::Error> {
    let json = serde_json::to_vec(&OutHeader {
        alg,
        kid,
        typ: TYP_JWT,
    })?;
    Ok(b64_encode(json))
}

#[cfg(test)]
mod tests;
