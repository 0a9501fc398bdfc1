//! The machine token exchange through the whole router (in-process OIDC harness), with the
//! fake TokenReview API and a trusted issuer whose JWKS is served in-process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tether_common::time::{Clock, UnixTime};
use tether_common::token::{Algorithm, Jwks, KeyId, SigningKey};

use crate::config::parse_yaml;
use crate::http::test_support::json as body_json;
use crate::machine::audit_kind::MACHINE_TOKEN_EXCHANGE;
use crate::machine::config::MachineConfig;
use crate::machine::test_support::{FakeReviewer, sa_token};
use crate::machine::{Machine, TokenReviewer};
use crate::oidc::exchange::TOKEN_TYPE_JWT;
use crate::oidc::test_support::{CLI, Hub, payload};
use crate::registry::ClusterName;

const ARGOCD: &str = "system:serviceaccount:argocd:argocd-application-controller";
const DEPLOYER: &str = "system:serviceaccount:ci:deployer";
const POLICIES: &str = r#"
policies:
  - name: argocd
    serviceaccount: { namespace: argocd, name: argocd-application-controller }
    clusters: { names: [prod-eu] }
    identity: { username: "tether:argocd", groups: [gitops] }
  - name: deployer-dev
    serviceaccount: { namespace: ci, name: deployer }
    clusters: { labels: { env: dev } }
    identity: { username: "ci:deployer" }
"#;

/// A test hub with machine tokens over `fake`, and a `dev-2` cluster labelled `env: dev`.
async fn machine_hub(yaml: &str, fake: &Arc<FakeReviewer>) -> Hub {
    let hub = Hub::new().await;
    hub.store
        .add_cluster(
            &ClusterName::parse("dev-2").unwrap(),
            &BTreeMap::from([("env".to_owned(), "dev".to_owned())]),
            hub.clock.now(),
        )
        .await
        .unwrap();
    let config: MachineConfig = parse_yaml(yaml).unwrap();
    config.validate(true).unwrap();
    let reviewer = Arc::clone(fake) as Arc<dyn TokenReviewer>;
    let machine = Machine::new(&config, Some(reviewer)).unwrap();
    assert!(hub.provider.set_machine(Arc::new(machine)));
    hub
}

/// The machine exchange audit records, newest first.
async fn audit(hub: &Hub) -> Vec<crate::store::AuditRecord> {
    hub.audit(MACHINE_TOKEN_EXCHANGE)
        .await
        .into_iter()
        .map(|stored| stored.record)
        .collect()
}

async fn exchange(hub: &Hub, token: &str, audience: &str) -> (StatusCode, Value) {
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("client_id", CLI),
        ("subject_token_type", TOKEN_TYPE_JWT),
        ("subject_token", token),
        ("audience", audience),
    ];
    let response = hub.post_form("/token", &form, None).await;
    let status = response.status();
    (status, body_json(response).await)
}

fn valid_sa_token(hub: &Hub, namespace: &str, name: &str) -> String {
    sa_token(
        namespace,
        name,
        hub.clock.now().saturating_add(Duration::from_secs(3600)),
    )
}

/// Asserts an OAuth error and that its description does not leak `token`.
fn assert_error(
    answer: &(StatusCode, Value),
    status: StatusCode,
    code: &str,
    says: &str,
    token: &str,
) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains(says),
        "{description:?} should say {says:?}"
    );
    assert!(
        !body.to_string().contains(token),
        "the subject token leaked: {body}"
    );
}

