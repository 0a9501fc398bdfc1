//! The happy path: add, join, run; key pushes within 2 s; a hub restart is followed by
//! reconnection; a removed cluster is disconnected and cannot come back.

use std::time::Duration;

use super::env::{JoinEnv, wait_until};
use crate::hub::support::{hub_cmd, hub_flags, jwks, kids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoke_joins_connects_follows_rotations_and_is_removed() {
    let mut env = JoinEnv::start("join-stream").await;
    let spoke = env.spoke("spoke-a").await;

    // cluster add -> the printed command against a real spoke apiserver.
    let words = env
        .add_cluster("spoke-a", &["--label", "env=dev", "--ttl", "10m"])
        .await;
    let joined = env.join(&words, &spoke).await;
    assert!(joined.success(), "join: {}", joined.stderr);
    for object in [
        "namespace/tether-system",
        "serviceaccount/tether-agent",
        "secret/tether-agent-identity",
        "deployment/tether-agent",
        "service/tether-agent",
        "clusterrole/tether-agent-impersonate",
        "clusterrolebinding/tether-agent-impersonate",
    ] {
        spoke
            .kubectl_ok(&["get", "-n", "tether-system", object])
            .await
            .unwrap_or_else(|e| panic!("{object} missing in the spoke: {e}"));
    }
    // The agent may impersonate, as the proxy needs.
    let can = spoke
        .kubectl(&[
            "auth",
            "can-i",
            "impersonate",
            "groups",
            "--as",
            "system:serviceaccount:tether-system:tether-agent",
        ])
        .await
        .expect("kubectl");
    assert_eq!(can.stdout.trim(), "yes", "{}", can.stderr);
    // Re-running the same join is refused (the token is spent) and changes nothing.
    let again = env.join(&words, &spoke).await;
    assert!(!again.success());

    // The agent, run locally with that identity, connects; cluster list shows it.
    let mut agent = env.run_agent(&spoke);
    agent
        .wait_connected(true, Duration::from_secs(20))
        .await
        .expect("agent connected");
    let listed = env.cluster("spoke-a").await;
    assert_eq!(listed["state"], "joined", "{listed}");
    assert_eq!(listed["connected"], true, "{listed}");
    assert_eq!(listed["labels"]["env"], "dev", "{listed}");

    // An emergency rotation: measured from the moment the hub serves the new key set to the
    // moment the agent verifies with it.
    let before = kids(&jwks(&env.hub).await);
    let flags = hub_flags(&env.hub);
    let mut args = vec!["keys", "rotate", "--emergency"];
    args.extend(flags.iter().map(String::as_str));
    let out = hub_cmd(&args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut published = Vec::new();
    for _ in 0..400 {
        published = kids(&jwks(&env.hub).await);
        if published != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_ne!(published, before, "the hub never published the rotation");
    let mut expected = published.clone();
    expected.sort();
    let pushed = wait_until("rotation reaches the agent", Duration::from_secs(2), || {
        agent.status().is_some_and(|s| {
            let mut k: Vec<String> = serde_json::from_value(s["kids"].clone()).unwrap_or_default();
            k.sort();
            k == expected
        })
    })
    .await;
    eprintln!("key rotation reached the agent {pushed:?} after the hub published it");
    env.refresh_admin_token().await; // the old one was signed by the dropped key

    // A hub restart is followed by reconnection.
    let env = env.restart_hub().await;
    agent
        .wait_connected(true, Duration::from_secs(40))
        .await
        .expect("agent reconnected after a hub restart");
    assert!(env.cluster("spoke-a").await["connected"] == true);

    // Removal: disconnected at once, and reconnecting is refused.
    let out = env.tetherctl(&["cluster", "remove", "spoke-a"]).await;
    assert!(out.success(), "remove: {}", out.stderr);
    agent
        .wait_connected(false, Duration::from_secs(5))
        .await
        .expect("agent disconnected");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        agent.status().expect("status")["connected"],
        false,
        "reconnected after removal"
    );
    let log = std::fs::read_to_string(agent.process().log_path()).expect("agent log");
    assert!(
        log.contains("PERMISSION_DENIED") || log.to_lowercase().contains("permission"),
        "{log}"
    );
    drop(agent);
}
