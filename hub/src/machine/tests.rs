//! The `machine` section's validation, policy matching and the small helpers.

use serde_json::json;
use tether_common::time::UnixTime;

use super::config::MachineConfig;
use super::policy::{MachinePolicies, Workload};
use super::{bounded_reason, unverified_exp};
use crate::config::parse_yaml;
use crate::registry::{ClusterName, ClusterRow};

const EXAMPLE: &str = r#"
token_review:
  audiences: []
  cache_ttl: 30s
  cache_size: 10000
  max_concurrent: 32
trusted_issuers:
  - name: ci
    issuer: https://ci.example.com
    audience: tether
policies:
  - name: argocd
    serviceaccount: { namespace: argocd, name: argocd-application-controller }
    clusters: { names: ["*"] }
    identity: { username: "tether:argocd", groups: [] }
  - name: deploy-from-main
    issuer: ci
    claims: { repository: org/app, ref: refs/heads/main }
    clusters: { labels: { env: dev } }
    identity: { username: "ci:org/app", groups: [deployers] }
"#;

fn parse(text: &str) -> MachineConfig {
    parse_yaml(text).unwrap()
}

fn invalid(text: &str, hub_cluster: bool) -> (String, String) {
    match parse(text).validate(hub_cluster) {
        Ok(()) => panic!("expected an error for:\n{text}"),
        Err(err) => err,
    }
}

