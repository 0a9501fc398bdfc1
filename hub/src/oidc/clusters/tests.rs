//! The people policy at the hub's edges: `GET /api/v1/clusters` (filtering by policy,
//! state and proxy URL; 401s) and token exchange refused by policy.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::http::test_support::expect_json;
use crate::oidc::test_support::{CLI, CLI_REDIRECT, Hub, Revalidation, WEB, WEB_SECRET, payload};
use crate::policy::{AccessConfig, PeopleAccess};
use crate::registry::{AgentReport, ClusterName};
use crate::sessions::{REASON_LOGOUT, SessionId};
use crate::store::join_tokens::IssuedCert;
use crate::store::{AuditOutcome, AuditRecord, JoinOutcome};

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

/// `dev` reaches clusters labelled `env: dev`; `ops` reaches `prod-eu` by name.
fn policy() -> PeopleAccess {
    let config: AccessConfig = crate::config::parse_yaml(
        r#"
rules:
  - groups: [dev]
    clusters: { labels: { env: dev } }
  - groups: [ops]
    clusters: { names: [prod-eu] }
"#,
    )
    .unwrap();
    config.validate().unwrap();
    PeopleAccess::from_config(Some(&config))
}

/// Registers `name` with `labels`; joined with `proxy_url` when given (empty = joined but
/// no heartbeat yet), pending otherwise.
async fn cluster(hub: &Hub, name: &str, labels: &[(&str, &str)], proxy_url: Option<&str>) {
    let name = ClusterName::parse(name).unwrap();
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let now = hub.provider.now();
    let audit = AuditRecord::new(
        now.as_secs(),
        "cluster.added",
        "test",
        AuditOutcome::Success,
    );
    let (_, token_id, _, _) = hub
        .store
        .add_cluster_with_token(&name, &labels, Duration::from_secs(600), now, &audit)
        .await
        .unwrap();
    let Some(proxy_url) = proxy_url else {
        return;
    };
    let cert = IssuedCert {
        serial: format!("{:x}", name.as_str().len()),
        not_after: now.saturating_add(Duration::from_secs(86_400)),
    };
    let joined = hub
        .store
        .complete_join(&token_id, &name, &cert, "v1", now, &audit)
        .await
        .unwrap();
    assert_eq!(joined, JoinOutcome::Joined);
    if !proxy_url.is_empty() {
        let report = AgentReport {
            agent_version: "v1".to_owned(),
            proxy_url: proxy_url.to_owned(),
            proxy_ca_pem: CA.to_owned(),
        };
        assert!(
            hub.store
                .record_heartbeat(&name, &report, now)
                .await
                .unwrap()
        );
    }
}

/// The registry every listing test uses, besides the harness's pending `prod-eu`, `dev-1`.
async fn registry(hub: &Hub) {
    cluster(
        hub,
        "spoke-2",
        &[("env", "dev")],
        Some("https://127.0.0.1:4402"),
    )
    .await;
    cluster(
        hub,
        "spoke-1",
        &[("env", "dev")],
        Some("https://127.0.0.1:4401"),
    )
    .await;
    cluster(
        hub,
        "spoke-prod",
        &[("env", "prod")],
        Some("https://127.0.0.1:4403"),
    )
    .await;
    // Joined without a heartbeat (no proxy URL yet), pending, removed: never listed.
    cluster(hub, "spoke-quiet", &[("env", "dev")], Some("")).await;
    cluster(hub, "spoke-pending", &[("env", "dev")], None).await;
    cluster(
        hub,
        "spoke-gone",
        &[("env", "dev")],
        Some("https://127.0.0.1:4404"),
    )
    .await;
    let now = hub.provider.now();
    hub.store
        .mark_cluster_removed(
            &ClusterName::parse("spoke-gone").unwrap(),
            now,
            &AuditRecord::new(
                now.as_secs(),
                "cluster.removed",
                "test",
                AuditOutcome::Success,
            ),
        )
        .await
        .unwrap();
}

