use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;

use base64::Engine as _;
use serde_json::json;

use super::*;

const HUB: &str = "https://hub.example.com";

const FOREIGN: &str = r#"apiVersion: v1
kind: Config
preferences: {}
x-unknown-top: {a: 1}
clusters:
- name: kind-dev
  cluster:
    server: https://127.0.0.1:6443
    x-unknown: keep
contexts:
- name: kind-dev
  context: {cluster: kind-dev, user: kind-dev}
users:
- name: kind-dev
  user:
    token: abc
"#;

fn hub() -> HubUrl {
    HubUrl::parse(HUB).unwrap()
}

fn plugin() -> Plugin {
    Plugin {
        command: PathBuf::from("/opt/bin/tetherctl"),
        hub: hub(),
        hub_ca: HubCa::File {
            path: PathBuf::from("/etc/tether/ca.pem"),
            pem: Vec::new(),
        },
        cache_dir: None,
    }
}

fn offered(names: &[&str]) -> Vec<OfferedCluster> {
    names
        .iter()
        .map(|n| OfferedCluster {
            name: (*n).to_owned(),
            labels: Default::default(),
            proxy_url: format!("https://proxy.example.com/{n}"),
            proxy_ca_pem: "-----BEGIN CERTIFICATE-----\nQQ==\n-----END CERTIFICATE-----\n"
                .to_owned(),
        })
        .collect()
}

