//! Streaming through the proxy: `logs -f`, `attach`, `port-forward` (both transports) and
//! `cp`, with the real kubectl against the test node.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::env::ProxyEnv;

/// kubectl through the proxy as a background process (killed on drop).
fn spawn_kubectl(
    env: &ProxyEnv,
    kc: &std::path::Path,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> tokio::process::Child {
    let kubectl = tether_e2e::Deps::get().kubectl().expect("kubectl");
    tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .envs(extra_env.iter().copied())
        .env("HOME", env.login.dir().path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kubectl")
}

/// Reads lines from `child`'s stdout until one contains `needle` (bounded).
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "never saw {needle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_logs_follow_attach_port_forward_and_cp_through_the_proxy() {
    let env = ProxyEnv::start("proxy-streams").await;
    let alice = env.kubeconfig("alice", &env.token_for("alice", "alice-pass").await);
    let node = env.spoke.test_node().expect("test node");
    let pod = node.pod();

    // logs -f: lines arrive as they are written, not when the stream ends.
    node.write_container_log("first line\n").expect("log");
    let mut follow = spawn_kubectl(&env, &alice, &["logs", "-f", pod], &[]);
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    read_until(&mut lines, "first line").await;
    node.write_container_log("first line\nsecond line\n")
        .expect("log");
    read_until(&mut lines, "second line").await;
    drop(follow);

    // watch: an object created after the watch started arrives on it.
    let mut watch = spawn_kubectl(
        &env,
        &alice,
        &["get", "configmaps", "--watch", "-o", "name"],
        &[],
    );
    let mut events = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\n";
    let out = env
        .kubectl(&alice, &["apply", "-f", "-"], &[], Some(cm))
        .await;
    assert!(out.success(), "apply: {}", out.stderr);
    read_until(&mut events, "configmap/watched").await;
    drop(watch);

    // attach -i (the test node attaches `cat`).
    let out = env
        .kubectl(&alice, &["attach", "-i", pod], &[], Some("attached\n"))
        .await;
    assert!(
        out.stdout.contains("attached"),
        "attach: {} / {}",
        out.stdout,
        out.stderr
    );

    // port-forward, then HTTP through it, over WebSocket and over SPDY.
    let server = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let remote = server.local_addr().expect("addr").port();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut sock, _)) = server.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\nfrom the pod")
                .await;
        }
    });
    for (transport, extra) in [
        ("websocket", &[][..]),
        ("spdy", &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]),
    ] {
        let local = tether_e2e::free_port().expect("port");
        let mapping = format!("{local}:{remote}");
        let mut pf = spawn_kubectl(&env, &alice, &["port-forward", pod, &mapping], extra);
        let mut lines = BufReader::new(pf.stdout.take().expect("stdout")).lines();
        read_until(&mut lines, "Forwarding from").await;
        let body = reqwest::get(format!("http://127.0.0.1:{local}/"))
            .await
            .unwrap_or_else(|e| panic!("GET through port-forward over {transport}: {e}"))
            .text()
            .await
            .expect("body");
        assert_eq!(body, "from the pod", "port-forward over {transport}");
        drop(pf);
    }

    // cp: a tar stream over exec, into a directory of this test on the node's host.
    let src = env.login.dir().path().join("to-copy.txt");
    std::fs::write(&src, "copied through the proxy\n").expect("write");
    let dest_dir = env.login.dir().subdir("cp-target").expect("dir");
    let target = format!("{pod}:{}", dest_dir.join("copied.txt").display());
    let out = env
        .kubectl(
            &alice,
            &["cp", &src.display().to_string(), &target],
            &[],
            None,
        )
        .await;
    assert!(out.success(), "cp: {}", out.stderr);
    let copied = std::fs::read_to_string(dest_dir.join("copied.txt")).expect("copied file");
    assert_eq!(copied, "copied through the proxy\n");
}
