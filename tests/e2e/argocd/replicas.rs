//! Two hub replicas on one PostgreSQL reconcile the same namespace every second: every
//! change is written once (the replicas' write counters add up to the changes).

use std::time::Duration;

use tether_e2e::{Postgres, free_port};

use super::env::{
    ArgoEnv, NAMESPACE, argocd_yaml, hub_cluster_yaml, secret_name, tetherctl, writes,
};
use crate::hub::support::{create_database, postgres_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_write_each_change_once() {
    let env = ArgoEnv::start("argocd-replicas").await;
    let pg = Postgres::start(&env.dir).await.expect("postgres");
    create_database(&pg, "hub").await;
    // Both replicas must render the same Secret: the same hub URL and CA for the credential.
    let ca_file = env.hub_cluster.ca_file();
    let argocd = argocd_yaml(
        "1s",
        &format!(
            "  hub_url: https://hub.example.com\n  hub_ca_file: {:?}\n",
            ca_file.display().to_string()
        ),
    );
    let keys = "  max_token_lifetime: 10m";
    let (port_a, port_b) = (free_port().expect("port"), free_port().expect("port"));
    let yaml = |port| {
        format!(
            "{}{}{}",
            postgres_config(&pg, "hub", port, keys),
            hub_cluster_yaml(&env.hub_cluster),
            argocd
        )
    };
    let a = env.hub("hub-a", port_a, &yaml(port_a)).await;
    let b = env.hub("hub-b", port_b, &yaml(port_b)).await;
    let admin_a = a.admin_token().await.expect("admin token");
    let admin_b = b.admin_token().await.expect("admin token");

    // Joined through A; both replicas race to write its Secret.
    let spoke = env.spoke("spoke-ha").await;
    let name = secret_name("spoke-ha");
    let agent = env.join(&a, &admin_a, &spoke, &["env=ha"]).await;
    env.wait_secret(&name, "the Secret", Duration::from_secs(30), |s| {
        s.is_some()
    })
    .await;
    // Several resyncs of both replicas.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let created = writes(&a, "create").await + writes(&b, "create").await;
    assert_eq!(created, 1, "creates by a and b");
    // Both replicas reconcile (each has seen the Secret the registry calls for).
    for hub in [&a, &b] {
        let desired = hub
            .metric("tether_hub_argocd_secrets")
            .await
            .expect("metrics");
        assert_eq!(desired, Some(1.0), "{}", hub.metrics_url());
    }

    // A tampered label: put back once.
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
        s.is_some_and(|s| s["metadata"]["labels"]["env"] == "ha")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let updated = writes(&a, "update").await + writes(&b, "update").await;
    assert_eq!(updated, 1, "updates by a and b");

    // Removed through B: deleted once.
    let out = tetherctl(&b, &admin_b, &["cluster", "remove", "spoke-ha"]).await;
    assert!(out.success(), "{}", out.stderr);
    env.wait_secret(&name, "the Secret deleted", Duration::from_secs(15), |s| {
        s.is_none()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deleted = writes(&a, "delete").await + writes(&b, "delete").await;
    assert_eq!(deleted, 1, "deletes by a and b");
    assert!(env.managed_secrets().await.is_empty());
    drop((agent, a, b));
}
