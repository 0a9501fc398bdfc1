use super::*;

#[test]
fn names_round_trip_through_every_form() {
    for alg in Algorithm::ALL {
        assert_eq!(alg.to_string().parse::<Algorithm>(), Ok(alg));
        let json = serde_json::to_string(&alg).unwrap();
        assert_eq!(json, format!("\"{alg}\""));
        assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), alg);
    }
    assert_eq!(Algorithm::default(), Algorithm::Es256);
}

#[test]
fn unknown_and_wrong_case_names_are_rejected() {
    for name in ["es256", "HS256", "none", "PS256", "ES384", ""] {
        assert_eq!(
            name.parse::<Algorithm>(),
            Err(UnsupportedAlgorithm),
            "{name}"
        );
    }
}