fn names(entries: &[tether_common::kube::NamedEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn merge_adds_entries_and_keeps_foreign_ones() {
    let mut config = Kubeconfig::from_yaml(FOREIGN).unwrap();
    let before = config.clone();
    let report = merge(&mut config, &plugin(), &offered(&["b", "a"]));
    assert_eq!(report.written, ["tether-a", "tether-b"]);
    assert!(report.removed.is_empty() && report.skipped.is_empty());
    // current-context was unset: the first context becomes current.
    assert_eq!(config.current_context, "tether-a");
    assert_eq!(report.current_context.as_deref(), Some("tether-a"));

    // Foreign entries and unknown fields are untouched.
    for kind in [EntryKind::Cluster, EntryKind::Context, EntryKind::User] {
        assert_eq!(
            config.entry(kind, "kind-dev"),
            before.entry(kind, "kind-dev")
        );
    }
    assert_eq!(config.extra, before.extra);
    assert_eq!(
        names(&config.clusters),
        ["kind-dev", "tether-a", "tether-b"]
    );

    let cluster = config.body(EntryKind::Cluster, "tether-a").unwrap();
    assert_eq!(cluster["server"], json!("https://proxy.example.com/a"));
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    assert!(
        String::from_utf8(ca)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    let context = config.body(EntryKind::Context, "tether-a").unwrap();
    assert_eq!(context["cluster"], json!("tether-a"));
    assert_eq!(context["user"], json!("tether-a"));
    let exec = config.user_exec("tether-a").unwrap();
    assert_eq!(exec.api_version, "client.authentication.k8s.io/v1");
    assert_eq!(exec.command, "/opt/bin/tetherctl");
    assert_eq!(
        exec.args,
        [
            "credential",
            "--hub",
            HUB,
            "--cluster",
            "a",
            "--hub-ca",
            "/etc/tether/ca.pem"
        ]
    );
    assert_eq!(exec.interactive_mode, "Never");
    assert!(owned_by(&config, &hub(), "tether-a"));
}

#[test]
fn current_context_is_set_only_when_unset() {
    let mut config =
        Kubeconfig::from_yaml(&format!("{FOREIGN}current-context: kind-dev\n")).unwrap();
    let report = merge(&mut config, &plugin(), &offered(&["a"]));
    assert_eq!(config.current_context, "kind-dev");
    assert_eq!(report.current_context, None);
}

#[test]
fn stale_entries_of_this_hub_go_and_others_stay() {
    let mut config = Kubeconfig::from_yaml(FOREIGN).unwrap();
    merge(&mut config, &plugin(), &offered(&["a", "b"]));
    // Another hub's entries, and a user's own namespace on our context.
    let mut other = plugin();
    other.hub = HubUrl::parse("https://other.example.com").unwrap();
    merge(&mut config, &other, &offered(&["c"]));
    config.edit_body(EntryKind::Context, "tether-a", |c| {
        c.insert("namespace".into(), json!("team-a"));
    });
    config.current_context = "tether-b".to_owned();

    let report = merge(&mut config, &plugin(), &offered(&["a"]));
    assert_eq!(report.written, ["tether-a"]);
    assert_eq!(report.removed, ["tether-b"]);
    assert_eq!(names(&config.users), ["kind-dev", "tether-a", "tether-c"]);
    assert_eq!(
        names(&config.clusters),
        ["kind-dev", "tether-a", "tether-c"]
    );
    assert_eq!(
        names(&config.contexts),
        ["kind-dev", "tether-a", "tether-c"]
    );
    // The removed context was current: the first written one replaces it.
    assert_eq!(config.current_context, "tether-a");
    // Fields added to our own entries survive a refresh.
    assert_eq!(
        config.body(EntryKind::Context, "tether-a").unwrap()["namespace"],
        json!("team-a")
    );
    assert!(owned_by(&config, &other.hub, "tether-c"));
}

#[test]
fn a_name_taken_by_someone_else_is_skipped() {
    let mut config = Kubeconfig::from_yaml(FOREIGN).unwrap();
    // A hand-made context called tether-a.
    config.edit_body(EntryKind::Context, "tether-a", |c| {
        c.insert("cluster".into(), json!("kind-dev"));
    });
    let mut other = plugin();
    other.hub = HubUrl::parse("https://other.example.com").unwrap();
    merge(&mut config, &other, &offered(&["b"]));
    let before = config.clone();

    let report = merge(&mut config, &plugin(), &offered(&["a", "b", "Bad_Name"]));
    assert!(report.written.is_empty());
    let skipped: Vec<&str> = report.skipped.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(skipped, ["Bad_Name", "a", "b"]);
    assert!(
        report.skipped[1].1.contains("not from this hub"),
        "{:?}",
        report.skipped
    );
    assert_eq!(config, before);
}

#[test]
fn remove_hub_only_removes_its_own() {
    let mut config = Kubeconfig::from_yaml(FOREIGN).unwrap();
    merge(&mut config, &plugin(), &offered(&["a", "b"]));
    let mut other = plugin();
    other.hub = HubUrl::parse("https://other.example.com").unwrap();
    merge(&mut config, &other, &offered(&["c"]));
    config.current_context = "tether-b".to_owned();
    let removed = remove_hub(&mut config, &hub());
    assert_eq!(removed, ["tether-a", "tether-b"]);
    assert_eq!(names(&config.users), ["kind-dev", "tether-c"]);
    assert_eq!(names(&config.contexts), ["kind-dev", "tether-c"]);
    assert_eq!(config.current_context, "");
}

#[test]
fn exec_env_carries_ca_data_and_cache_dir() {
    let mut p = plugin();
    p.hub_ca = HubCa::EnvData {
        base64: "QUJD".to_owned(),
        pem: Vec::new(),
    };
    p.cache_dir = Some(PathBuf::from("/tmp/cache"));
    let exec = p.exec("a");
    assert!(!exec.args.contains(&"--hub-ca".to_owned()));
    let env: Vec<(&str, &str)> = exec
        .env
        .iter()
        .map(|e| (e.name.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("TETHER_HUB_CA_DATA", "QUJD"),
            ("TETHER_CACHE_DIR", "/tmp/cache")
        ]
    );
    p.hub_ca = HubCa::System;
    assert_eq!(
        p.exec("a").args,
        ["credential", "--hub", HUB, "--cluster", "a"]
    );
}

#[test]
fn file_is_created_private_and_foreign_content_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/.kube/config");
    let report = update_file(&path, |c| merge(c, &plugin(), &offered(&["a"]))).unwrap();
    assert_eq!(report.written, ["tether-a"]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written = Kubeconfig::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written.current_context, "tether-a");

    // An existing, world-readable kubeconfig with foreign content.
    let path = dir.path().join("config");
    std::fs::write(&path, FOREIGN).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    update_file(&path, |c| merge(c, &plugin(), &offered(&["a"]))).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let written = Kubeconfig::from_yaml(&text).unwrap();
    assert_eq!(written.extra["x-unknown-top"], json!({"a": 1}));
    assert_eq!(
        written.body(EntryKind::Cluster, "kind-dev").unwrap()["x-unknown"],
        json!("keep")
    );
    assert_eq!(
        written.body(EntryKind::User, "kind-dev").unwrap()["token"],
        json!("abc")
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_symlinked_kubeconfig_is_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-config");
    std::fs::write(&real, FOREIGN).unwrap();
    let link = dir.path().join("config");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    update_file(&link, |c| merge(c, &plugin(), &offered(&["a"]))).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&real).unwrap().contains("tether-a"));
}

#[test]
fn an_unparsable_kubeconfig_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, "clusters: [oops").unwrap();
    let err = update_file(&path, |c| merge(c, &plugin(), &offered(&["a"]))).unwrap_err();
    assert!(matches!(err, Error::Kubeconfig { .. }), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "clusters: [oops");
}

#[test]
fn path_resolution() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        move |name: &str| map.get(name).map(|v| (*v).to_owned())
    };
    let all = env(&[("KUBECONFIG", "/k/one:/k/two"), ("HOME", "/h")]);
    assert_eq!(
        path(Some(Path::new("/flag")), &all).unwrap(),
        Path::new("/flag")
    );
    assert_eq!(path(None, &all).unwrap(), Path::new("/k/one"));
    assert_eq!(
        path(None, &env(&[("KUBECONFIG", ":/k/two"), ("HOME", "/h")])).unwrap(),
        Path::new("/k/two")
    );
    assert_eq!(
        path(None, &env(&[("HOME", "/h")])).unwrap(),
        Path::new("/h/.kube/config")
    );
    assert!(path(None, &env(&[])).is_err());
}
