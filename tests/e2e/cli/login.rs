//! `tetherctl login` / `credential` / `logout` with the real kubectl, hub, IdP and spoke.

use std::time::{Duration, Instant};

use super::env::{CliEnv, context};

fn kubeconfig_text(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// alice (k8s-admins) lists namespaces; bob (k8s-viewers) is offered the cluster but RBAC
/// forbids listing namespaces; carol (no groups) is not offered the cluster at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_writes_the_clusters_the_policy_offers() {
    let env = CliEnv::start("cli-login", "5m", "60s").await;

    let (alice, out) = env.login("alice", "alice-pass").await;
    assert!(out.success(), "alice login: {}\n{}", out.stdout, out.stderr);
    let kc = kubeconfig_text(&alice.kubeconfig);
    assert!(kc.contains(&context()), "alice's kubeconfig: {kc}");
    assert!(kc.contains("credential"), "an exec plugin entry: {kc}");
    assert!(!kc.contains("eyJ"), "no token in the kubeconfig: {kc}");
    let mode = std::fs::metadata(&alice.kubeconfig)
        .expect("kubeconfig")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "kubeconfig readable by others"
    );
    let out = env.kubectl(&alice, &["get", "ns"]).await;
    assert!(out.success(), "alice get ns: {}", out.stderr);
    assert!(out.stdout.contains("kube-system"), "{}", out.stdout);

    let (bob, out) = env.login("bob", "bob-pass").await;
    assert!(out.success(), "bob login: {}\n{}", out.stdout, out.stderr);
    assert!(kubeconfig_text(&bob.kubeconfig).contains(&context()));
    let out = env.kubectl(&bob, &["get", "ns"]).await;
    assert!(
        !out.success(),
        "bob may not list namespaces: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("forbidden") && out.stderr.contains("bob@example.com"),
        "{}",
        out.stderr
    );

    let (carol, out) = env.login("carol", "carol-pass").await;
    assert!(out.success(), "carol login: {}\n{}", out.stdout, out.stderr);
    assert!(
        !kubeconfig_text(&carol.kubeconfig).contains(&context()),
        "carol was offered the spoke: {}",
        kubeconfig_text(&carol.kubeconfig)
    );
}

/// `tetherctl login --no-browser` (RFC 8628): the code confirmed in a browser elsewhere,
/// then the same kubeconfig and a working kubectl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_for_ssh_sessions() {
    let env = CliEnv::start("cli-device", "5m", "60s").await;
    let (alice, out) = env.device_login("alice", "alice-pass").await;
    assert!(
        out.success(),
        "device login: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stderr.contains("confirm the code"), "{}", out.stderr);
    assert!(kubeconfig_text(&alice.kubeconfig).contains(&context()));
    let out = env.kubectl(&alice, &["get", "ns"]).await;
    assert!(
        out.success(),
        "kubectl after a device login: {}",
        out.stderr
    );
}

/// 20 kubectl calls started together as the tokens expire share ONE refresh; logout ends
/// the credentials and wipes the cache; an account locked at the IdP stops working within
/// the upstream re-check interval with a message naming `tetherctl login`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_share_one_refresh_and_end_on_logout_and_on_lock() {
    const RECHECK: Duration = Duration::from_secs(6);
    // Tokens live 20 s; the plugin renews a token with less than 15 s left.
    let env = CliEnv::start("cli-credential", "6s", "20s").await;
    let (alice, out) = env.login("alice", "alice-pass").await;
    assert!(out.success(), "login: {}\n{}", out.stdout, out.stderr);
    let out = env.kubectl(&alice, &["get", "ns"]).await;
    assert!(out.success(), "first kubectl: {}", out.stderr);

    // Let the access and cluster tokens get within the plugin's renewal margin.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let before = env.refreshes().await;
    let calls = (0..20).map(|_| env.kubectl(&alice, &["get", "ns", "-o", "name"]));
    let outs = futures_util::future::join_all(calls).await;
    for (i, out) in outs.iter().enumerate() {
        assert!(out.success(), "parallel kubectl {i}: {}", out.stderr);
    }
    let after = env.refreshes().await;
    assert_eq!(
        after - before,
        1.0,
        "refreshes at the hub for 20 parallel kubectl calls"
    );

    // Logout: the next kubectl fails, the cache is gone.
    let hub = env.proxy.login.hub.url();
    let ca = env.proxy.login.hub.ca_file().display().to_string();
    let out = env
        .tetherctl(&alice, &["logout", "--hub", &hub, "--hub-ca", &ca], None)
        .await;
    assert!(out.success(), "logout: {}", out.stderr);
    assert!(
        !alice.cache_dir.exists()
            || std::fs::read_dir(&alice.cache_dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true),
        "the credential cache survived logout"
    );
    let out = env.kubectl(&alice, &["get", "ns"]).await;
    assert!(!out.success(), "kubectl after logout: {}", out.stdout);
    assert!(out.stderr.contains("tetherctl login"), "{}", out.stderr);

    // Log in again, then lock alice at the IdP.
    let (alice, out) = env.login("alice", "alice-pass").await;
    assert!(out.success(), "second login: {}", out.stderr);
    let out = env.kubectl(&alice, &["get", "ns"]).await;
    assert!(
        out.success(),
        "kubectl after the second login: {}",
        out.stderr
    );
    env.proxy.login.idp.lock("alice").await.expect("lock alice");
    let locked_at = Instant::now();
    let mut failure = None;
    // The sweeper checks every recheck/4; the revocation reaches the agent within ~1 s.
    while locked_at.elapsed() < RECHECK + Duration::from_secs(10) {
        let out = env.kubectl(&alice, &["get", "ns"]).await;
        if !out.success() {
            failure = Some((locked_at.elapsed(), out));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (elapsed, out) = failure.expect("alice's kubectl still works 16 s after the lock");
    assert!(
        out.stderr.contains("tetherctl login"),
        "the failure names tetherctl login: {}",
        out.stderr
    );
    assert!(
        elapsed <= RECHECK + Duration::from_secs(4),
        "failed only {elapsed:?} after the lock (re-check interval {RECHECK:?})"
    );
}