#[tokio::test]
async fn a_serviceaccount_token_becomes_a_60s_cluster_token() {
    let fake = Arc::new(FakeReviewer::default());
    let hub = machine_hub(POLICIES, &fake).await;
    let token = valid_sa_token(&hub, "argocd", "argocd-application-controller");
    fake.accept(&token, ARGOCD, &[]);

    let (status, body) = exchange(&hub, &token, "prod-eu").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["issued_token_type"], TOKEN_TYPE_JWT);
    let cluster_token = body["access_token"].as_str().unwrap();
    let claims = hub
        .provider
        .verifier("tether:cluster:prod-eu")
        .verify(cluster_token, hub.clock.now())
        .expect("signed by the hub for the cluster audience");
    assert_eq!(
        claims.sub,
        "serviceaccount:argocd/argocd-application-controller"
    );
    assert_eq!(claims.username, "tether:argocd");
    assert_eq!(claims.groups, vec!["gitops".to_owned()]);
    assert_eq!(claims.sid, None);
    assert_eq!(claims.exp.as_secs() - claims.iat.as_secs(), 60);
    assert!(payload(cluster_token).get("sid").is_none());

    // The second request reuses the review.
    let (status, _) = exchange(&hub, &token, "prod-eu").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fake.calls(), 1);

    let audit = audit(&hub).await;
    assert_eq!(audit.len(), 2);
    let record = &audit[0];
    assert_eq!(record.outcome.as_str(), "success");
    assert_eq!(
        record.actor,
        "serviceaccount:argocd/argocd-application-controller"
    );
    assert_eq!(record.subject.as_deref(), Some("prod-eu"));
    assert_eq!(record.details["policy"], "argocd");
    assert_eq!(
        record.details["workload"],
        "serviceaccount argocd/argocd-application-controller"
    );
    assert_eq!(record.details["username"], "tether:argocd");
    assert_eq!(record.details["pod"][0], "argocd-application-controller-0");
    assert!(!serde_json::to_string(&audit).unwrap().contains(&token));

    // Once the hub cluster's issuer is known, its refusals are not blamed on the issuer.
    let unknown = valid_sa_token(&hub, "argocd", "deleted");
    let answer = exchange(&hub, &unknown, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "TokenReview: [invalid bearer token",
        &unknown,
    );
    assert!(
        !answer.1.to_string().contains("trusted issuer"),
        "{}",
        answer.1
    );
}

#[tokio::test]
async fn refusals_carry_the_right_codes_and_clear_reasons() {
    let fake = Arc::new(FakeReviewer::default());
    let hub = machine_hub(POLICIES, &fake).await;
    let argocd = valid_sa_token(&hub, "argocd", "argocd-application-controller");
    fake.accept(&argocd, ARGOCD, &[]);

    // Not a token the hub cluster knows (deleted ServiceAccount, bad signature...).
    let unknown = valid_sa_token(&hub, "argocd", "deleted");
    let answer = exchange(&hub, &unknown, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "TokenReview: [invalid bearer token",
        &unknown,
    );
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "its issuer \"https://kubernetes.default.svc\" is not a trusted issuer",
        &unknown,
    );

    // Another ServiceAccount: no policy.
    let server = valid_sa_token(&hub, "argocd", "argocd-server");
    fake.accept(&server, "system:serviceaccount:argocd:argocd-server", &[]);
    let answer = exchange(&hub, &server, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "no machine policy grants serviceaccount argocd/argocd-server",
        &server,
    );

    // A cluster outside the policy, an unknown cluster, not a cluster name.
    let answer = exchange(&hub, &argocd, "dev-1").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "no machine policy grants serviceaccount argocd/argocd-application-controller access to cluster dev-1",
        &argocd,
    );
    let answer = exchange(&hub, &argocd, "nowhere-1").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "unknown cluster",
        &argocd,
    );
    let answer = exchange(&hub, &argocd, "Not_A_Cluster").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "not a cluster name",
        &argocd,
    );

    // Expired: refused without asking the apiserver.
    let calls = fake.calls();
    let expired = sa_token(
        "argocd",
        "argocd-application-controller",
        hub.clock.now().saturating_sub(Duration::from_secs(60)),
    );
    fake.accept(&expired, ARGOCD, &[]);
    let answer = exchange(&hub, &expired, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "expired",
        &expired,
    );
    assert_eq!(fake.calls(), calls);

    // A user of the hub cluster that is not a ServiceAccount.
    let user = valid_sa_token(&hub, "x", "alice");
    fake.accept(&user, "alice", &[]);
    let answer = exchange(&hub, &user, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "not a ServiceAccount",
        &user,
    );

    // The hub cluster is unreachable.
    fake.unreachable.store(true, Ordering::SeqCst);
    let fresh = valid_sa_token(&hub, "argocd", "fresh");
    let answer = exchange(&hub, &fresh, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "hub cluster",
        &fresh,
    );
    fake.unreachable.store(false, Ordering::SeqCst);

    let audit = audit(&hub).await;
    assert_eq!(audit.len(), 8);
    let outcomes: Vec<&str> = audit.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes[0], "failure",
        "unreachable is a failure, not a decision"
    );
    assert!(outcomes[1..].iter().all(|o| *o == "denied"), "{outcomes:?}");
    let no_policy = &audit[6];
    assert_eq!(no_policy.actor, "serviceaccount:argocd/argocd-server");
    assert!(
        no_policy
            .reason
            .as_deref()
            .unwrap()
            .contains("no machine policy")
    );
    let outside = &audit[5];
    assert_eq!(outside.subject.as_deref(), Some("dev-1"));
    assert!(audit.iter().all(|r| r.reason.is_some()));
}

