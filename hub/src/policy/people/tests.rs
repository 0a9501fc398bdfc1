use std::collections::BTreeMap;

use super::{AccessConfig, PeopleAccess};
use crate::config::parse_yaml;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn groups(names: &[&str]) -> Vec<String> {
    names.iter().map(|g| (*g).to_owned()).collect()
}

fn access(yaml: &str) -> AccessConfig {
    let config: AccessConfig = parse_yaml(yaml).unwrap();
    config.validate().unwrap();
    config
}

fn validation_error(yaml: &str) -> (String, String) {
    let config: AccessConfig = parse_yaml(yaml).unwrap();
    config.validate().unwrap_err()
}

#[test]
fn absent_section_allows_everyone_everywhere() {
    let open = PeopleAccess::from_config(None);
    assert!(open.is_open());
    assert!(open.allows_parts(&[], "prod-eu", &labels(&[])));
    assert!(open.allows_parts(&groups(&["x"]), "dev-1", &labels(&[("env", "dev")])));
}

#[test]
fn rules_need_a_common_group_and_a_matching_cluster() {
    let config = access(
        r#"
rules:
  - groups: [k8s-admins, k8s-viewers]
    clusters: { names: ["*"] }
  - groups: [dev-team]
    clusters: { labels: { env: dev } }
  - groups: [eu-ops]
    clusters: { names: [prod-eu] }
"#,
    );
    let policy = PeopleAccess::from_config(Some(&config));
    assert!(!policy.is_open());
    let dev = labels(&[("env", "dev")]);
    let prod = labels(&[("env", "prod")]);
    // (session groups, cluster name, cluster labels, allowed)
    type Case<'a> = (&'a [&'a str], &'a str, &'a BTreeMap<String, String>, bool);
    let table: &[Case] = &[
        (&["k8s-viewers"], "prod-eu", &prod, true),
        (&["other", "k8s-admins"], "anything", &labels(&[]), true),
        (&["dev-team"], "dev-1", &dev, true),
        (&["dev-team"], "prod-eu", &prod, false),
        (&["eu-ops"], "prod-eu", &prod, true),
        (&["eu-ops"], "prod-us", &prod, false),
        // Groups compare exactly: no prefix or case folding.
        (&["K8S-ADMINS"], "prod-eu", &prod, false),
        (&["k8s-admins-2"], "prod-eu", &prod, false),
        (&[], "dev-1", &dev, false),
    ];
    for (session_groups, name, cluster_labels, expected) in table {
        assert_eq!(
            policy.allows_parts(&groups(session_groups), name, cluster_labels),
            *expected,
            "{session_groups:?} -> {name}"
        );
    }
}

#[test]
fn star_group_is_every_signed_in_user() {
    let config = access(
        r#"
rules:
  - groups: ["*"]
    clusters: { labels: { env: dev } }
"#,
    );
    let policy = PeopleAccess::from_config(Some(&config));
    assert!(policy.allows_parts(&[], "dev-1", &labels(&[("env", "dev")])));
    assert!(!policy.allows_parts(&groups(&["a"]), "prod-eu", &labels(&[("env", "prod")])));
}

#[test]
fn present_section_without_rules_denies_everyone() {
    let config = access("rules: []\n");
    let policy = PeopleAccess::from_config(Some(&config));
    assert!(!policy.is_open());
    assert!(!policy.allows_parts(&groups(&["k8s-admins"]), "dev-1", &labels(&[])));
    let config = access("{}\n");
    assert!(!PeopleAccess::from_config(Some(&config)).allows_parts(&[], "x", &labels(&[])));
}

#[test]
fn validation_names_the_field() {
    let cases = [
        (
            "rules: [{ groups: [], clusters: { names: ['*'] } }]",
            "access.rules[0].groups",
            "at least one group",
        ),
        (
            "rules: [{ groups: [a], clusters: { names: ['*'] } }, { groups: [' '], clusters: { names: ['*'] } }]",
            "access.rules[1].groups",
            "must not be empty",
        ),
        (
            "rules: [{ groups: ['system:masters'], clusters: { names: ['*'] } }]",
            "access.rules[0].groups",
            "system:",
        ),
        (
            "rules: [{ groups: [a], clusters: {} }]",
            "access.rules[0].clusters",
            "names or labels is required",
        ),
        (
            "rules: [{ groups: [a], clusters: { names: [Not_A_Name] } }]",
            "access.rules[0].clusters.names",
            "invalid cluster name",
        ),
    ];
    for (yaml, field, reason) in cases {
        let (got_field, got_reason) = validation_error(yaml);
        assert_eq!(got_field, field, "{yaml}");
        assert!(got_reason.contains(reason), "{yaml}: {got_reason}");
    }
}

#[test]
fn unknown_fields_and_missing_parts_are_parse_errors() {
    assert!(
        parse_yaml::<AccessConfig>(
            "rules: [{ groups: [a], clusters: { names: ['*'] }, extra: 1 }]"
        )
        .is_err()
    );
    assert!(parse_yaml::<AccessConfig>("rules: [{ clusters: { names: ['*'] } }]").is_err());
    assert!(parse_yaml::<AccessConfig>("rules: [{ groups: [a] }]").is_err());
    assert!(parse_yaml::<AccessConfig>("rule: []").is_err());
}

#[test]
fn config_carries_and_validates_the_section() {
    use crate::config::{Config, EXAMPLE};
    let config = Config::from_yaml(EXAMPLE).unwrap();
    let access = config.access.as_ref().unwrap();
    assert_eq!(access.rules.len(), 2);
    assert_eq!(
        access.rules[0].groups,
        groups(&["k8s-admins", "k8s-viewers"])
    );
    let policy = PeopleAccess::from_config(config.access.as_ref());
    assert!(policy.allows_parts(&groups(&["k8s-viewers"]), "prod-eu", &labels(&[])));
    assert!(!policy.allows_parts(&groups(&["other"]), "prod-eu", &labels(&[])));
    assert!(policy.allows_parts(&groups(&["other"]), "dev-1", &labels(&[("env", "dev")])));

    let broken = EXAMPLE.replace("groups: [k8s-admins, k8s-viewers]", "groups: []");
    assert_ne!(broken, EXAMPLE);
    let err = Config::from_yaml(&broken).unwrap_err();
    assert_eq!(err.field(), Some("access.rules[0].groups"), "{err}");
    assert!(
        err.to_string().starts_with("access.rules[0].groups: "),
        "{err}"
    );

    let broken = EXAMPLE.replace(
        "      clusters: { names: [\"*\"] }\n    # `*` is every signed-in user.",
        "      clusters: {}\n",
    );
    assert_ne!(broken, EXAMPLE);
    let err = Config::from_yaml(&broken).unwrap_err();
    assert_eq!(err.field(), Some("access.rules[0].clusters"), "{err}");

    let without = EXAMPLE.replace("\naccess:\n", "\naccess_disabled:\n");
    assert!(
        Config::from_yaml(&without).is_err(),
        "unknown fields are refused"
    );
}
