//! kubectl verbs, exec over WebSocket and SPDY, 401s, smuggled impersonation and `--as`.

use tether_common::time::{Clock as _, SystemClock};
use tether_common::token::{Algorithm, Claims, SigningKey};

use super::env::{ProxyEnv, SPOKE};
use crate::hub::support::{hub_cmd, hub_flags};

const SPDY: &[(&str, &str)] = &[
    ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false"),
    ("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_through_the_proxy_follows_rbac_and_streams() {
    let env = ProxyEnv::start("proxy-kubectl").await;
    let alice = env.kubeconfig("alice", &env.token_for("alice", "alice-pass").await);
    let bob = env.kubeconfig("bob", &env.token_for("bob", "bob-pass").await);
    let pod = env.spoke.test_pod().expect("test pod");
    let pod_name = pod.split('/').nth(1).expect("ns/name");

    // get, apply, delete, auth can-i — as the IdP groups' RBAC says.
    let out = env.kubectl(&alice, &["get", "ns"], &[], None).await;
    assert!(
        out.success() && out.stdout.contains("kube-system"),
        "{}",
        out.stderr
    );
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-alice}\ndata: {k: v}\n";
    let out = env
        .kubectl(&alice, &["apply", "-f", "-"], &[], Some(cm))
        .await;
    assert!(out.success(), "apply: {}", out.stderr);
    let out = env
        .kubectl(
            &bob,
            &["get", "configmap", "from-alice", "-o", "jsonpath={.data.k}"],
            &[],
            None,
        )
        .await;
    assert_eq!(out.stdout, "v", "{}", out.stderr);
    let out = env
        .kubectl(&bob, &["delete", "configmap", "from-alice"], &[], None)
        .await;
    assert!(
        !out.success() && out.stderr.contains("bob@example.com"),
        "viewer deleted: {}",
        out.stderr
    );
    let out = env
        .kubectl(&alice, &["delete", "configmap", "from-alice"], &[], None)
        .await;
    assert!(out.success(), "delete: {}", out.stderr);
    for (kc, verb, want) in [
        (&alice, "delete", "yes"),
        (&bob, "list", "yes"),
        (&bob, "create", "no"),
    ] {
        let out = env
            .kubectl(kc, &["auth", "can-i", verb, "pods"], &[], None)
            .await;
        assert_eq!(out.stdout.trim(), want, "can-i {verb}: {}", out.stderr);
    }

    // exec over WebSocket (kubectl 1.35's default) and over SPDY; stdin; exit codes.
    for (transport, extra) in [("websocket", &[][..]), ("spdy", SPDY)] {
        let out = env
            .kubectl(
                &alice,
                &["exec", pod_name, "--", "echo", "hello"],
                extra,
                None,
            )
            .await;
        assert_eq!(
            out.stdout.trim(),
            "hello",
            "exec over {transport}: {}",
            out.stderr
        );
        let out = env
            .kubectl(
                &alice,
                &["exec", "-i", pod_name, "--", "cat"],
                extra,
                Some("from stdin\n"),
            )
            .await;
        assert_eq!(
            out.stdout, "from stdin\n",
            "exec -i over {transport}: {}",
            out.stderr
        );
        let out = env
            .kubectl(
                &alice,
                &["exec", pod_name, "--", "sh", "-c", "exit 3"],
                extra,
                None,
            )
            .await;
        assert_eq!(
            out.code(),
            Some(3),
            "exit code over {transport}: {}",
            out.stderr
        );
    }
    // A viewer may not exec.
    let out = env
        .kubectl(&bob, &["exec", pod_name, "--", "true"], &[], None)
        .await;
    assert!(!out.success(), "a viewer could exec");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_and_smuggled_identities_change_nothing() {
    let env = ProxyEnv::start("proxy-auth").await;
    let http = tether_e2e::http::tls_client(
        &std::fs::read_to_string(env.agent.proxy_ca_file()).expect("proxy CA"),
        None,
    )
    .expect("client");
    let url = format!("{}/api/v1/namespaces/default/secrets", env.proxy_url);
    let get = |token: Option<String>, headers: Vec<(&'static str, &'static str)>| {
        let mut req = http.get(&url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
    };

    // 401: no token; a token for another cluster; a key the hub never published.
    assert_eq!(get(None, vec![]).await.0, 401);
    let other = env
        .token_for_cluster("alice", "alice-pass", "spoke-1")
        .await;
    assert_eq!(
        get(Some(other), vec![]).await.0,
        401,
        "a token for another cluster"
    );
    let stranger = SigningKey::generate(Algorithm::Es256).expect("key");
    let forged = stranger
        .sign(&Claims::mint(
            env.login.hub.url(),
            format!("tether:cluster:{SPOKE}"),
            "x",
            "mallory",
            vec!["k8s-admins".into()],
            None,
            SystemClock.now(),
            std::time::Duration::from_secs(60),
        ))
        .expect("sign");
    assert_eq!(get(Some(forged), vec![]).await.0, 401, "unknown kid");

    // bob (a viewer) may not read secrets; smuggling impersonation headers changes nothing:
    // either the proxy refuses the impersonation (403) or the apiserver still sees bob.
    let bob = env.token_for("bob", "bob-pass").await;
    let (status, body) = get(Some(bob.clone()), vec![]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("bob@example.com"), "{body}");
    for smuggled in [
        vec![("Impersonate-User", "admin")],
        vec![("impersonate-group", "system:masters")],
        vec![
            ("Impersonate-Group", "k8s-admins"),
            ("Impersonate-Group", "system:masters"),
        ],
        vec![("Impersonate-Extra-scopes", "everything")],
        vec![
            ("IMPERSONATE-USER", "admin"),
            ("Impersonate-User", "alice@example.com"),
        ],
    ] {
        let (status, body) = get(Some(bob.clone()), smuggled.clone()).await;
        assert!(
            status == 403 || status == 400,
            "{smuggled:?}: {status} {body}"
        );
        assert!(
            !body.contains("\"items\""),
            "{smuggled:?} let bob read secrets: {body}"
        );
    }
    // A second Authorization header: refused outright.
    let resp = http
        .get(&url)
        .header("authorization", format!("Bearer {bob}"))
        .header("authorization", "Bearer other")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);

    // --as works only for a user the spoke lets impersonate (alice: cluster-admin).
    let alice = env.kubeconfig("alice", &env.token_for("alice", "alice-pass").await);
    let bobkc = env.kubeconfig("bob", &bob);
    let out = env
        .kubectl(&alice, &["get", "pods", "--as", "someone"], &[], None)
        .await;
    assert!(
        !out.success() && out.stderr.contains("\"someone\""),
        "alice --as someone: the apiserver should judge 'someone': {}",
        out.stderr
    );
    let out = env
        .kubectl(
            &bobkc,
            &["get", "pods", "--as", "alice@example.com"],
            &[],
            None,
        )
        .await;
    assert!(!out.success(), "bob impersonated alice");
    assert!(
        out.stderr.to_lowercase().contains("impersonate"),
        "{}",
        out.stderr
    );

    // A token signed by a key the hub then dropped stops working at the proxy.
    let alice_token = env.token_for("alice", "alice-pass").await;
    assert_eq!(get(Some(alice_token.clone()), vec![]).await.0, 200);
    let flags = hub_flags(&env.login.hub);
    let mut args = vec!["keys", "rotate", "--emergency"];
    args.extend(flags.iter().map(String::as_str));
    let out = hub_cmd(&args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut refused = false;
    for _ in 0..100 {
        if get(Some(alice_token.clone()), vec![]).await.0 == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        refused,
        "a token signed by a dropped key still works after 20 s"
    );
}

/// A token past its `exp` plus the leeway is refused with 401 and a reason; HTTP/2 from the
/// client works end to end. The hub here mints 4-second tokens and tells agents to allow
/// 1 s of skew (`keys.clock_skew`), so expiry is observed in seconds, not minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_gets_401_and_http2_clients_are_served() {
    let env = ProxyEnv::start_with_tokens("proxy-expiry", "4s", "1s").await;
    let http = tether_e2e::http::tls_client(
        &std::fs::read_to_string(env.agent.proxy_ca_file()).expect("proxy CA"),
        None,
    )
    .expect("client");
    let url = format!("{}/api/v1/namespaces/default/configmaps", env.proxy_url);
    let token = env.token_for("alice", "alice-pass").await;
    let issued = std::time::Instant::now();
    let resp = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.version(),
        reqwest::Version::HTTP_2,
        "the proxy negotiates HTTP/2 with clients that offer it"
    );

    // exp (4 s) + leeway (1 s) + a margin; bounded.
    tokio::time::sleep(std::time::Duration::from_secs(7).saturating_sub(issued.elapsed())).await;
    let resp = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token expired"), "{body}");
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
}