#[tokio::test]
async fn label_selectors_grant_matching_clusters_only() {
    let fake = Arc::new(FakeReviewer::default());
    let hub = machine_hub(POLICIES, &fake).await;
    let token = valid_sa_token(&hub, "ci", "deployer");
    fake.accept(&token, DEPLOYER, &[]);

    let (status, body) = exchange(&hub, &token, "dev-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "tether:cluster:dev-2");
    assert_eq!(claims["username"], "ci:deployer");
    assert_eq!(claims["groups"], json!([]));
    let answer = exchange(&hub, &token, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "access to cluster prod-eu",
        &token,
    );
}

#[tokio::test]
async fn without_a_machine_section_jwts_are_refused() {
    let hub = Hub::new().await;
    let token = sa_token(
        "argocd",
        "x",
        hub.clock.now().saturating_add(Duration::from_secs(600)),
    );
    let answer = exchange(&hub, &token, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "not enabled",
        &token,
    );
}

#[tokio::test]
async fn a_flood_of_one_token_is_one_review_through_the_router() {
    let fake = Arc::new(FakeReviewer::slow(Duration::from_millis(100)));
    let hub = Arc::new(machine_hub(POLICIES, &fake).await);
    let token = valid_sa_token(&hub, "argocd", "argocd-application-controller");
    fake.accept(&token, ARGOCD, &[]);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let hub = Arc::clone(&hub);
        let token = token.clone();
        tasks.spawn(async move { exchange(&hub, &token, "prod-eu").await.0 });
    }
    let statuses = tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
        .await
        .unwrap();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(fake.calls(), 1);
}

// ---- trusted issuers ----

/// An OIDC issuer in-process: discovery and a JWKS whose keys the test changes, counting
/// JWKS fetches.
struct FakeIssuer {
    url: String,
    jwks: Arc<Mutex<Jwks>>,
    fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeIssuer {
    async fn start(keys: &[&SigningKey]) -> Self {
        use axum::Json;
        use axum::routing::get;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(Mutex::new(
            keys.iter().map(|k| k.public_jwk()).collect::<Jwks>(),
        ));
        let fetches = Arc::new(AtomicUsize::new(0));
        let discovery = json!({ "issuer": url, "jwks_uri": format!("{url}/keys") });
        let (served, counted) = (Arc::clone(&jwks), Arc::clone(&fetches));
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { Json(discovery) }),
            )
            .route(
                "/keys",
                get(move || async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let jwks = served.lock().unwrap().clone();
                    Json(jwks)
                }),
            );
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            jwks,
            fetches,
            server,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn policies(&self) -> String {
        format!(
            r#"
trusted_issuers:
  - name: ci
    issuer: {url}
    audience: tether
    dangerous_allow_http: true
policies:
  - name: deploy-from-main
    issuer: ci
    claims: {{ repository: org/app, ref: refs/heads/main }}
    clusters: {{ labels: {{ env: dev }} }}
    identity: {{ username: "ci:org/app", groups: [deployers] }}
"#,
            url = self.url
        )
    }

    fn claims(&self, now: UnixTime) -> Value {
        json!({
            "iss": self.url,
            "aud": "tether",
            "sub": "repo:org/app:ref:refs/heads/main",
            "repository": "org/app",
            "ref": "refs/heads/main",
            "iat": now.as_secs(),
            "nbf": now.as_secs(),
            "exp": now.as_secs() + 300,
        })
    }
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test]
async fn trusted_issuer_tokens_are_verified_with_its_jwks() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let issuer = FakeIssuer::start(&[&key]).await;
    let fake = Arc::new(FakeReviewer::default());
    let hub = machine_hub(&issuer.policies(), &fake).await;
    let now = hub.clock.now();

    let token = key.sign(&issuer.claims(now)).unwrap();
    let (status, body) = exchange(&hub, &token, "dev-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "ci:repo:org/app:ref:refs/heads/main");
    assert_eq!(claims["username"], "ci:org/app");
    assert_eq!(claims["groups"], json!(["deployers"]));
    assert_eq!(claims["aud"], "tether:cluster:dev-2");
    assert_eq!(
        fake.calls(),
        0,
        "no TokenReview for a trusted issuer's token"
    );
    assert_eq!(issuer.fetches(), 1);

    // Another branch: no policy. Outside the selector: invalid_target.
    let mut feature = issuer.claims(now);
    feature["ref"] = json!("refs/heads/feature");
    let token = key.sign(&feature).unwrap();
    let answer = exchange(&hub, &token, "dev-2").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "no machine policy grants ci subject repo:org/app",
        &token,
    );
    let token = key.sign(&issuer.claims(now)).unwrap();
    let answer = exchange(&hub, &token, "prod-eu").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "access to cluster prod-eu",
        &token,
    );

    // Wrong audience, not yet valid, forged signature under the same kid.
    let mut wrong_aud = issuer.claims(now);
    wrong_aud["aud"] = json!("someone-else");
    let token = key.sign(&wrong_aud).unwrap();
    let answer = exchange(&hub, &token, "dev-2").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "trusted issuer ci: wrong audience",
        &token,
    );
    let mut future = issuer.claims(now);
    future["nbf"] = json!(now.as_secs() + 120);
    let token = key.sign(&future).unwrap();
    let answer = exchange(&hub, &token, "dev-2").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "not yet valid",
        &token,
    );
    let other = SigningKey::generate(Algorithm::Es256).unwrap();
    let forger = SigningKey::from_pkcs8(
        key.kid().clone(),
        Algorithm::Es256,
        other.dangerous_pkcs8_der(),
    )
    .unwrap();
    let token = forger.sign(&issuer.claims(now)).unwrap();
    let answer = exchange(&hub, &token, "dev-2").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "bad signature",
        &token,
    );
    assert_eq!(issuer.fetches(), 1, "known kids need no refetch");
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_every_30s() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let issuer = FakeIssuer::start(&[&key]).await;
    let fake = Arc::new(FakeReviewer::default());
    let hub = machine_hub(&issuer.policies(), &fake).await;

    let token = key.sign(&issuer.claims(hub.clock.now())).unwrap();
    assert_eq!(exchange(&hub, &token, "dev-2").await.0, StatusCode::OK);
    assert_eq!(issuer.fetches(), 1);

    // The issuer rotates; a token of the new key arrives within 30 s of the last fetch:
    // no refetch yet, refused.
    let rotated = SigningKey::generate(Algorithm::Es256).unwrap();
    issuer.jwks.lock().unwrap().keys.push(rotated.public_jwk());
    hub.advance(Duration::from_secs(10)).await;
    let token = rotated.sign(&issuer.claims(hub.clock.now())).unwrap();
    let answer = exchange(&hub, &token, "dev-2").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "unknown key id",
        &token,
    );
    assert_eq!(issuer.fetches(), 1);

    // 30 s after the last fetch: one refetch, accepted.
    hub.advance(Duration::from_secs(25)).await;
    let token = rotated.sign(&issuer.claims(hub.clock.now())).unwrap();
    let (status, body) = exchange(&hub, &token, "dev-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(issuer.fetches(), 2);

    // A flood of forged kids right after costs nothing more.
    let stranger = SigningKey::from_pkcs8(
        KeyId::new("forged"),
        Algorithm::Es256,
        rotated.dangerous_pkcs8_der(),
    )
    .unwrap();
    for _ in 0..20 {
        let token = stranger.sign(&issuer.claims(hub.clock.now())).unwrap();
        let answer = exchange(&hub, &token, "dev-2").await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "unknown key id",
            &token,
        );
    }
    assert_eq!(issuer.fetches(), 2);
}

