use std::time::Duration;

use serde_json::json;

use super::*;

#[test]
fn mint_sets_times_and_a_unique_jti() {
    let now = UnixTime::from_secs(1000);
    let mint = || {
        Claims::mint(
            "iss",
            "aud",
            "sub",
            "user",
            vec![],
            None,
            now,
            DEFAULT_CLUSTER_TOKEN_LIFETIME,
        )
    };
    let (a, b) = (mint(), mint());
    assert_eq!((a.iat, a.nbf, a.exp), (now, now, UnixTime::from_secs(1060)));
    assert_ne!(a.jti, b.jti);
    assert_eq!(a.jti.len(), 22);
    assert_eq!(DEFAULT_CLUSTER_TOKEN_LIFETIME, Duration::from_secs(60));
}

#[test]
fn serializes_registered_claims_as_integers_and_skips_absent_sid() {
    let claims = Claims::mint(
        "i",
        vec!["a".to_owned()],
        "s",
        "u",
        vec!["g".into()],
        None,
        UnixTime::from_secs(5),
        Duration::from_secs(1),
    );
    let json = serde_json::to_value(&claims).unwrap();
    assert_eq!(json["aud"], json!(["a"]));
    assert_eq!(json["exp"], json!(6));
    assert!(json.get("sid").is_none());
    let with_sid = Claims {
        sid: Some("x".into()),
        ..claims
    };
    assert_eq!(serde_json::to_value(&with_sid).unwrap()["sid"], "x");
}

#[test]
fn audience_is_a_string_or_an_array() {
    let one: Audience = serde_json::from_value(json!("a")).unwrap();
    let many: Audience = serde_json::from_value(json!(["a", "b"])).unwrap();
    assert_eq!(one, Audience::One("a".into()));
    assert!(one.contains("a") && !one.contains("b"));
    assert!(many.contains("b") && !many.contains("c"));
    assert!(!Audience::Many(vec![]).contains(""));
    assert_eq!(many.iter().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(serde_json::to_value(&one).unwrap(), json!("a"));
    assert!(serde_json::from_value::<Audience>(json!(1)).is_err());
}

#[test]
fn claim_names_match_serialized_fields() {
    let claims = Claims::mint(
        "i",
        "a",
        "s",
        "u",
        vec![],
        Some("x".into()),
        UnixTime::EPOCH,
        Duration::ZERO,
    );
    let json = serde_json::to_value(&claims).unwrap();
    for name in [
        name::ISS,
        name::AUD,
        name::SUB,
        name::USERNAME,
        name::GROUPS,
        name::SID,
        name::JTI,
        name::IAT,
        name::NBF,
        name::EXP,
    ] {
        assert!(json.get(name).is_some(), "{name}");
    }
    for required in Claims::REQUIRED_CLAIMS {
        assert!(json.get(required).is_some(), "{required}");
    }
}
