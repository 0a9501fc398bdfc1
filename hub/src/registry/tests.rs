use super::*;

#[test]
fn cluster_names_are_dns_labels() {
    for good in ["a", "prod-eu", "x1", "0abc", &"a".repeat(63)] {
        assert_eq!(ClusterName::parse(good).unwrap().as_str(), good);
    }
    for bad in [
        "",
        "-a",
        "a-",
        "Prod",
        "a_b",
        "a.b",
        "a b",
        "ä",
        &"a".repeat(64),
    ] {
        assert!(ClusterName::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn audience_is_prefixed() {
    let name = ClusterName::parse("prod-eu").unwrap();
    assert_eq!(cluster_audience(&name), "tether:cluster:prod-eu");
    assert_eq!(name.to_string(), "prod-eu");
}

#[test]
fn serde_checks_names() {
    let name: ClusterName = serde_json::from_str("\"dev\"").unwrap();
    assert_eq!(serde_json::to_string(&name).unwrap(), "\"dev\"");
    assert!(serde_json::from_str::<ClusterName>("\"Dev\"").is_err());
}
