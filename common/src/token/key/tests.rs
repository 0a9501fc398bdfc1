use serde_json::Value;

use super::*;
use crate::token::test_support::{es256, rs256};

#[test]
fn debug_shows_kid_and_alg_only() {
    for key in [es256(), rs256()] {
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid().as_str()), "{debug}");
        assert!(debug.contains(&format!("{:?}", key.alg())), "{debug}");
        assert!(
            !debug.contains("pkcs8") && !debug.contains("pair"),
            "{debug}"
        );
        let der = jws::b64_encode(key.dangerous_pkcs8_der());
        assert!(!debug.contains(&der[..16]), "{debug}");
        assert!(debug.len() < 120, "{debug}");
    }
}

#[test]
fn key_ids_are_random_128_bit_base64url() {
    let a = KeyId::generate();
    let b = KeyId::generate();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 22);
    assert_eq!(jws::b64_decode(a.as_str()).map(|b| b.len()), Some(16));
    assert!(
        a.as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_eq!(serde_json::to_string(&KeyId::new("k1")).unwrap(), "\"k1\"");
    assert_eq!(KeyId::from("k1").to_string(), "k1");
}

#[test]
fn pkcs8_round_trips_and_keeps_signing() {
    for key in [es256(), rs256()] {
        let reloaded =
            SigningKey::from_pkcs8(key.kid().clone(), key.alg(), key.dangerous_pkcs8_der())
                .unwrap();
        assert_eq!(reloaded.public_jwk(), key.public_jwk());
        assert_eq!(reloaded.kid(), key.kid());
    }
}

#[test]
fn pkcs8_for_the_wrong_alg_or_garbage_is_rejected() {
    let kid = KeyId::new("k");
    let err = SigningKey::from_pkcs8(kid.clone(), Algorithm::Rs256, es256().dangerous_pkcs8_der());
    assert!(
        matches!(
            err,
            Err(KeyError::Rejected {
                alg: Algorithm::Rs256,
                ..
            })
        ),
        "{err:?}"
    );
    let err = SigningKey::from_pkcs8(kid.clone(), Algorithm::Es256, rs256().dangerous_pkcs8_der());
    assert!(
        matches!(
            err,
            Err(KeyError::Rejected {
                alg: Algorithm::Es256,
                ..
            })
        ),
        "{err:?}"
    );
    let err = SigningKey::from_pkcs8(kid, Algorithm::Es256, b"not a key");
    assert!(matches!(err, Err(KeyError::Rejected { .. })), "{err:?}");
}

#[test]
fn tokens_carry_alg_kid_and_typ() {
    for key in [es256(), rs256()] {
        let token = key.sign(&serde_json::json!({"a": 1})).unwrap();
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&jws::b64_decode(header).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": key.alg().as_str(), "kid": key.kid().as_str(), "typ": "JWT"})
        );
        let signature = jws::b64_decode(token.rsplit('.').next().unwrap()).unwrap();
        let expected = match key.alg() {
            Algorithm::Es256 => 64,
            Algorithm::Rs256 => 256,
        };
        assert_eq!(signature.len(), expected);
    }
}

#[test]
fn shared_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SigningKey>();
    assert_send_sync::<crate::token::Verifier>();
    assert_send_sync::<crate::token::KeySet>();
    assert_send_sync::<crate::token::VerifiedCache>();
}
