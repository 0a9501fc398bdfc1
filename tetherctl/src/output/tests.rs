use super::*;

const NOW: UnixTime = UnixTime::from_secs(1_000_000);

fn cluster(name: &str) -> ClusterInfo {
    ClusterInfo {
        name: name.to_owned(),
        state: "pending".to_owned(),
        ..ClusterInfo::default()
    }
}

#[test]
fn relative_times() {
    let ago = |s: i64| relative(UnixTime::from_secs(NOW.as_secs() - s), NOW);
    assert_eq!(ago(0), "just now");
    assert_eq!(ago(42), "42s ago");
    assert_eq!(ago(59), "59s ago");
    assert_eq!(ago(60), "1m ago");
    assert_eq!(ago(3599), "59m ago");
    assert_eq!(ago(7200), "2h ago");
    assert_eq!(ago(3 * 86_400 + 5), "3d ago");
    assert_eq!(ago(-300), "in 5m");
}

#[test]
fn rfc3339_is_utc_whole_seconds() {
    assert_eq!(rfc3339(UnixTime::from_secs(0)), "1970-01-01T00:00:00Z");
    assert_eq!(
        rfc3339(UnixTime::from_secs(1_700_000_000)),
        "2023-11-14T22:13:20Z"
    );
}

#[test]
fn table_is_aligned_sorted_and_has_no_trailing_spaces() {
    let mut beta = cluster("beta-long-name");
    beta.labels = [
        ("team".to_owned(), "infra".to_owned()),
        ("env".to_owned(), "prod".to_owned()),
    ]
    .into();
    let alpha = ClusterInfo {
        name: "alpha".to_owned(),
        state: "joined".to_owned(),
        connected: true,
        last_seen: NOW.as_secs() - 42,
        agent_version: "0.1.0".to_owned(),
        proxy_url: "https://hub/c/alpha".to_owned(),
        ..ClusterInfo::default()
    };
    let text = clusters_table(&[beta, alpha], NOW);
    let expected = "\
NAME             STATE     CONNECTED   LAST SEEN   VERSION   PROXY URL             LABELS
alpha            joined    yes         42s ago     0.1.0     https://hub/c/alpha   -
beta-long-name   pending   no          never       -         -                     env=prod,team=infra
";
    assert_eq!(text, expected);
}

#[test]
fn empty_table_has_a_header() {
    assert_eq!(
        clusters_table(&[], NOW),
        "NAME   STATE   CONNECTED   LAST SEEN   VERSION   PROXY URL   LABELS\n"
    );
}

#[test]
fn json_is_sorted_with_nulls_for_unknowns() {
    let mut a = cluster("a");
    a.connected = true;
    a.last_seen = 1_700_000_000;
    a.created_at = 1_700_000_000;
    a.labels = [("env".to_owned(), "dev".to_owned())].into();
    let text = clusters_json(&[cluster("b"), a]);
    assert!(text.ends_with('\n'));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"clusters": [
            {"name": "a", "state": "pending", "connected": true,
             "last_seen": "2023-11-14T22:13:20Z", "agent_version": null, "proxy_url": null,
             "created_at": "2023-11-14T22:13:20Z", "labels": {"env": "dev"}},
            {"name": "b", "state": "pending", "connected": false,
             "last_seen": null, "agent_version": null, "proxy_url": null,
             "created_at": null, "labels": {}},
        ]})
    );
}

#[test]
fn added_message_says_single_use_and_expiry() {
    let text = cluster_added("alpha", UnixTime::from_secs(NOW.as_secs() + 3600), NOW);
    assert!(text.contains("\"alpha\" added"), "{text}");
    assert!(text.contains("works once"), "{text}");
    assert!(
        text.contains("expires at 1970-01-12T14:46:40Z (in 1h)"),
        "{text}"
    );
    assert!(cluster_added("alpha", UnixTime::EPOCH, NOW).contains("expires soon"));
}
