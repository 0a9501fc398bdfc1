//! One hub: join → Secret in the exact format; `tetherctl argocd secret` = the Secret;
//! tampering is reverted; removal deletes it.

use std::time::Duration;

use serde_json::{Value, json};
use tether_e2e::free_port;

use super::env::{
    ArgoEnv, NAMESPACE, argocd_yaml, base64_file, data, hub_cluster_yaml, secret_name,
    sqlite_config, tetherctl, writes,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_spoke_gets_an_argocd_secret_until_it_is_removed() {
    let env = ArgoEnv::start("argocd-secrets").await;
    let port = free_port().expect("port");
    let yaml = sqlite_config(
        port,
        &format!(
            "{}{}",
            hub_cluster_yaml(&env.hub_cluster),
            argocd_yaml("2s", "")
        ),
    );
    let hub = env.hub("hub", port, &yaml).await;
    let admin = hub.admin_token().await.expect("admin token");

    // Not joined yet: no Secret, and `argocd secret` says why.
    let spoke = env.spoke("spoke-a").await;
    let name = secret_name("spoke-a");
    let out = tetherctl(&hub, &admin, &["argocd", "secret", "nobody"]).await;
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("not registered"), "{}", out.stderr);

    let agent = env
        .join(&hub, &admin, &spoke, &["env=prod", "team=payments"])
        .await;
    let secret = env
        .wait_secret(
            &name,
            "the Secret of the joined spoke",
            Duration::from_secs(30),
            |s| s.is_some(),
        )
        .await
        .expect("secret");

    // ArgoCD's declarative cluster Secret, exactly.
    assert_eq!(secret["type"], "Opaque", "{secret}");
    assert_eq!(
        secret["metadata"]["labels"],
        json!({
            "argocd.argoproj.io/secret-type": "cluster",
            "app.kubernetes.io/managed-by": "tether-hub",
            "env": "prod",
            "team": "payments",
        }),
        "{secret}"
    );
    assert_eq!(
        secret["metadata"]["annotations"]["tether.dev/cluster"],
        "spoke-a"
    );
    let mut keys: Vec<&String> = secret["data"].as_object().expect("data").keys().collect();
    keys.sort();
    assert_eq!(keys, ["config", "name", "server"]);
    assert_eq!(data(&secret, "name"), "spoke-a");
    let proxy_url = agent.proxy_url().expect("proxy url");
    assert_eq!(data(&secret, "server"), proxy_url);
    let config: Value = serde_json::from_str(&data(&secret, "config")).expect("config json");
    assert_eq!(
        config,
        json!({
            "execProviderConfig": {
                "command": "/custom-tools/tetherctl",
                "args": [
                    "credential", "--hub", hub.url(), "--cluster", "spoke-a",
                    "--token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token",
                ],
                // The hub's self-signed TLS CA, for `tetherctl credential` to trust it.
                "env": { "TETHER_HUB_CA_DATA": base64_file(&hub.ca_file()) },
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "installHint": config["execProviderConfig"]["installHint"],
            },
            "tlsClientConfig": {
                "insecure": false,
                "caData": base64_file(&agent.proxy_ca_file()),
            },
        })
    );
    assert!(
        config["execProviderConfig"]["installHint"]
            .as_str()
            .is_some_and(|h| h.contains("/custom-tools/tetherctl")),
        "{config}"
    );

    // `tetherctl argocd secret` prints what the hub wrote.
    let out = tetherctl(&hub, &admin, &["argocd", "secret", "spoke-a", "-o", "json"]).await;
    assert!(out.success(), "{}", out.stderr);
    let printed: Value = serde_json::from_str(&out.stdout).expect("printed json");
    assert_eq!(printed["kind"], "Secret");
    assert_eq!(printed["apiVersion"], "v1");
    assert_eq!(printed["metadata"]["name"], name.as_str());
    assert_eq!(printed["metadata"]["namespace"], NAMESPACE);
    for field in ["data", "type"] {
        assert_eq!(printed[field], secret[field], "{field}");
    }
    for field in ["labels", "annotations"] {
        assert_eq!(
            printed["metadata"][field], secret["metadata"][field],
            "{field}"
        );
    }
    let out = tetherctl(&hub, &admin, &["argocd", "secret", "spoke-a"]).await;
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stdout.contains("kind: Secret"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("name: {name}")),
        "{}",
        out.stdout
    );

    // Someone edits the Secret: the next resync (2 s) puts it back, with one update.
    assert_eq!(writes(&hub, "create").await, 1);
    env.hub_cluster
        .kubectl_ok(&[
            "label",
            "secret",
            "-n",
            NAMESPACE,
            &name,
            "env=tampered",
            "--overwrite",
        ])
        .await
        .expect("label");
    env.wait_secret(&name, "the label put back", Duration::from_secs(15), |s| {
        s.is_some_and(|s| s["metadata"]["labels"]["env"] == "prod")
    })
    .await;
    assert_eq!(writes(&hub, "update").await, 1);
    // In sync: resyncs write nothing more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(writes(&hub, "create").await, 1);
    assert_eq!(writes(&hub, "update").await, 1);

    // Removal deletes it at once (the removal pokes the reconciler).
    let out = tetherctl(&hub, &admin, &["cluster", "remove", "spoke-a"]).await;
    assert!(out.success(), "{}", out.stderr);
    env.wait_secret(&name, "the Secret deleted", Duration::from_secs(10), |s| {
        s.is_none()
    })
    .await;
    assert_eq!(writes(&hub, "delete").await, 1);
    assert!(env.managed_secrets().await.is_empty());
    let out = tetherctl(&hub, &admin, &["argocd", "secret", "spoke-a"]).await;
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("removed"), "{}", out.stderr);
    drop(agent);
}