fn cluster(name: &str, labels: &[(&str, &str)]) -> ClusterRow {
    ClusterRow {
        name: ClusterName::parse(name).unwrap(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        created_at: UnixTime::from_secs(0),
    }
}

fn ci(claims: serde_json::Value) -> Workload {
    let serde_json::Value::Object(claims) = claims else {
        panic!("claims must be an object");
    };
    Workload::Issuer {
        issuer: "ci".to_owned(),
        subject: "repo:org/app:ref:refs/heads/main".to_owned(),
        claims,
    }
}

#[test]
fn the_documented_section_parses_and_validates() {
    let config = parse(EXAMPLE);
    config.validate(true).unwrap();
    assert_eq!(config.token_review.cache_ttl.as_duration().as_secs(), 30);
    assert_eq!(
        config.trusted_issuers[0].issuer.as_str(),
        "https://ci.example.com"
    );
    assert_eq!(config.policies.len(), 2);
    // Defaults.
    let empty = parse("{}");
    empty.validate(false).unwrap();
    assert_eq!(empty.token_review.cache_size, 10_000);
    assert_eq!(empty.token_review.max_concurrent, 32);
}

#[test]
fn the_hub_example_configures_machine_tokens() {
    let config = crate::config::Config::from_yaml(crate::config::EXAMPLE).unwrap();
    let machine = config.machine.expect("example has a machine section");
    assert_eq!(machine.policies[0].name, "argocd");
    assert!(config.hub_cluster.is_some());
}

#[test]
fn serviceaccount_policies_need_the_hub_cluster() {
    let (field, reason) = invalid(EXAMPLE, false);
    assert_eq!(field, "machine.policies[0].serviceaccount");
    assert!(reason.contains("hub_cluster"), "{reason}");
}

#[test]
fn a_policy_names_exactly_one_workload_kind() {
    let both = EXAMPLE.replace(
        "    serviceaccount: { namespace: argocd, name: argocd-application-controller }\n",
        "    serviceaccount: { namespace: argocd, name: argocd-application-controller }\n    issuer: ci\n",
    );
    let (field, reason) = invalid(&both, true);
    assert_eq!(field, "machine.policies[0]");
    assert!(reason.contains("exactly one"), "{reason}");

    let neither = EXAMPLE.replace(
        "    serviceaccount: { namespace: argocd, name: argocd-application-controller }\n",
        "",
    );
    let (field, _) = invalid(&neither, true);
    assert_eq!(field, "machine.policies[0]");
}

#[test]
fn issuer_names_must_exist_and_claims_are_required() {
    let unknown = EXAMPLE.replace("    issuer: ci\n", "    issuer: gitlab\n");
    let (field, reason) = invalid(&unknown, true);
    assert_eq!(field, "machine.policies[1].issuer");
    assert!(reason.contains("gitlab"), "{reason}");

    let no_claims = EXAMPLE.replace(
        "    claims: { repository: org/app, ref: refs/heads/main }\n",
        "",
    );
    let (field, _) = invalid(&no_claims, true);
    assert_eq!(field, "machine.policies[1].claims");
}

#[test]
fn names_are_unique() {
    let twice = EXAMPLE.replace("name: deploy-from-main", "name: argocd");
    let (field, reason) = invalid(&twice, true);
    assert_eq!(field, "machine.policies[1].name");
    assert!(reason.contains("twice"), "{reason}");

    let issuers = EXAMPLE.replace(
        "trusted_issuers:\n",
        "trusted_issuers:\n  - name: ci\n    issuer: https://other.example.com\n    audience: x\n",
    );
    let (field, _) = invalid(&issuers, true);
    assert_eq!(field, "machine.trusted_issuers[1].name");
}

#[test]
fn identities_selectors_and_serviceaccounts_are_checked() {
    let reserved = EXAMPLE.replace("username: \"tether:argocd\"", "username: \"system:admin\"");
    let (field, reason) = invalid(&reserved, true);
    assert_eq!(field, "machine.policies[0].identity.username");
    assert!(reason.contains("system:"), "{reason}");

    let group = EXAMPLE.replace("groups: [deployers]", "groups: [\"system:masters\"]");
    let (field, _) = invalid(&group, true);
    assert_eq!(field, "machine.policies[1].identity.groups");

    let empty_selector = EXAMPLE.replace("clusters: { labels: { env: dev } }", "clusters: {}");
    let (field, _) = invalid(&empty_selector, true);
    assert_eq!(field, "machine.policies[1].clusters");

    let bad_namespace = EXAMPLE.replace("namespace: argocd", "namespace: Argo_CD");
    let (field, _) = invalid(&bad_namespace, true);
    assert_eq!(field, "machine.policies[0].serviceaccount.namespace");
}

#[test]
fn token_review_and_issuer_settings_are_checked() {
    let (field, _) = invalid(&EXAMPLE.replace("cache_ttl: 30s", "cache_ttl: 0s"), true);
    assert_eq!(field, "machine.token_review.cache_ttl");
    let (field, _) = invalid(&EXAMPLE.replace("cache_ttl: 30s", "cache_ttl: 1h"), true);
    assert_eq!(field, "machine.token_review.cache_ttl");
    let (field, _) = invalid(&EXAMPLE.replace("cache_size: 10000", "cache_size: 0"), true);
    assert_eq!(field, "machine.token_review.cache_size");
    let (field, _) = invalid(
        &EXAMPLE.replace("max_concurrent: 32", "max_concurrent: 0"),
        true,
    );
    assert_eq!(field, "machine.token_review.max_concurrent");

    let http = EXAMPLE.replace("https://ci.example.com", "http://ci.example.com");
    let (field, reason) = invalid(&http, true);
    assert_eq!(field, "machine.trusted_issuers[0].issuer");
    assert!(reason.contains("dangerous_allow_http"), "{reason}");
    let allowed = http.replace(
        "    audience: tether\n",
        "    audience: tether\n    dangerous_allow_http: true\n",
    );
    parse(&allowed).validate(true).unwrap();

    let unknown_field = EXAMPLE.replace("cache_size: 10000", "cache_sise: 10000");
    let err = parse_yaml::<MachineConfig>(&unknown_field).unwrap_err();
    assert!(err.to_string().contains("cache_sise"), "{err}");
}

#[test]
fn serviceaccount_policies_match_namespace_and_name() {
    let config = parse(EXAMPLE);
    let policies = MachinePolicies::from_config(&config.policies);
    let argocd = Workload::from_serviceaccount_username(
        "system:serviceaccount:argocd:argocd-application-controller",
    )
    .unwrap();
    let found = policies.for_workload(&argocd);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name(), "argocd");
    assert_eq!(found[0].identity().username, "tether:argocd");
    let prod = cluster("prod-eu", &[]);
    assert_eq!(
        MachinePolicies::first_for_cluster(&found, &prod).map(|p| p.name()),
        Some("argocd")
    );
    assert_eq!(
        argocd.token_subject(),
        "serviceaccount:argocd/argocd-application-controller"
    );
    assert_eq!(
        argocd.to_string(),
        "serviceaccount argocd/argocd-application-controller"
    );

    for other in [
        "system:serviceaccount:argocd:argocd-server",
        "system:serviceaccount:other:argocd-application-controller",
    ] {
        let workload = Workload::from_serviceaccount_username(other).unwrap();
        assert!(policies.for_workload(&workload).is_empty(), "{other}");
    }
    for not_sa in [
        "alice",
        "system:serviceaccount:",
        "system:serviceaccount:argocd",
        "system:serviceaccount::x",
        "system:serviceaccount:a:b:c",
    ] {
        assert_eq!(
            Workload::from_serviceaccount_username(not_sa),
            None,
            "{not_sa}"
        );
    }
}

