//! A real hub-cluster kube-apiserver (with etcd) and a hub whose machine path reviews that
//! cluster's ServiceAccount tokens; spokes registered in the hub's store.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use tether_common::time::{Clock as _, SystemClock};
use tether_e2e::{Cluster, ClusterOptions, Hub, HubOptions, TestDir, free_port};
use tether_hub::registry::ClusterName;
use tether_hub::store::{DatabaseUrl, Store, StoreConfig};

/// The spoke ArgoCD may manage (`env: prod`).
pub const SPOKE: &str = "spoke-a";
/// A spoke outside ArgoCD's policy (`env: dev`).
pub const DEV_SPOKE: &str = "spoke-dev";
/// ArgoCD's application controller.
pub const ARGOCD_NS: &str = "argocd";
pub const CONTROLLER: &str = "argocd-application-controller";

/// The hub's `machine` section.
pub const MACHINE_YAML: &str = r#"machine:
  token_review: {cache_ttl: 30s, cache_size: 1000, max_concurrent: 8}
  policies:
    - name: argocd
      serviceaccount: {namespace: argocd, name: argocd-application-controller}
      clusters: {names: [spoke-a]}
      identity: {username: "tether:argocd", groups: [gitops]}
    - name: doomed
      serviceaccount: {namespace: argocd, name: doomed}
      clusters: {names: ["*"]}
      identity: {username: "tether:doomed"}
"#;

pub struct MachineEnv {
    pub hub: Hub,
    pub k8s: Cluster,
    _dir: TestDir,
}

impl MachineEnv {
    pub async fn start(name: &str) -> Self {
        let dir = TestDir::new(name).expect("test dir");
        let k8s = Cluster::start(&dir, ClusterOptions::new("hubk8s"))
            .await
            .expect("hub cluster apiserver");
        let port = free_port().expect("port");
        let options = HubOptions::with_machine("hub", port, &k8s.admin_kubeconfig(), MACHINE_YAML)
            .expect("hub options");
        let hub = Hub::start(&dir, options).await.expect("hub");
        register(&hub, &[(SPOKE, "prod"), (DEV_SPOKE, "dev")]).await;
        k8s.kubectl_ok(&["create", "namespace", ARGOCD_NS])
            .await
            .expect("namespace");
        for sa in [CONTROLLER, "argocd-server", "doomed"] {
            k8s.kubectl_ok(&["-n", ARGOCD_NS, "create", "serviceaccount", sa])
                .await
                .expect("serviceaccount");
        }
        Self {
            hub,
            k8s,
            _dir: dir,
        }
    }

    /// A bound token for `sa` from the TokenRequest API (`kubectl create token`, 10 min,
    /// the shortest kubectl allows).
    pub async fn token(&self, sa: &str) -> String {
        let out = self
            .k8s
            .kubectl_ok(&["-n", ARGOCD_NS, "create", "token", sa, "--duration", "10m"])
            .await
            .expect("kubectl create token");
        let token = out.trim().to_owned();
        assert_eq!(token.split('.').count(), 3, "not a JWT: {token:.20}...");
        token
    }

    /// POSTs the machine token exchange for `token` and `audience` as `tetherctl`.
    pub async fn exchange(&self, token: &str, audience: &str) -> (u16, Value) {
        exchange(&self.hub, token, audience).await
    }

    /// Sum of `tether_hub_token_reviews_total` over every outcome (TokenReview calls made).
    pub async fn token_reviews(&self) -> f64 {
        let text = self.hub.metrics().await.expect("metrics");
        text.lines()
            .filter(|l| l.starts_with("tether_hub_token_reviews_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// A token signed with the hub cluster's real ServiceAccount key, with these claims
    /// (used for an expired token: `kubectl create token` cannot make one).
    pub fn sa_signed_token(&self, claims: &Value) -> String {
        let pem = &self.k8s.sa_signing_key().private_pem;
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .expect("PKCS#8 PEM");
        let key = tether_common::token::SigningKey::from_pkcs8(
            tether_common::token::KeyId::new("sa"),
            tether_common::token::Algorithm::Es256,
            &der,
        )
        .expect("the SA key is P-256");
        key.sign(claims).expect("sign")
    }
}

/// POSTs `grant_type=token-exchange` with `subject_token_type=jwt` to the hub's /token.
pub async fn exchange(hub: &Hub, token: &str, audience: &str) -> (u16, Value) {
    let url = format!("{}/token", hub.url());
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("client_id", "tetherctl"),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("subject_token", token),
            ("audience", audience),
        ])
        .finish();
    let response = hub
        .http()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST /token");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON answer");
    (status, body)
}

/// Registers spokes (name, `env` label) in the hub's store.
async fn register(hub: &Hub, spokes: &[(&str, &str)]) {
    let file = hub.data_dir().join("hub.db");
    let url = DatabaseUrl::parse(&format!("sqlite://{}", file.display())).expect("db url");
    let store = Store::connect(&StoreConfig::new(url))
        .await
        .expect("open the hub's store");
    for (name, env) in spokes {
        store
            .add_cluster(
                &ClusterName::parse(name).expect("name"),
                &BTreeMap::from([("env".to_owned(), (*env).to_owned())]),
                SystemClock.now(),
            )
            .await
            .expect("register a spoke");
    }
    store.close().await;
}