#[tokio::test]
async fn untrusted_issuers_are_refused_clearly() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let issuer = FakeIssuer::start(&[&key]).await;
    let fake = Arc::new(FakeReviewer::default());
    let hub = machine_hub(&issuer.policies(), &fake).await;
    let mut claims = issuer.claims(hub.clock.now());
    claims["iss"] = json!("https://evil.example");
    let token = key.sign(&claims).unwrap();
    let answer = exchange(&hub, &token, "dev-2").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "\"https://evil.example\" is not a trusted issuer",
        &token,
    );
    assert_eq!(
        fake.calls(),
        1,
        "the hub cluster was asked (it could have been its own token)"
    );
    assert_eq!(issuer.fetches(), 0);
}

#[tokio::test]
async fn an_unreachable_issuer_is_temporarily_unavailable() {
    let key = SigningKey::generate(Algorithm::Es256).unwrap();
    let issuer = FakeIssuer::start(&[&key]).await;
    let yaml = issuer.policies();
    let claims_of = |now| issuer.claims(now);
    // Point the configuration at a port where nothing listens.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let yaml = yaml.replace(&issuer.url, &dead);
    let fake = Arc::new(FakeReviewer::default());
    let hub = machine_hub(&yaml, &fake).await;
    let mut claims = claims_of(hub.clock.now());
    claims["iss"] = json!(dead);
    let token = key.sign(&claims).unwrap();
    let answer = exchange(&hub, &token, "dev-2").await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "trusted issuer ci",
        &token,
    );
    let audit = audit(&hub).await;
    assert_eq!(audit[0].outcome.as_str(), "failure");
    assert!(
        audit[0].reason.as_deref().unwrap().contains(&dead),
        "{:?}",
        audit[0].reason
    );
}
