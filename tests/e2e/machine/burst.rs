//! The kube-oidc-proxy pitfall: ArgoCD refreshing many spokes at once must not throttle the
//! hub cluster with TokenReviews. 50 concurrent exchanges with one ServiceAccount token
//! cost exactly one TokenReview, read from the hub's /metrics.

use std::time::Duration;

use tokio::task::JoinSet;

use super::env::{CONTROLLER, MachineEnv, SPOKE, exchange};

const REQUESTS: usize = 50;

#[tokio::test]
async fn fifty_concurrent_exchanges_with_one_token_cost_one_token_review() {
    let env = MachineEnv::start("machine-burst").await;
    let token = env.token(CONTROLLER).await;
    let before = env.token_reviews().await;
    assert_eq!(before, 0.0, "nothing reviewed yet");

    let hub = std::sync::Arc::new(env.hub);
    let mut tasks = JoinSet::new();
    for _ in 0..REQUESTS {
        let hub = std::sync::Arc::clone(&hub);
        let token = token.clone();
        tasks.spawn(async move { exchange(&hub, &token, SPOKE).await });
    }
    let answers = tokio::time::timeout(Duration::from_secs(120), tasks.join_all())
        .await
        .expect("the burst finished within 2 minutes");
    assert_eq!(answers.len(), REQUESTS);
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }

    let metrics = hub.metrics().await.unwrap();
    let reviews: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tether_hub_token_reviews_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        reviews, 1.0,
        "TokenReview calls for {REQUESTS} requests:\n{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"tether_hub_token_reviews_total{outcome="authenticated"} 1"#),
        "{metrics}"
    );
    let issued = format!(r#"tether_hub_machine_tokens_total{{outcome="success"}} {REQUESTS}"#);
    assert!(
        metrics.lines().any(|l| l == issued),
        "{issued} not in:\n{metrics}"
    );
}
