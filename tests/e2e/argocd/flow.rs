//! The whole ArgoCD path with no static credential: a spoke joins, the hub writes its
//! cluster Secret, and the Secret's `execProviderConfig` — run by the real kubectl (client-go)
//! exactly as ArgoCD's controller would — swaps a real TokenRequest token of
//! `argocd/argocd-application-controller` for a 60-second spoke token; `kubectl apply`
//! through the spoke's proxy then runs as the policy's identity, `tether:argocd`.

use std::time::Duration;

use serde_json::Value;
use tether_e2e::{free_port, workspace_bin};

use super::env::{
    ArgoEnv, NAMESPACE, argocd_yaml, data, hub_cluster_yaml, secret_name, sqlite_config,
};

const CONTROLLER: &str = "argocd-application-controller";

/// The machine policy: the controller reaches every spoke as `tether:argocd`.
const MACHINE: &str = r#"machine:
  policies:
    - name: argocd
      serviceaccount: {namespace: argocd, name: argocd-application-controller}
      clusters: {names: ["*"]}
      identity: {username: "tether:argocd", groups: [argocd-controllers]}
"#;

/// In the spoke, `tether:argocd` may manage ConfigMaps in `default` and nothing else, so
/// the apiserver's own answers show which identity it saw.
const SPOKE_RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: argocd-configmaps, namespace: default}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get, list, create, update, patch, delete]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: argocd-configmaps, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: argocd-configmaps}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "tether:argocd"}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_reaches_a_spoke_through_its_secret_as_the_policy_identity() {
    let env = ArgoEnv::start("argocd-flow").await;
    env.hub_cluster
        .kubectl_ok(&["create", "serviceaccount", "-n", NAMESPACE, CONTROLLER])
        .await
        .expect("controller ServiceAccount");
    // What the kubelet would project into the controller's pod: a TokenRequest token.
    let token = env
        .hub_cluster
        .kubectl_ok(&["create", "token", "-n", NAMESPACE, CONTROLLER])
        .await
        .expect("TokenRequest");
    let token_file = env.dir.path().join("controller-token");
    std::fs::write(&token_file, token.trim()).expect("token file");

    let tetherctl = workspace_bin("tetherctl").expect("tetherctl");
    let port = free_port().expect("port");
    let argocd = argocd_yaml(
        "2s",
        &format!(
            "  credential_command: {:?}\n  token_file: {:?}\n",
            tetherctl.display().to_string(),
            token_file.display().to_string()
        ),
    );
    let yaml = sqlite_config(
        port,
        &format!("{}{MACHINE}{argocd}", hub_cluster_yaml(&env.hub_cluster)),
    );
    let hub = env.hub("hub", port, &yaml).await;
    let admin = hub.admin_token().await.expect("admin token");

    let spoke = env.spoke("spoke-argo").await;
    spoke.apply_yaml(SPOKE_RBAC).await.expect("spoke rbac");
    let agent = env.join(&hub, &admin, &spoke, &["env=dev"]).await;
    let secret = env
        .wait_secret(
            &secret_name("spoke-argo"),
            "the joined spoke's Secret",
            Duration::from_secs(30),
            |s| s.is_some(),
        )
        .await
        .expect("secret");

    // Build the kubeconfig ArgoCD builds from the Secret: server, caData, execProviderConfig.
    let config: Value = serde_json::from_str(&data(&secret, "config")).expect("config json");
    let exec = &config["execProviderConfig"];
    let env_list: Vec<Value> = exec["env"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
                .collect()
        })
        .unwrap_or_default();
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "spoke", "cluster": {
            "server": data(&secret, "server"),
            "certificate-authority-data": config["tlsClientConfig"]["caData"],
        }}],
        "users": [{"name": "argocd", "user": {"exec": {
            "apiVersion": exec["apiVersion"],
            "command": exec["command"],
            "args": exec["args"],
            "env": env_list,
            "interactiveMode": "Never",
        }}}],
        "contexts": [{"name": "spoke", "context": {"cluster": "spoke", "user": "argocd", "namespace": "default"}}],
        "current-context": "spoke",
    });
    let kc = env.dir.path().join("argocd-kubeconfig");
    std::fs::write(&kc, kubeconfig.to_string()).expect("kubeconfig");

    // The exec plugin by itself answers in the apiVersion the Secret asks for.
    let mut plugin = tokio::process::Command::new(exec["command"].as_str().expect("command"));
    plugin
        .args(
            exec["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|a| a.as_str().expect("arg")),
        )
        .env(
            "KUBERNETES_EXEC_INFO",
            r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#,
        )
        .kill_on_drop(true);
    for (k, v) in exec["env"].as_object().into_iter().flatten() {
        plugin.env(k, v.as_str().expect("env value"));
    }
    let out = tokio::time::timeout(Duration::from_secs(30), plugin.output())
        .await
        .expect("the plugin answered within 30 s")
        .expect("run the plugin");
    assert!(
        out.status.success(),
        "plugin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let credential: Value = serde_json::from_slice(&out.stdout).expect("ExecCredential json");
    assert_eq!(
        credential["apiVersion"],
        "client.authentication.k8s.io/v1beta1"
    );
    assert_eq!(credential["kind"], "ExecCredential");
    assert!(
        credential["status"]["expirationTimestamp"].is_string(),
        "{credential}"
    );

    // client-go runs the plugin and talks to the proxy: apply creates the object.
    let run = |args: Vec<&'static str>, stdin: Option<&'static str>| {
        let kc = kc.clone();
        let home = env.dir.path().to_path_buf();
        async move {
            tether_e2e::cluster::run_kubectl(&kc, &home, &args, &[], stdin)
                .await
                .expect("kubectl")
        }
    };
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-argocd}\ndata: {synced: \"yes\"}\n";
    let out = run(vec!["apply", "-f", "-"], Some(cm)).await;
    assert!(
        out.success(),
        "apply through the Secret's config: {}",
        out.stderr
    );
    let created = spoke
        .kubectl_ok(&[
            "get",
            "configmap",
            "-n",
            "default",
            "from-argocd",
            "-o",
            "jsonpath={.data.synced}",
        ])
        .await
        .expect("the object exists in the spoke");
    assert_eq!(created, "yes");

    // The apiserver judged tether:argocd (in its group), not the agent and not an admin.
    let out = run(vec!["get", "secrets"], None).await;
    assert!(!out.success(), "tether:argocd read secrets");
    assert!(
        out.stderr.contains("User \"tether:argocd\""),
        "the apiserver names the policy's identity: {}",
        out.stderr
    );
    // And the agent's audit record shows who asked.
    let log = std::fs::read_to_string(agent.process().log_path()).expect("agent log");
    assert!(
        log.lines().any(|l| l.contains("proxied request")
            && l.contains("tether:argocd")
            && l.contains("from-argocd")),
        "no audit record of tether:argocd's apply in the agent log"
    );
    assert!(
        !log.contains(token.trim()),
        "the agent logged the ServiceAccount token"
    );
}
