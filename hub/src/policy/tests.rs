use std::collections::BTreeMap;

use super::{ClusterSelector, KubeIdentity};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn selector_matches_by_name_star_or_all_labels() {
    let by_name = ClusterSelector {
        names: vec!["spoke-1".into()],
        labels: BTreeMap::new(),
    };
    assert!(by_name.matches_parts("spoke-1", &labels(&[])));
    assert!(!by_name.matches_parts("spoke-2", &labels(&[])));
    assert!(ClusterSelector::all().matches_parts("anything", &labels(&[])));

    let by_labels = ClusterSelector {
        names: vec![],
        labels: labels(&[("env", "dev"), ("team", "a")]),
    };
    assert!(by_labels.matches_parts("x", &labels(&[("env", "dev"), ("team", "a"), ("z", "1")])));
    assert!(!by_labels.matches_parts("x", &labels(&[("env", "dev")])));
    assert!(!by_labels.matches_parts("x", &labels(&[("env", "prod"), ("team", "a")])));
    assert!(!ClusterSelector::default().matches_parts("x", &labels(&[])));
}

#[test]
fn selector_validation_names_the_problem() {
    assert!(ClusterSelector::default().validate("r").is_err());
    let bad = ClusterSelector {
        names: vec!["Not_A_Name".into()],
        labels: BTreeMap::new(),
    };
    let err = bad.validate("access.rules[0].clusters").unwrap_err();
    assert!(err.starts_with("access.rules[0].clusters.names: "), "{err}");
    assert!(ClusterSelector::all().validate("r").is_ok());
}

#[test]
fn identity_refuses_reserved_and_empty_names() {
    let ok = KubeIdentity {
        username: "tether:argocd".into(),
        groups: vec!["argocd".into()],
    };
    assert!(ok.validate("p").is_ok());
    for (username, groups) in [
        ("system:admin", vec![]),
        ("", vec![]),
        ("ok", vec!["system:masters".to_owned()]),
        ("ok", vec![" ".to_owned()]),
    ] {
        let identity = KubeIdentity {
            username: username.into(),
            groups,
        };
        assert!(identity.validate("p").is_err(), "{identity:?}");
    }
}
