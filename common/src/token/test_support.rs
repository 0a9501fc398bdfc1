//! Shared fixtures for token tests: keys generated once per test binary, a standard verifier,
//! and a way to sign hand-written headers and payloads.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::jws::b64_encode;
use super::*;
use crate::time::UnixTime;

pub(crate) const ISSUER: &str = "https://hub.example";
pub(crate) const AUDIENCE: &str = "cluster-a";
pub(crate) const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

/// Generating keys (RSA above all) is slow in debug builds: each is made once.
pub(crate) fn es256() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::Es256).unwrap())
}

/// A second ES256 key, never in the standard key set.
pub(crate) fn es256_other() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::Es256).unwrap())
}

pub(crate) fn rs256() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::Rs256).unwrap())
}

/// The JWKS of [`es256`] and [`rs256`].
pub(crate) fn jwks() -> Jwks {
    [es256(), rs256()]
        .into_iter()
        .map(SigningKey::public_jwk)
        .collect()
}

/// A verifier trusting [`es256`] and [`rs256`], for [`ISSUER`] and [`AUDIENCE`].
pub(crate) fn verifier() -> Verifier {
    Verifier::new(
        KeySet::from_jwks(&jwks()),
        VerifyOptions::new(ISSUER, AUDIENCE),
    )
}

/// Valid cluster-token claims at [`NOW`].
pub(crate) fn claims() -> Claims {
    Claims::mint(
        ISSUER,
        AUDIENCE,
        "upstream|123",
        "alice",
        vec!["dev".to_owned()],
        Some("sess-1".to_owned()),
        NOW,
        DEFAULT_CLUSTER_TOKEN_LIFETIME,
    )
}

/// [`claims`] as a JSON object, edited by `edit`.
pub(crate) fn payload_with(edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let Value::Object(mut map) = serde_json::to_value(claims()).unwrap() else {
        unreachable!("claims serialize to an object")
    };
    edit(&mut map);
    Value::Object(map).to_string()
}

/// The header `key` would write.
pub(crate) fn header_of(key: &SigningKey) -> String {
    json!({"alg": key.alg(), "kid": key.kid(), "typ": "JWT"}).to_string()
}

/// Signs raw header and payload JSON text with `key`.
pub(crate) fn craft(key: &SigningKey, header: &str, payload: &str) -> String {
    key.sign_encoded(&b64_encode(header), &b64_encode(payload))
        .unwrap()
}

/// A token signed by `key` with its own header and a payload edited by `edit`.
pub(crate) fn signed_with(key: &SigningKey, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    craft(key, &header_of(key), &payload_with(edit))
}
