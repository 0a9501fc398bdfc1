use serde_json::{Value, json};

use super::*;
use crate::token::SigningKey;
use crate::token::test_support::{es256, jwks, rs256};

fn json_of(jwk: &Jwk) -> Value {
    serde_json::to_value(jwk).unwrap()
}

#[test]
fn ec_jwk_has_p256_coordinates_and_no_private_part() {
    let jwk = es256().public_jwk();
    let json = json_of(&jwk);
    assert_eq!(json["kty"], "EC");
    assert_eq!(json["crv"], "P-256");
    assert_eq!(json["alg"], "ES256");
    assert_eq!(json["use"], "sig");
    assert_eq!(json["kid"], es256().kid().as_str());
    for coord in ["x", "y"] {
        let bytes = jws::b64_decode(json[coord].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len(), 32, "{coord}");
    }
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert!(json.get("d").is_none() && json.get("n").is_none());
}

#[test]
fn rsa_jwk_has_modulus_and_exponent_and_no_private_part() {
    let json = json_of(&rs256().public_jwk());
    assert_eq!(json["kty"], "RSA");
    assert_eq!(json["alg"], "RS256");
    assert_eq!(
        jws::b64_decode(json["n"].as_str().unwrap()).unwrap().len(),
        256
    );
    assert_eq!(json["e"], "AQAB");
    for private in ["d", "p", "q", "dp", "dq", "qi", "x", "y", "crv"] {
        assert!(json.get(private).is_none(), "{private}");
    }
}

#[test]
fn jwks_serializes_as_keys_array_without_private_parts() {
    let text = serde_json::to_string(&jwks()).unwrap();
    assert!(text.starts_with("{\"keys\":["));
    assert!(!text.contains("\"d\""));
    let back: Jwks = serde_json::from_str(&text).unwrap();
    assert_eq!(back, jwks());
}

#[test]
fn private_members_of_an_input_jwk_are_dropped() {
    let mut json = json_of(&es256().public_jwk());
    json["d"] = json!("c2VjcmV0");
    let jwk: Jwk = serde_json::from_value(json).unwrap();
    assert!(!serde_json::to_string(&jwk).unwrap().contains("\"d\""));
}

#[test]
fn key_set_keeps_usable_keys_and_explains_the_rest() {
    let good = es256().public_jwk();
    let edit = |f: &dyn Fn(&mut Jwk)| {
        let mut jwk = good.clone();
        jwk.kid = Some(KeyId::generate());
        f(&mut jwk);
        jwk
    };
    let cases: Vec<(Jwk, JwkError)> = vec![
        (edit(&|j| j.kid = None), JwkError::MissingKid),
        (good.clone(), JwkError::DuplicateKid),
        (
            edit(&|j| j.kty = "oct".into()),
            JwkError::UnsupportedKeyType,
        ),
        (
            edit(&|j| j.alg = Some("HS256".into())),
            JwkError::UnsupportedAlgorithm,
        ),
        (
            edit(&|j| j.alg = Some("RS256".into())),
            JwkError::AlgorithmKeyTypeMismatch,
        ),
        (
            edit(&|j| j.use_ = Some("enc".into())),
            JwkError::NotForSignatures,
        ),
        (
            edit(&|j| j.crv = Some("P-384".into())),
            JwkError::UnsupportedCurve,
        ),
        (edit(&|j| j.crv = None), JwkError::MissingParameter("crv")),
        (edit(&|j| j.x = None), JwkError::MissingParameter("x")),
        (
            edit(&|j| j.y = Some("AAAA".into())),
            JwkError::InvalidParameter("y"),
        ),
        (
            edit(&|j| j.x = Some("not base64!".into())),
            JwkError::InvalidParameter("x"),
        ),
        (
            {
                let mut jwk = rs256().public_jwk();
                jwk.kid = Some(KeyId::generate());
                jwk.n = Some(jws::b64_encode([0xffu8; 128]));
                jwk
            },
            JwkError::RsaKeySize,
        ),
        (
            {
                let mut jwk = rs256().public_jwk();
                jwk.kid = Some(KeyId::generate());
                jwk.e = None;
                jwk
            },
            JwkError::MissingParameter("e"),
        ),
    ];
    let mut input = vec![good.clone()];
    input.extend(cases.iter().map(|(jwk, _)| jwk.clone()));
    let set = KeySet::from_jwks(&Jwks { keys: input });
    assert_eq!(set.len(), 1);
    assert!(set.key(es256().kid().as_str()).is_some());
    let reasons: Vec<JwkError> = set.rejected().iter().map(|r| r.reason.clone()).collect();
    let expected: Vec<JwkError> = cases.into_iter().map(|(_, e)| e).collect();
    assert_eq!(reasons, expected);
}

#[test]
fn alg_is_inferred_from_key_type_when_absent() {
    let mut jwk = rs256().public_jwk();
    jwk.alg = None;
    jwk.use_ = None;
    assert_eq!(
        VerifyingKey::from_jwk(&jwk).unwrap().alg(),
        Algorithm::Rs256
    );
    let mut jwk = es256().public_jwk();
    jwk.alg = None;
    assert_eq!(
        VerifyingKey::from_jwk(&jwk).unwrap().alg(),
        Algorithm::Es256
    );
}

#[test]
fn verifying_key_checks_signatures() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let vk = VerifyingKey::from_jwk(&key.public_jwk()).unwrap();
    let token = key.sign(&json!({"a": 1})).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = jws::b64_decode(sig).unwrap();
    assert!(vk.verify(input.as_bytes(), &sig));
    assert!(!vk.verify(b"other", &sig));
}
