use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::token::Jwks;
use crate::token::jws::b64_encode;
use crate::token::test_support::*;

/// A token signed by ES256 with `header` (JSON text) and the standard payload.
fn es_header(header: Value) -> String {
    craft(es256(), &header.to_string(), &payload_with(|_| {}))
}

/// Replaces one segment of a valid token.
fn replace_segment(index: usize, with: &str) -> String {
    let token = es256().sign(&claims()).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = with;
    parts.join(".")
}

fn set(claim: &'static str, value: Value) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |map| {
        map.insert(claim.to_owned(), value);
    }
}

fn remove(claim: &'static str) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |map| {
        map.remove(claim);
    }
}

fn secs(t: UnixTime) -> i64 {
    t.as_secs()
}

fn invalid_type(claim: &str) -> VerifyError {
    VerifyError::InvalidClaimType {
        claim: claim.to_owned(),
    }
}

#[test]
fn bad_tokens_are_rejected_with_their_own_variant() {
    let es_kid = es256().kid().to_string();
    let rs_kid = rs256().kid().to_string();
    let leeway = DEFAULT_LEEWAY.as_secs() as i64;
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"public key bytes");
    let hs256 = {
        let input = format!(
            "{}.{}",
            b64_encode(json!({"alg": "HS256", "kid": es_kid, "typ": "JWT"}).to_string()),
            b64_encode(payload_with(|_| {}))
        );
        let tag = ring::hmac::sign(&hmac_key, input.as_bytes());
        format!("{input}.{}", b64_encode(tag.as_ref()))
    };
    let alg_none = |alg: &str| {
        format!(
            "{}.{}.",
            b64_encode(json!({"alg": alg, "kid": es_kid}).to_string()),
            b64_encode(payload_with(|_| {}))
        )
    };

    let cases: Vec<(&str, String, VerifyError)> = vec![
        // Size, checked before anything else.
        (
            "oversized junk",
            "a".repeat(8193),
            VerifyError::TokenTooLarge {
                len: 8193,
                max: 8192,
            },
        ),
        (
            "oversized but well signed",
            signed_with(es256(), set("groups", json!(vec!["g".repeat(100); 100]))),
            VerifyError::TokenTooLarge { len: 0, max: 8192 },
        ),
        // Compact form.
        ("empty", String::new(), VerifyError::WrongSegmentCount),
        (
            "two segments",
            "a.b".to_owned(),
            VerifyError::WrongSegmentCount,
        ),
        (
            "four segments",
            "a.b.c.d".to_owned(),
            VerifyError::WrongSegmentCount,
        ),
        (
            "header base64",
            replace_segment(0, "!!!"),
            VerifyError::InvalidBase64(Segment::Header),
        ),
        (
            "padded payload",
            replace_segment(1, &format!("{}=", b64_encode("{}"))),
            VerifyError::InvalidBase64(Segment::Payload),
        ),
        (
            "signature base64",
            replace_segment(2, "ab+/"),
            VerifyError::InvalidBase64(Segment::Signature),
        ),
        (
            "header json",
            replace_segment(0, &b64_encode("{\"alg\":")),
            VerifyError::InvalidJson(Segment::Header),
        ),
        (
            "header array",
            replace_segment(0, &b64_encode("[\"ES256\"]")),
            VerifyError::NotAnObject(Segment::Header),
        ),
        (
            "header string",
            replace_segment(0, &b64_encode("\"ES256\"")),
            VerifyError::NotAnObject(Segment::Header),
        ),
        (
            "payload json",
            craft(es256(), &header_of(es256()), "{\"iss\":"),
            VerifyError::InvalidJson(Segment::Payload),
        ),
        (
            "payload array",
            craft(es256(), &header_of(es256()), "[1]"),
            VerifyError::NotAnObject(Segment::Payload),
        ),
        // Header.
        (
            "unknown header parameter (embedded jwk)",
            es_header(json!({"alg": "ES256", "kid": es_kid, "jwk": es256().public_jwk()})),
            VerifyError::InvalidHeader,
        ),
        (
            "alg not a string",
            es_header(json!({"alg": 256, "kid": es_kid})),
            VerifyError::InvalidHeader,
        ),
        (
            "missing alg",
            es_header(json!({"kid": es_kid})),
            VerifyError::MissingAlgorithm,
        ),
        ("alg none", alg_none("none"), VerifyError::AlgNone),
        ("alg None", alg_none("None"), VerifyError::AlgNone),
        ("alg NONE", alg_none("NONE"), VerifyError::AlgNone),
        ("alg nOnE", alg_none("nOnE"), VerifyError::AlgNone),
        (
            "alg HS256 keyed with public bytes",
            hs256,
            VerifyError::HmacAlgorithm,
        ),
        (
            "alg HS384",
            es_header(json!({"alg": "HS384", "kid": es_kid})),
            VerifyError::HmacAlgorithm,
        ),
        (
            "alg HS512",
            es_header(json!({"alg": "HS512", "kid": es_kid})),
            VerifyError::HmacAlgorithm,
        ),
        (
            "alg hs256",
            es_header(json!({"alg": "hs256", "kid": es_kid})),
            VerifyError::HmacAlgorithm,
        ),
        (
            "alg PS256",
            es_header(json!({"alg": "PS256", "kid": es_kid})),
            VerifyError::UnsupportedAlgorithm,
        ),
        (
            "alg ES384",
            es_header(json!({"alg": "ES384", "kid": es_kid})),
            VerifyError::UnsupportedAlgorithm,
        ),
        (
            "alg es256",
            es_header(json!({"alg": "es256", "kid": es_kid})),
            VerifyError::UnsupportedAlgorithm,
        ),
        (
            "alg empty",
            es_header(json!({"alg": "", "kid": es_kid})),
            VerifyError::UnsupportedAlgorithm,
        ),
        (
            "crit",
            es_header(json!({"alg": "ES256", "kid": es_kid, "crit": ["exp"]})),
            VerifyError::CritHeader,
        ),
        (
            "crit null",
            es_header(json!({"alg": "ES256", "kid": es_kid, "crit": null})),
            VerifyError::CritHeader,
        ),
        (
            "typ at+jwt",
            es_header(json!({"alg": "ES256", "kid": es_kid, "typ": "at+jwt"})),
            VerifyError::InvalidType,
        ),
        (
            "missing kid",
            es_header(json!({"alg": "ES256", "typ": "JWT"})),
            VerifyError::MissingKid,
        ),
        (
            "kid not in key set",
            es256_other().sign(&claims()).unwrap(),
            VerifyError::UnknownKid,
        ),
        (
            "RS256 token whose header says ES256",
            craft(
                rs256(),
                &json!({"alg": "ES256", "kid": rs_kid}).to_string(),
                &payload_with(|_| {}),
            ),
            VerifyError::AlgorithmMismatch {
                header: Algorithm::Es256,
                key: Algorithm::Rs256,
            },
        ),
        (
            "ES256 token whose header says RS256",
            craft(
                es256(),
                &json!({"alg": "RS256", "kid": es_kid}).to_string(),
                &payload_with(|_| {}),
            ),
            VerifyError::AlgorithmMismatch {
                header: Algorithm::Rs256,
                key: Algorithm::Es256,
            },
        ),
        // Signature.
        (
            "signed by key A, kid of key B",
            craft(es256_other(), &header_of(es256()), &payload_with(|_| {})),
            VerifyError::BadSignature,
        ),
        (
            "payload swapped after signing",
            replace_segment(1, &b64_encode(payload_with(set("username", json!("root"))))),
            VerifyError::BadSignature,
        ),
        (
            "empty signature",
            replace_segment(2, ""),
            VerifyError::BadSignature,
        ),
        (
            "short signature",
            replace_segment(2, &b64_encode([7u8; 63])),
            VerifyError::BadSignature,
        ),
        // Required claims.
        (
            "missing iss",
            signed_with(es256(), remove("iss")),
            VerifyError::MissingClaim("iss"),
        ),
        (
            "missing aud",
            signed_with(es256(), remove("aud")),
            VerifyError::MissingClaim("aud"),
        ),
        (
            "missing exp",
            signed_with(es256(), remove("exp")),
            VerifyError::MissingClaim("exp"),
        ),
        (
            "missing nbf",
            signed_with(es256(), remove("nbf")),
            VerifyError::MissingClaim("nbf"),
        ),
        (
            "missing iat",
            signed_with(es256(), remove("iat")),
            VerifyError::MissingClaim("iat"),
        ),
        (
            "missing sub",
            signed_with(es256(), remove("sub")),
            VerifyError::MissingClaim("sub"),
        ),
        (
            "missing username",
            signed_with(es256(), remove("username")),
            VerifyError::MissingClaim("username"),
        ),
        (
            "missing groups",
            signed_with(es256(), remove("groups")),
            VerifyError::MissingClaim("groups"),
        ),
        (
            "missing jti",
            signed_with(es256(), remove("jti")),
            VerifyError::MissingClaim("jti"),
        ),
        // Claim types.
        (
            "exp string",
            signed_with(es256(), set("exp", json!("123"))),
            invalid_type("exp"),
        ),
        (
            "exp fraction",
            signed_with(es256(), set("exp", json!(secs(NOW) as f64 + 60.5))),
            invalid_type("exp"),
        ),
        (
            "exp float",
            signed_with(es256(), set("exp", json!(secs(NOW) as f64 + 60.0))),
            invalid_type("exp"),
        ),
        (
            "exp bool",
            signed_with(es256(), set("exp", json!(true))),
            invalid_type("exp"),
        ),
        (
            "exp null",
            signed_with(es256(), set("exp", Value::Null)),
            invalid_type("exp"),
        ),
        (
            "exp beyond i64",
            signed_with(es256(), set("exp", json!(u64::MAX))),
            invalid_type("exp"),
        ),
        (
            "nbf string",
            signed_with(es256(), set("nbf", json!("0"))),
            invalid_type("nbf"),
        ),
        (
            "nbf bool",
            signed_with(es256(), set("nbf", json!(false))),
            invalid_type("nbf"),
        ),
        (
            "iat fraction",
            signed_with(es256(), set("iat", json!(1.5))),
            invalid_type("iat"),
        ),
        (
            "iat string",
            signed_with(es256(), set("iat", json!("1"))),
            invalid_type("iat"),
        ),
        (
            "iss number",
            signed_with(es256(), set("iss", json!(1))),
            invalid_type("iss"),
        ),
        (
            "aud number",
            signed_with(es256(), set("aud", json!(1))),
            invalid_type("aud"),
        ),
        (
            "aud array of numbers",
            signed_with(es256(), set("aud", json!([1]))),
            invalid_type("aud"),
        ),
        (
            "groups string",
            signed_with(es256(), set("groups", json!("dev"))),
            invalid_type("groups"),
        ),
        (
            "sub number",
            signed_with(es256(), set("sub", json!(5))),
            invalid_type("sub"),
        ),
        (
            "sid number",
            signed_with(es256(), set("sid", json!(5))),
            invalid_type("sid"),
        ),
        // Claim values.
        (
            "wrong iss",
            signed_with(es256(), set("iss", json!("https://evil.example"))),
            VerifyError::WrongIssuer,
        ),
        (
            "empty iss",
            signed_with(es256(), set("iss", json!(""))),
            VerifyError::WrongIssuer,
        ),
        (
            "wrong aud",
            signed_with(es256(), set("aud", json!("cluster-b"))),
            VerifyError::WrongAudience,
        ),
        (
            "aud array without us",
            signed_with(es256(), set("aud", json!(["b", "c"]))),
            VerifyError::WrongAudience,
        ),
        (
            "aud empty array",
            signed_with(es256(), set("aud", json!([]))),
            VerifyError::WrongAudience,
        ),
        (
            "aud prefix",
            signed_with(es256(), set("aud", json!("cluster-a2"))),
            VerifyError::WrongAudience,
        ),
        (
            "exp = now - leeway",
            signed_with(es256(), set("exp", json!(secs(NOW) - leeway))),
            VerifyError::Expired,
        ),
        (
            "exp long ago",
            signed_with(es256(), set("exp", json!(0))),
            VerifyError::Expired,
        ),
        (
            "nbf = now + leeway + 1",
            signed_with(es256(), set("nbf", json!(secs(NOW) + leeway + 1))),
            VerifyError::NotYetValid,
        ),
        (
            "iat = now + leeway + 1",
            signed_with(es256(), set("iat", json!(secs(NOW) + leeway + 1))),
            VerifyError::IssuedInFuture,
        ),
    ];

    let verifier = verifier();
    let mut failures = Vec::new();
    for (name, token, expected) in cases {
        let got = verifier.verify(&token, NOW);
        let expected = match expected {
            VerifyError::TokenTooLarge { max, .. } => VerifyError::TokenTooLarge {
                len: token.len(),
                max,
            },
            other => other,
        };
        match &got {
            Err(err) if *err == expected => {
                let message = err.to_string();
                assert!(
                    token.len() < 8 || !message.contains(token.as_str()),
                    "{name}: token in message"
                );
                if let Some(payload) = token.split('.').nth(1).filter(|p| p.len() > 8) {
                    assert!(!message.contains(payload), "{name}: payload in message");
                }
            }
            _ => failures.push(format!("{name}: expected {expected:?}, got {got:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The longest padded token no longer than `limit` (base64 rounds, so within 3 bytes of it).
fn largest_token_within(limit: usize) -> String {
    let padded = |n: usize| signed_with(es256(), set("pad", json!("x".repeat(n))));
    let mut n = (limit - es256().sign(&claims()).unwrap().len()) * 3 / 4;
    while padded(n + 1).len() <= limit {
        n += 1;
    }
    while padded(n).len() > limit {
        n -= 1;
    }
    let token = padded(n);
    assert!(
        token.len() + 3 >= limit && token.len() <= limit,
        "{}",
        token.len()
    );
    token
}

#[test]
fn good_tokens_are_accepted() {
    let leeway = DEFAULT_LEEWAY.as_secs() as i64;
    let es_kid = es256().kid().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("ES256 round trip", es256().sign(&claims()).unwrap()),
        ("RS256 round trip", rs256().sign(&claims()).unwrap()),
        (
            "aud string",
            signed_with(es256(), set("aud", json!(AUDIENCE))),
        ),
        (
            "aud array",
            signed_with(es256(), set("aud", json!(["other", AUDIENCE]))),
        ),
        (
            "RS256 aud array",
            signed_with(rs256(), set("aud", json!([AUDIENCE]))),
        ),
        (
            "exp = now - leeway + 1",
            signed_with(es256(), set("exp", json!(secs(NOW) - leeway + 1))),
        ),
        (
            "nbf = now + leeway",
            signed_with(es256(), set("nbf", json!(secs(NOW) + leeway))),
        ),
        (
            "iat = now + leeway",
            signed_with(es256(), set("iat", json!(secs(NOW) + leeway))),
        ),
        ("no sid", signed_with(es256(), remove("sid"))),
        (
            "extra claims ignored",
            signed_with(es256(), set("email", json!("a@example.com"))),
        ),
        (
            "typ lower case",
            es_header(json!({"alg": "ES256", "kid": es_kid, "typ": "jwt"})),
        ),
        ("no typ", es_header(json!({"alg": "ES256", "kid": es_kid}))),
        (
            "at the size limit",
            largest_token_within(DEFAULT_MAX_TOKEN_BYTES),
        ),
    ];
    let verifier = verifier();
    for (name, token) in cases {
        let claims = verifier
            .verify(&token, NOW)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(claims.username, "alice", "{name}");
        assert!(claims.aud.contains(AUDIENCE), "{name}");
    }
}

#[test]
fn round_trip_preserves_every_claim() {
    let verifier = verifier();
    for key in [es256(), rs256()] {
        let minted = claims();
        let token = key.sign(&minted).unwrap();
        assert_eq!(
            verifier.verify(&token, NOW).unwrap(),
            minted,
            "{:?}",
            key.alg()
        );
    }
}

#[test]
fn leeway_and_size_limit_come_from_the_options() {
    let token = es256().sign(&claims()).unwrap();
    let exp = claims().exp;
    let mut opts = VerifyOptions::new(ISSUER, AUDIENCE);
    opts.leeway = Duration::ZERO;
    let strict = Verifier::new(KeySet::from_jwks(&jwks()), opts.clone());
    assert!(
        strict
            .verify(&token, exp.saturating_sub(Duration::from_secs(1)))
            .is_ok()
    );
    assert_eq!(strict.verify(&token, exp), Err(VerifyError::Expired));

    opts.max_token_bytes = token.len() - 1;
    let small = Verifier::new(KeySet::from_jwks(&jwks()), opts);
    assert_eq!(
        small.verify(&token, NOW),
        Err(VerifyError::TokenTooLarge {
            len: token.len(),
            max: token.len() - 1
        })
    );
}

#[test]
fn empty_expected_issuer_or_audience_matches_nothing() {
    let token = signed_with(es256(), |map| {
        map.insert("iss".into(), json!(""));
        map.insert("aud".into(), json!(""));
    });
    let verifier = Verifier::new(KeySet::from_jwks(&jwks()), VerifyOptions::new("", AUDIENCE));
    assert_eq!(verifier.verify(&token, NOW), Err(VerifyError::WrongIssuer));
    let token = signed_with(es256(), set("aud", json!("")));
    let verifier = Verifier::new(KeySet::from_jwks(&jwks()), VerifyOptions::new(ISSUER, ""));
    assert_eq!(
        verifier.verify(&token, NOW),
        Err(VerifyError::WrongAudience)
    );
}

#[test]
fn empty_key_set_verifies_nothing() {
    let verifier = Verifier::new(
        KeySet::from_jwks(&Jwks::default()),
        VerifyOptions::new(ISSUER, AUDIENCE),
    );
    let token = es256().sign(&claims()).unwrap();
    assert_eq!(verifier.verify(&token, NOW), Err(VerifyError::UnknownKid));
}

#[test]
fn verify_as_reads_other_claim_types() {
    #[derive(Debug, Deserialize)]
    struct Machine {
        sub: String,
        policy: String,
    }
    impl HasRegisteredClaims for Machine {
        const REQUIRED_CLAIMS: &'static [&'static str] = &["sub", "policy"];
    }

    let verifier = verifier();
    let token = signed_with(rs256(), |map| {
        map.insert("policy".into(), json!("ci"));
        map.remove("nbf");
        map.remove("iat");
    });
    let machine: Machine = verifier.verify_as(&token, NOW).unwrap();
    assert_eq!(
        (machine.sub.as_str(), machine.policy.as_str()),
        ("upstream|123", "ci")
    );

    let token = signed_with(rs256(), |_| {});
    assert_eq!(
        verifier.verify_as::<Machine>(&token, NOW).unwrap_err(),
        VerifyError::MissingClaim("policy")
    );
}

#[test]
fn verify_cached_checks_once_then_serves_from_cache() {
    let verifier = verifier();
    let cache = VerifiedCache::new(4);
    let token = es256().sign(&claims()).unwrap();
    let first = verifier.verify_cached(&cache, &token, NOW).unwrap();
    assert_eq!(cache.len(), 1);
    let second = verifier.verify_cached(&cache, &token, NOW).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    // A failure is not cached.
    let bad = signed_with(es256(), set("aud", json!("nope")));
    assert_eq!(
        verifier.verify_cached(&cache, &bad, NOW).unwrap_err(),
        VerifyError::WrongAudience
    );
    assert_eq!(cache.len(), 1);
    // Oversized tokens are rejected before hashing.
    let huge = "a".repeat(9000);
    assert!(matches!(
        verifier.verify_cached(&cache, &huge, NOW),
        Err(VerifyError::TokenTooLarge { .. })
    ));
}

#[test]
fn duplicate_kid_keeps_the_first_key_and_its_alg() {
    // An RS256 JWK must not verify an ES256-signed token even if it were given the same kid.
    let rs = rs256().public_jwk();
    let mut es = es256().public_jwk();
    es.kid = rs.kid.clone();
    let keys = KeySet::from_jwks(&Jwks { keys: vec![rs, es] });
    assert_eq!(keys.len(), 1);
    let token = craft(
        es256(),
        &json!({"alg": "ES256", "kid": rs256().kid()}).to_string(),
        &payload_with(|_| {}),
    );
    let verifier = Verifier::new(keys, VerifyOptions::new(ISSUER, AUDIENCE));
    assert_eq!(
        verifier.verify(&token, NOW),
        Err(VerifyError::AlgorithmMismatch {
            header: Algorithm::Es256,
            key: Algorithm::Rs256
        })
    );
}
