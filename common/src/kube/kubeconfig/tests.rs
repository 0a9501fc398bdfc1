use serde_json::json;

use super::*;

const FOREIGN: &str = r#"# a comment kubectl would drop too
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: kind-dev
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: QUJD
    insecure-skip-tls-verify: false
    tls-server-name: "1.2"
  extensions:
  - name: client.authentication.k8s.io/exec
    extension:
      audience: dev
contexts:
- name: kind-dev
  context:
    cluster: kind-dev
    user: kind-dev
    namespace: team-a
current-context: kind-dev
users:
- name: kind-dev
  user:
    token: "12345"
    future-field: {nested: [1, "yes", null]}
x-vendor: keep me
"#;

#[test]
fn round_trip_keeps_every_field() {
    let config = Kubeconfig::from_yaml(FOREIGN).unwrap();
    assert_eq!(config.current_context, "kind-dev");
    assert_eq!(config.extra["preferences"], json!({"colors": true}));
    assert_eq!(config.extra["x-vendor"], json!("keep me"));
    let cluster = config.body(EntryKind::Cluster, "kind-dev").unwrap();
    assert_eq!(cluster["insecure-skip-tls-verify"], json!(false));
    // A quoted number stays a string.
    assert_eq!(cluster["tls-server-name"], json!("1.2"));
    assert_eq!(
        config.entry(EntryKind::Cluster, "kind-dev").unwrap().fields["extensions"][0]["extension"],
        json!({"audience": "dev"})
    );
    let user = config.body(EntryKind::User, "kind-dev").unwrap();
    assert_eq!(user["token"], json!("12345"));
    assert_eq!(user["future-field"], json!({"nested": [1, "yes", null]}));

    let yaml = config.to_yaml().unwrap();
    let again = Kubeconfig::from_yaml(&yaml).unwrap();
    assert_eq!(again, config, "{yaml}");
}

#[test]
fn keys_come_out_in_kubectl_order() {
    let yaml = Kubeconfig::from_yaml(FOREIGN).unwrap().to_yaml().unwrap();
    let top: Vec<&str> = yaml
        .lines()
        .filter(|l| !l.starts_with([' ', '-']) && l.contains(':'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        top,
        [
            "apiVersion",
            "clusters",
            "contexts",
            "current-context",
            "kind",
            "preferences",
            "x-vendor",
            "users"
        ],
        "{yaml}"
    );
}

#[test]
fn empty_and_null_lists() {
    for text in ["", "\n# only a comment\n", "---\n"] {
        let config = Kubeconfig::from_yaml(text).unwrap();
        assert_eq!(config, Kubeconfig::new());
    }
    let config = Kubeconfig::from_yaml(
        "apiVersion: v1\nkind: Config\nclusters: null\nusers:\ncurrent-context:\n",
    )
    .unwrap();
    assert!(config.clusters.is_empty() && config.users.is_empty());
    assert!(config.current_context.is_empty());
    // An unset current-context is left out.
    assert!(!config.to_yaml().unwrap().contains("current-context"));
}

#[test]
fn json_is_accepted() {
    let config = Kubeconfig::from_yaml(
        r#"{"apiVersion":"v1","kind":"Config","clusters":[{"name":"a","cluster":{"server":"https://a"}}]}"#,
    )
    .unwrap();
    assert_eq!(
        config.body(EntryKind::Cluster, "a").unwrap()["server"],
        json!("https://a")
    );
}

#[test]
fn garbage_is_an_error() {
    assert!(matches!(
        Kubeconfig::from_yaml("clusters: [unclosed"),
        Err(KubeconfigError::Parse(_))
    ));
    assert!(matches!(
        Kubeconfig::from_yaml("clusters: 7"),
        Err(KubeconfigError::Parse(_))
    ));
}

#[test]
fn edit_body_creates_or_keeps() {
    let mut config = Kubeconfig::from_yaml(FOREIGN).unwrap();
    config.edit_body(EntryKind::Context, "kind-dev", |body| {
        body.insert("cluster".into(), json!("other"));
    });
    let context = config.body(EntryKind::Context, "kind-dev").unwrap();
    assert_eq!(context["cluster"], json!("other"));
    assert_eq!(context["namespace"], json!("team-a"));

    config.edit_body(EntryKind::Context, "new", |body| {
        body.insert("cluster".into(), json!("c"));
    });
    assert_eq!(config.contexts.last().unwrap().name, "new");
    assert_eq!(config.contexts.len(), 2);

    assert!(config.remove(EntryKind::Context, "new"));
    assert!(!config.remove(EntryKind::Context, "new"));
    assert_eq!(config.contexts.len(), 1);
}

#[test]
fn exec_config() {
    let exec = ExecConfig {
        api_version: "client.authentication.k8s.io/v1".into(),
        command: "/usr/local/bin/tetherctl".into(),
        args: vec!["credential".into(), "--hub".into(), "https://hub".into()],
        env: vec![ExecEnvVar {
            name: "A".into(),
            value: "b".into(),
        }],
        interactive_mode: "Never".into(),
        provide_cluster_info: false,
        install_hint: String::new(),
    };
    let mut config = Kubeconfig::new();
    config.edit_body(EntryKind::User, "u", |body| {
        body.insert("exec".into(), serde_json::to_value(&exec).unwrap());
    });
    let yaml = config.to_yaml().unwrap();
    assert!(yaml.contains("interactiveMode: Never"), "{yaml}");
    let again = Kubeconfig::from_yaml(&yaml).unwrap();
    let read = again.user_exec("u").unwrap();
    assert_eq!(read, exec);
    assert_eq!(read.arg_value("--hub"), Some("https://hub"));
    assert_eq!(read.arg_value("--cluster"), None);
    assert!(again.user_exec("missing").is_none());
    assert!(!format!("{:?}", exec.env[0]).contains("\"b\""));
}