async fn list(hub: &Hub, authorization: Option<&str>) -> Response {
    let mut request = Request::get(crate::oidc::routes::CLUSTERS);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    hub.send(request.body(Body::empty()).unwrap()).await
}

async fn unauthorized(response: Response) -> String {
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer error="invalid_token""#
    );
    let body = expect_json(response, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "invalid_token");
    body["error_description"].as_str().unwrap().to_owned()
}

fn entry(name: &str, env: &str, port: u16) -> Value {
    json!({
        "name": name,
        "labels": { "env": env },
        "proxy_url": format!("https://127.0.0.1:{port}"),
        "proxy_ca_pem": CA,
    })
}

async fn exchange(hub: &Hub, client: &str, access_token: &str, audience: &str) -> Response {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", access_token),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("audience", audience),
    ];
    if client == WEB {
        hub.post_form("/token", &form, Some((WEB, WEB_SECRET)))
            .await
    } else {
        form.push(("client_id", client));
        hub.post_form("/token", &form, None).await
    }
}

/// A refresh of `tetherctl`'s tokens (after the access token expired).
async fn refresh(hub: &Hub, refresh_token: &str) -> Value {
    let response = hub
        .post_form(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLI),
            ],
            None,
        )
        .await;
    expect_json(response, StatusCode::OK).await
}

#[tokio::test]
async fn listing_follows_policy_state_and_proxy_url() {
    let hub = Hub::with_access(policy()).await;
    registry(&hub).await;
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap();

    let response = list(&hub, Some(&format!("Bearer {access}"))).await;
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = expect_json(response, StatusCode::OK).await;
    // Groups [dev]: the joined, announced `env: dev` clusters, by name.
    assert_eq!(
        body,
        json!({ "clusters": [entry("spoke-1", "dev", 4401), entry("spoke-2", "dev", 4402)] })
    );

    let audit = hub.audit("cluster.listed_by_user").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].record.actor, "okta|alice");
    assert_eq!(
        audit[0].record.subject.as_deref(),
        payload(access)["sid"].as_str()
    );
    assert_eq!(audit[0].record.details["username"], "alice@example.com");
    assert_eq!(audit[0].record.details["count"], 2);
}