#[test]
fn issuer_policies_match_every_claim_exactly() {
    let config = parse(EXAMPLE);
    let policies = MachinePolicies::from_config(&config.policies);
    let main = ci(json!({"repository": "org/app", "ref": "refs/heads/main", "actor": "bob"}));
    let found = policies.for_workload(&main);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name(), "deploy-from-main");
    assert_eq!(main.token_subject(), "ci:repo:org/app:ref:refs/heads/main");

    let dev = cluster("dev-7", &[("env", "dev"), ("region", "eu")]);
    let prod = cluster("prod-7", &[("env", "prod")]);
    assert!(MachinePolicies::first_for_cluster(&found, &dev).is_some());
    assert!(MachinePolicies::first_for_cluster(&found, &prod).is_none());

    for claims in [
        json!({"repository": "org/app", "ref": "refs/heads/feature"}),
        json!({"repository": "org/app"}),
        json!({"repository": "org/app-fork", "ref": "refs/heads/main"}),
        json!({"repository": ["org/app"], "ref": "refs/heads/main"}),
    ] {
        assert!(
            policies.for_workload(&ci(claims.clone())).is_empty(),
            "{claims}"
        );
    }
    let other_issuer = Workload::Issuer {
        issuer: "gitlab".to_owned(),
        subject: "x".to_owned(),
        claims: match json!({"repository": "org/app", "ref": "refs/heads/main"}) {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        },
    };
    assert!(policies.for_workload(&other_issuer).is_empty());
}

#[test]
fn the_first_policy_covering_the_cluster_wins() {
    let text = r#"
policies:
  - name: dev-only
    serviceaccount: { namespace: argocd, name: ctrl }
    clusters: { labels: { env: dev } }
    identity: { username: "argocd:dev" }
  - name: everything
    serviceaccount: { namespace: argocd, name: ctrl }
    clusters: { names: ["*"] }
    identity: { username: "argocd:all" }
"#;
    let config = parse(text);
    config.validate(true).unwrap();
    let policies = MachinePolicies::from_config(&config.policies);
    let workload =
        Workload::from_serviceaccount_username("system:serviceaccount:argocd:ctrl").unwrap();
    let found = policies.for_workload(&workload);
    let pick =
        |c: &ClusterRow| MachinePolicies::first_for_cluster(&found, c).map(|p| p.name().to_owned());
    assert_eq!(
        pick(&cluster("dev-1", &[("env", "dev")])).as_deref(),
        Some("dev-only")
    );
    assert_eq!(pick(&cluster("prod-1", &[])).as_deref(), Some("everything"));
}

#[test]
fn unverified_exp_reads_jwts_only() {
    let token = super::test_support::fake_jwt(&json!({"exp": 1234}));
    assert_eq!(unverified_exp(&token), Some(UnixTime::from_secs(1234)));
    assert_eq!(unverified_exp("opaque-token"), None);
    assert_eq!(unverified_exp("a.b.c"), None);
    let no_exp = super::test_support::fake_jwt(&json!({"sub": "x"}));
    assert_eq!(unverified_exp(&no_exp), None);
    let string_exp = super::test_support::fake_jwt(&json!({"exp": "1234"}));
    assert_eq!(unverified_exp(&string_exp), None);
}

#[test]
fn reasons_are_bounded_and_never_carry_a_jwt() {
    let jwt = super::test_support::fake_jwt(&json!({"sub": "secret-subject", "exp": 1}));
    let reason = bounded_reason(&format!("token {jwt} is bad\nsecond line"));
    assert!(!reason.contains(&jwt), "{reason}");
    assert!(reason.contains("<token>"), "{reason}");
    assert!(!reason.contains('\n'));
    let long = "x ".repeat(500);
    assert!(bounded_reason(&long).chars().count() <= 201);
}
