use super::*;
use crate::log_fields::tests::{Buffer, agent_text};

#[test]
fn verbs() {
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        ("GET", "/api/v1/namespaces/default/pods", None, "list"),
        ("GET", "/api/v1/namespaces/default/pods/web", None, "get"),
        (
            "GET",
            "/api/v1/namespaces/default/pods",
            Some("watch=true"),
            "watch",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods",
            Some("labelSelector=a&watch=1"),
            "watch",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods",
            Some("watch=false"),
            "list",
        ),
        (
            "GET",
            "/api/v1/watch/namespaces/default/pods",
            None,
            "watch",
        ),
        ("GET", "/api/v1/pods", None, "list"),
        ("GET", "/api/v1/nodes/n1", None, "get"),
        ("GET", "/api/v1/namespaces", None, "list"),
        ("GET", "/api/v1/namespaces/default", None, "get"),
        ("DELETE", "/api/v1/namespaces/default", None, "delete"),
        ("HEAD", "/api/v1/namespaces/default/pods/web", None, "get"),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web/log",
            Some("follow=true"),
            "get",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web/exec",
            Some("command=sh&stdin=true"),
            "exec",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/web/exec",
            Some("command=sh"),
            "exec",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web/attach",
            None,
            "attach",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods/web/portforward",
            None,
            "portforward",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/services/web/proxy/metrics",
            None,
            "proxy",
        ),
        ("POST", "/api/v1/namespaces/default/pods", None, "create"),
        ("PUT", "/api/v1/namespaces/default/pods/web", None, "update"),
        (
            "PUT",
            "/api/v1/namespaces/default/pods/web/status",
            None,
            "update",
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web",
            None,
            "patch",
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            None,
            "patch",
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/default/deployments/web",
            None,
            "delete",
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/default/deployments",
            None,
            "deletecollection",
        ),
        (
            "GET",
            "/apis/apps/v1/deployments",
            Some("watch=true"),
            "watch",
        ),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            None,
            "create",
        ),
        ("GET", "/apis/apps/v1", None, "get"),
        ("GET", "/api", None, "get"),
        ("GET", "/version", None, "get"),
        ("GET", "/healthz", Some("verbose"), "get"),
        ("POST", "/openapi/v3", None, "post"),
        ("HEAD", "/readyz", None, "head"),
        ("OPTIONS", "/api/v1/pods", None, "unknown"),
        ("TRACE", "/version", None, "unknown"),
    ];
    for &(method, path, query, verb) in cases {
        let method: Method = method.parse().unwrap();
        assert_eq!(
            k8s_verb(&method, path, query),
            verb,
            "{method} {path}?{query:?}"
        );
    }
}

#[test]
fn path_with_query_in_it_is_handled() {
    assert_eq!(
        k8s_verb(&Method::GET, "/api/v1/pods?watch=true", Some("watch=true")),
        "watch"
    );
    assert_eq!(k8s_verb(&Method::GET, "/api/v1/pods/x?y=z", None), "get");
}

#[test]
fn credentials_in_the_query_are_redacted() {
    let cases = [
        ("/api/v1/pods", "/api/v1/pods"),
        ("/api/v1/pods?watch=true", "/api/v1/pods?watch=true"),
        (
            "/api/v1/pods?access_token=eyJ.secret.sig&watch=1",
            "/api/v1/pods?access_token=REDACTED&watch=1",
        ),
        (
            "/x?a=1&Token=abc&id_token=d",
            "/x?a=1&Token=REDACTED&id_token=REDACTED",
        ),
        ("/x?refresh_token", "/x?refresh_token=REDACTED"),
        ("/exec?command=ls&command=-l", "/exec?command=ls&command=-l"),
        ("/x?tokens=1&my_token=2", "/x?tokens=1&my_token=2"),
        ("/x?", "/x?"),
    ];
    for (path, redacted) in cases {
        assert_eq!(redact_path(path), redacted);
    }
}

#[test]
fn record_does_not_panic() {
    record(&AuditEvent {
        user: "alice".to_owned(),
        groups: vec!["dev".to_owned(), "ops".to_owned()],
        impersonated_by: None,
        sid: Some("sess-1".to_owned()),
        verb: "get",
        path: "/api/v1/pods?access_token=secret".to_owned(),
        status: 200,
        duration: Duration::from_millis(12),
        upgraded: false,
    });
}

#[test]
fn record_is_one_json_line_without_the_token() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(buffer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        record(&AuditEvent {
            user: "bob".to_owned(),
            groups: vec!["ops".to_owned()],
            impersonated_by: Some("alice".to_owned()),
            sid: Some("sess-1".to_owned()),
            verb: "exec",
            path: "/api/v1/namespaces/a/pods/p/exec?command=sh&access_token=eyJhbGc.secret"
                .to_owned(),
            status: 101,
            duration: Duration::from_secs(3),
            upgraded: true,
        });
    });
    let out = buffer.text();
    assert!(!out.contains("eyJhbGc"), "{out}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["target"], TARGET);
    let fields = &line["fields"];
    assert_eq!(fields["user"], "bob");
    assert_eq!(fields["impersonated_by"], "alice");
    assert_eq!(fields["verb"], "exec");
    assert_eq!(fields["status"], 101);
    assert_eq!(fields["upgraded"], true);
    assert_eq!(fields["duration_ms"], 3000);
    assert_eq!(
        fields["path"],
        "/api/v1/namespaces/a/pods/p/exec?command=sh&access_token=REDACTED"
    );
}

#[test]
fn text_fields_are_quoted_so_a_name_cannot_forge_a_line() {
    let out = agent_text(|| {
        record(&AuditEvent {
            user: "eve\n2026-01-01T00:00:00Z  INFO tether_agent::audit: user=admin".to_owned(),
            groups: vec!["ops team".to_owned(), "dev".to_owned()],
            impersonated_by: None,
            sid: Some("sess-1".to_owned()),
            verb: "get",
            path: "/api/v1/pods".to_owned(),
            status: 200,
            duration: Duration::from_millis(1),
            upgraded: false,
        });
    });
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(
            r#"user="eve\n2026-01-01T00:00:00Z  INFO tether_agent::audit: user=admin" groups="ops team,dev""#
        ),
        "{out}"
    );
    assert!(
        out.contains(
            r#"sid="sess-1" verb="get" path="/api/v1/pods" status=200 duration_ms=1 upgraded=false"#
        ),
        "{out}"
    );
}