#[tokio::test]
async fn listing_follows_the_sessions_current_groups() {
    let hub = Hub::with_access(policy()).await;
    registry(&hub).await;
    let upstream = hub.upstream.clone().unwrap();
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;

    // The IdP now says [ops, dev-lead]: once re-validated, the session lists other clusters
    // (prod-eu is registered but pending, so nothing of ops' is listed).
    *upstream.revalidation.lock().unwrap() =
        Revalidation::Groups(vec!["ops".into(), "dev-lead".into()]);
    hub.advance(Duration::from_secs(301)).await;
    let report = crate::oidc::revalidate::sweep(&hub.provider).await.unwrap();
    assert_eq!(report.confirmed, 1, "{report:?}");
    let tokens = refresh(&hub, tokens["refresh_token"].as_str().unwrap()).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(payload(&access)["groups"], json!(["ops", "dev-lead"]));
    let body = expect_json(
        list(&hub, Some(&format!("Bearer {access}"))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body, json!({ "clusters": [] }));
}

#[tokio::test]
async fn listing_without_policy_shows_every_reachable_cluster() {
    let hub = Hub::new().await;
    registry(&hub).await;
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap();
    let body = expect_json(
        list(&hub, Some(&format!("Bearer {access}"))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        body,
        json!({ "clusters": [
            entry("spoke-1", "dev", 4401),
            entry("spoke-2", "dev", 4402),
            entry("spoke-prod", "prod", 4403),
        ] })
    );
}

#[tokio::test]
async fn listing_refusals_are_invalid_token() {
    let hub = Hub::with_access(policy()).await;
    registry(&hub).await;
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();

    assert!(
        unauthorized(list(&hub, None).await)
            .await
            .contains("Bearer")
    );
    assert!(
        !unauthorized(list(&hub, Some("Bearer garbage")).await)
            .await
            .is_empty()
    );
    assert!(
        !unauthorized(list(&hub, Some(&format!("Basic {access}"))).await)
            .await
            .is_empty()
    );
    // An ID token is not an access token.
    unauthorized(list(&hub, Some(&format!("Bearer {id_token}"))).await).await;

    // The session ends: the still-unexpired access token no longer lists anything.
    let sid = SessionId::new(payload(&access)["sid"].as_str().unwrap());
    let now = hub.provider.now();
    hub.provider
        .sessions()
        .revoke(&sid, REASON_LOGOUT, now)
        .await
        .unwrap();
    let description = unauthorized(list(&hub, Some(&format!("Bearer {access}"))).await).await;
    assert!(description.contains("session has ended"), "{description}");
    assert!(description.contains("tetherctl login"), "{description}");

    // Expired access token.
    let hub = Hub::new().await;
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    hub.advance(Duration::from_secs(301 + 30)).await;
    unauthorized(list(&hub, Some(&format!("Bearer {access}"))).await).await;
    assert!(hub.audit("cluster.listed_by_user").await.is_empty());
}

#[tokio::test]
async fn listings_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let hub = Hub::new().await;
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    {
        let _guard = metrics::set_default_local_recorder(&recorder);
        list(&hub, Some(&format!("Bearer {access}"))).await;
        list(&hub, None).await;
    }
    let text = handle.render();
    assert!(
        text.contains(r#"tether_hub_cluster_listings_total{outcome="success"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tether_hub_cluster_listings_total{outcome="invalid_token"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn exchange_is_refused_by_policy() {
    let hub = Hub::with_access(policy()).await;
    registry(&hub).await;
    let upstream = hub.upstream.clone().unwrap();
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();

    // [dev] reaches env=dev (even a pending cluster: the registry, not the policy, decides
    // what exists) ...
    let body = expect_json(
        exchange(&hub, CLI, &access, "spoke-pending").await,
        StatusCode::OK,
    )
    .await;
    assert!(body["access_token"].as_str().is_some());
    // ... but not prod-eu.
    let response = exchange(&hub, CLI, &access, "prod-eu").await;
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = expect_json(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["error"], "invalid_target");
    assert_eq!(
        body["error_description"],
        "your groups do not grant access to cluster prod-eu"
    );
    let audit = hub.audit("token.exchange").await;
    let denied: Vec<_> = audit
        .iter()
        .filter(|r| r.record.outcome == AuditOutcome::Denied)
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].record.details["cluster"], "prod-eu");
    assert_eq!(
        denied[0].record.reason.as_deref(),
        Some("invalid_target: your groups do not grant access to cluster prod-eu")
    );

    // The client check still comes first: webapp may exchange only for prod-*.
    let web = hub
        .tokens(WEB, crate::oidc::test_support::WEB_REDIRECT)
        .await;
    let web_access = web["access_token"].as_str().unwrap();
    let body = expect_json(
        exchange(&hub, WEB, web_access, "spoke-1").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"], "invalid_target");
    assert_eq!(
        body["error_description"],
        "this client may not obtain tokens for this cluster"
    );

    // The policy reads the session's current groups: once the IdP says [ops], the same
    // access token reaches prod-eu and no longer the dev clusters.
    *upstream.revalidation.lock().unwrap() = Revalidation::Groups(vec!["ops".into()]);
    hub.advance(Duration::from_secs(301)).await;
    let report = crate::oidc::revalidate::sweep(&hub.provider).await.unwrap();
    assert_eq!(report.confirmed, 2, "{report:?}");
    let tokens = refresh(&hub, tokens["refresh_token"].as_str().unwrap()).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let response = exchange(&hub, CLI, &access, "prod-eu").await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = exchange(&hub, CLI, &access, "spoke-1").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
