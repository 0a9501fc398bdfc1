//! Real kube-apiservers: TokenRequest/TokenReview, hub + spoke on one etcd with RBAC and
//! impersonation, and exec through the test node.

use serde_json::{Value, json};
use tether_e2e::cluster::SA_ISSUER;
use tether_e2e::{Cluster, ClusterOptions, Etcd, TestDir, jwt_claims};

#[tokio::test]
async fn token_request_and_token_review() {
    let dir = TestDir::new("token").expect("test dir");
    let hub = Cluster::start(&dir, ClusterOptions::new("hub"))
        .await
        .expect("hub cluster");

    hub.kubectl_ok(&["create", "serviceaccount", "tester"])
        .await
        .expect("create sa");
    let token = hub
        .kubectl_ok(&["create", "token", "tester", "--duration=10m"])
        .await
        .expect("create token");
    let token = token.trim();
    let claims = jwt_claims(token).expect("token is a JWT");
    assert_eq!(claims["iss"], SA_ISSUER);
    assert_eq!(claims["sub"], "system:serviceaccount:default:tester");

    let review = |t: &str| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": t}});
    let url = format!(
        "{}/apis/authentication.k8s.io/v1/tokenreviews",
        hub.api_url()
    );
    let ok: Value = hub
        .admin_http()
        .post(&url)
        .json(&review(token))
        .send()
        .await
        .expect("review")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ok["status"]["authenticated"], true,
        "review status: {}",
        ok["status"]
    );
    assert_eq!(
        ok["status"]["user"]["username"],
        "system:serviceaccount:default:tester"
    );

    let bad: Value = hub
        .admin_http()
        .post(&url)
        .json(&review("not-a-token"))
        .send()
        .await
        .expect("review")
        .json()
        .await
        .expect("json");
    assert_ne!(bad["status"]["authenticated"], true);
}

#[tokio::test]
async fn hub_and_spoke_share_one_etcd_and_follow_rbac() {
    let dir = TestDir::new("hubspoke").expect("test dir");
    let etcd = Etcd::start(&dir).await.expect("etcd");
    let hub = Cluster::start(&dir, ClusterOptions::new("hub").etcd(&etcd))
        .await
        .expect("hub");
    let spoke = Cluster::start(&dir, ClusterOptions::new("spoke").etcd(&etcd))
        .await
        .expect("spoke");
    assert_ne!(hub.api_url(), spoke.api_url());

    spoke
        .kubectl_ok(&[
            "create",
            "clusterrolebinding",
            "viewers",
            "--clusterrole=view",
            "--group=k8s-viewers",
        ])
        .await
        .expect("bind k8s-viewers to view");
    // RBAC caches catch up with the new binding within moments: poll (bounded) for the first answer.
    let mut answer = String::new();
    for _ in 0..20 {
        answer = can_i(&spoke, "list", true).await;
        if answer == "yes" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(answer, "yes");
    assert_eq!(can_i(&spoke, "delete", true).await, "no");
    assert_eq!(can_i(&spoke, "list", false).await, "no");
    // The binding lives under the spoke's etcd prefix only.
    assert_eq!(can_i(&hub, "list", true).await, "no");
}

#[tokio::test]
async fn exec_and_logs_through_the_test_node() {
    let dir = TestDir::new("exec").expect("test dir");
    let c = Cluster::start(&dir, ClusterOptions::new("hub").with_test_node())
        .await
        .expect("cluster with test node");
    let node = c.test_node().expect("test node");
    assert_eq!(c.test_pod().as_deref(), Some("default/test-pod"));

    let out = c
        .kubectl(&[
            "exec",
            "-n",
            node.namespace(),
            node.pod(),
            "--",
            "echo",
            "hello from the test node",
        ])
        .await
        .expect("exec");
    assert!(out.success(), "exec failed: {}", out.stderr);
    assert_eq!(out.stdout, "hello from the test node\n");

    let out = c
        .kubectl(&[
            "exec",
            node.pod(),
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .await
        .expect("exec");
    assert_eq!(
        out.code(),
        Some(3),
        "exit code propagated; stderr: {}",
        out.stderr
    );
    assert_eq!(out.stdout, "out\n");
    assert!(out.stderr.contains("err"), "stderr: {}", out.stderr);

    node.write_container_log("line one\nline two\n")
        .expect("write log");
    let logs = c
        .kubectl_ok(&["logs", node.pod(), "--tail=1"])
        .await
        .expect("logs");
    assert_eq!(logs, "line two\n");
}

async fn can_i(c: &Cluster, verb: &str, with_group: bool) -> String {
    let mut args = vec!["auth", "can-i", verb, "pods", "--as", "bob"];
    if with_group {
        args.extend(["--as-group", "k8s-viewers"]);
    }
    c.kubectl(&args)
        .await
        .expect("kubectl auth can-i")
        .stdout
        .trim()
        .to_string()
}
