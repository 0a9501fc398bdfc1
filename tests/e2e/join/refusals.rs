//! Refused joins: each with a clear error, and nothing written in the spoke.

use super::env::JoinEnv;

/// Replaces the value after `flag` in a join command.
fn with_flag(words: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut out = words.to_vec();
    let i = out.iter().position(|w| w == flag).expect("flag present") + 1;
    out[i] = value.to_owned();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_joins_say_why_and_write_nothing() {
    let env = JoinEnv::start("join-refusals").await;
    let spoke = env.spoke("spoke-r").await;
    let untouched = |out: &tether_e2e::CmdOutput| {
        assert!(!out.success(), "expected a refusal: {}", out.stdout);
    };
    let nothing_written = || async {
        let ns = spoke
            .kubectl(&["get", "namespace", "tether-system"])
            .await
            .expect("kubectl");
        assert!(!ns.success(), "the spoke was written to");
    };

    // A wrong pin: refused before anything is sent.
    let words = env.add_cluster("alpha", &[]).await;
    let pin = format!("sha256:{}", "0".repeat(64));
    let out = env
        .join(&with_flag(&words, "--ca-hash", &pin), &spoke)
        .await;
    untouched(&out);
    assert!(out.stderr.contains("--ca-hash"), "{}", out.stderr);
    nothing_written().await;

    // A token for another cluster name.
    let out = env
        .join(&with_flag(&words, "--cluster", "beta"), &spoke)
        .await;
    untouched(&out);
    assert!(
        out.stderr.contains("alpha") || out.stderr.to_lowercase().contains("another cluster"),
        "{}",
        out.stderr
    );
    nothing_written().await;

    // A wrong secret.
    let token = words[words.iter().position(|w| w == "--token").expect("token") + 1].clone();
    let (id, _) = token.split_once('.').expect("ID.SECRET");
    let forged = format!("{id}.{}", "A".repeat(43));
    let out = env
        .join(&with_flag(&words, "--token", &forged), &spoke)
        .await;
    untouched(&out);
    nothing_written().await;

    // An expired token.
    let expiring = env.add_cluster("gamma", &["--ttl", "1s"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let out = env.join(&expiring, &spoke).await;
    untouched(&out);
    assert!(
        out.stderr.to_lowercase().contains("expired"),
        "{}",
        out.stderr
    );
    nothing_written().await;

    // A used token: the first join succeeds (into another spoke), the second is refused.
    let other = env.spoke("spoke-s").await;
    let first = env.join(&words, &other).await;
    assert!(first.success(), "{}", first.stderr);
    let out = env.join(&words, &spoke).await;
    untouched(&out);
    assert!(
        out.stderr.to_lowercase().contains("used") || out.stderr.contains("already"),
        "{}",
        out.stderr
    );
    nothing_written().await;

    // Every refused cluster is still pending at the hub.
    for name in ["gamma"] {
        assert_eq!(env.cluster(name).await["state"], "pending");
    }
    assert_eq!(env.cluster("alpha").await["state"], "joined");
}
