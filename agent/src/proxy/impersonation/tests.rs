use std::sync::{Arc, Mutex};

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

fn alice() -> Identity {
    Identity {
        username: "alice".to_owned(),
        groups: vec!["dev".to_owned()],
        sid: Some("sess-1".to_owned()),
        issuer: "https://hub.example".to_owned(),
        subject: "upstream|123".to_owned(),
    }
}

fn attributes(resource: &str, name: &str) -> Value {
    serde_json::to_value(review(&alice(), resource, name).spec.resource_attributes).unwrap()
}

#[test]
fn reviews_ask_about_the_authenticated_user() {
    let sar = serde_json::to_value(review(&alice(), USERS, "bob")).unwrap();
    assert_eq!(sar["spec"]["user"], "alice");
    assert_eq!(sar["spec"]["groups"], json!(["dev"]));
    assert_eq!(sar["spec"]["extra"]["tether.dev/sid"], json!(["sess-1"]));
    assert_eq!(
        sar["spec"]["resourceAttributes"],
        json!({"verb": "impersonate", "group": "", "resource": "users", "name": "bob"})
    );
}

#[test]
fn review_attributes() {
    let cases = [
        (
            GROUPS,
            "ops",
            json!({"verb": "impersonate", "group": "", "resource": "groups", "name": "ops"}),
        ),
        (
            UIDS,
            "42",
            json!({"verb": "impersonate", "group": "", "resource": "uids", "name": "42"}),
        ),
        (
            "userextras/scopes",
            "view",
            json!({"verb": "impersonate", "group": "", "resource": "userextras", "subresource": "scopes", "name": "view"}),
        ),
        (
            SERVICEACCOUNTS,
            "ns/sa",
            json!({"verb": "impersonate", "group": "", "resource": "serviceaccounts", "namespace": "ns", "name": "sa"}),
        ),
    ];
    for (resource, name, want) in cases {
        assert_eq!(attributes(resource, name), want, "{resource} {name}");
    }
}

/// A kube client whose API server answers every SubjectAccessReview with `answer`, or
/// with `status` when it is not 201; the posted reviews are recorded.
fn client(status: u16, answer: Value) -> (kube::Client, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let service = tower::service_fn(move |req: Request<Body>| {
        let record = record.clone();
        let answer = answer.clone();
        async move {
            assert_eq!(req.method(), http::Method::POST);
            assert_eq!(
                req.uri().path(),
                "/apis/authorization.k8s.io/v1/subjectaccessreviews"
            );
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let posted: Value = serde_json::from_slice(&body).unwrap();
            record.lock().unwrap().push(posted.clone());
            let mut reply = posted;
            reply["status"] = answer;
            let body = if status == 201 {
                reply
            } else {
                json!({"kind": "Status", "code": status})
            };
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    (kube::Client::new(service, "default"), seen)
}

#[tokio::test]
async fn sar_check_follows_the_answer() {
    let cases = [
        (json!({"allowed": true}), true),
        (json!({"allowed": false}), false),
        (json!({"allowed": false, "denied": true}), false),
        (json!({"allowed": true, "denied": true}), false),
    ];
    for (answer, want) in cases {
        let (client, seen) = client(201, answer.clone());
        let check = SarCheck::new(client);
        let got = check.allowed(&alice(), (GROUPS, "ops")).await;
        assert_eq!(got, Ok(want), "{answer}");
        let posted = seen.lock().unwrap().clone();
        assert_eq!(posted.len(), 1);
        assert_eq!(
            posted[0]["spec"]["resourceAttributes"]["resource"],
            "groups"
        );
        assert_eq!(posted[0]["spec"]["user"], "alice");
    }
}

#[tokio::test]
async fn sar_errors_refuse() {
    let (client, _) = client(403, json!({}));
    let got = SarCheck::new(client)
        .allowed(&alice(), (USERS, "bob"))
        .await;
    assert!(
        matches!(got, Err(ProxyError::ServiceUnavailable(_))),
        "{got:?}"
    );
}
