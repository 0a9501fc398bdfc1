//! The TokenReview cache: single flight, expiry, negative caching, failures, eviction,
//! audiences, concurrency bound.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tether_common::time::UnixTime;
use tokio::task::JoinSet;

use super::*;
use crate::config::HumanDuration;
use crate::machine::test_support::{FakeReviewer, INVALID_BEARER, sa_token};

const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);
const SA: &str = "system:serviceaccount:argocd:argocd-application-controller";
/// Bound of every test that waits on concurrent tasks.
const LIMIT: Duration = Duration::from_secs(30);

fn config(ttl: u64, size: usize, concurrent: usize) -> TokenReviewConfig {
    TokenReviewConfig {
        audiences: Vec::new(),
        cache_ttl: HumanDuration::from_secs(ttl),
        cache_size: size,
        max_concurrent: concurrent,
    }
}

fn reviews(fake: &Arc<FakeReviewer>, config: &TokenReviewConfig) -> Arc<TokenReviews> {
    Arc::new(TokenReviews::new(
        Arc::clone(fake) as Arc<dyn TokenReviewer>,
        config,
    ))
}

fn far_exp() -> UnixTime {
    NOW.saturating_add(Duration::from_secs(3600))
}

fn assert_authenticated(verdict: &Verdict) {
    match verdict {
        Verdict::Authenticated(user) => assert_eq!(user.username, SA),
        other => panic!("expected authenticated, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_token_costs_one_review() {
    let fake = Arc::new(FakeReviewer::slow(Duration::from_millis(200)));
    let token = sa_token("argocd", "argocd-application-controller", far_exp());
    fake.accept(&token, SA, &[]);
    let cache = reviews(&fake, &config(30, 100, 4));

    let mut tasks = JoinSet::new();
    for _ in 0..1000 {
        let cache = Arc::clone(&cache);
        let token = token.clone();
        tasks.spawn(async move { cache.review(&token, NOW).await });
    }
    let verdicts = tokio::time::timeout(LIMIT, tasks.join_all())
        .await
        .expect("the burst finished in time");
    assert_eq!(verdicts.len(), 1000);
    verdicts.iter().for_each(assert_authenticated);
    assert_eq!(
        fake.calls(),
        1,
        "one TokenReview for 1000 concurrent requests"
    );

    // Later requests are hits.
    assert_authenticated(
        &cache
            .review(&token, NOW.saturating_add(Duration::from_secs(29)))
            .await,
    );
    assert_eq!(fake.calls(), 1);
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn positive_reviews_expire_at_cache_ttl() {
    let fake = Arc::new(FakeReviewer::default());
    let token = sa_token("argocd", "argocd-application-controller", far_exp());
    fake.accept(&token, SA, &[]);
    let cache = reviews(&fake, &config(30, 100, 4));

    assert_authenticated(&cache.review(&token, NOW).await);
    assert_authenticated(
        &cache
            .review(&token, NOW.saturating_add(Duration::from_secs(29)))
            .await,
    );
    assert_eq!(fake.calls(), 1);
    assert_authenticated(
        &cache
            .review(&token, NOW.saturating_add(Duration::from_secs(30)))
            .await,
    );
    assert_eq!(fake.calls(), 2, "reviewed again once cache_ttl passed");
}

#[tokio::test]
async fn positive_reviews_expire_with_the_token() {
    let fake = Arc::new(FakeReviewer::default());
    let exp = NOW.saturating_add(Duration::from_secs(10));
    let token = sa_token("argocd", "argocd-application-controller", exp);
    fake.accept(&token, SA, &[]);
    let cache = reviews(&fake, &config(30, 100, 4));

    assert_authenticated(&cache.review(&token, NOW).await);
    assert_authenticated(
        &cache
            .review(&token, NOW.saturating_add(Duration::from_secs(9)))
            .await,
    );
    assert_eq!(fake.calls(), 1);
    // At exp the cached answer is no longer used: the apiserver decides again.
    fake.users.lock().unwrap().clear();
    let verdict = cache.review(&token, exp).await;
    assert_eq!(fake.calls(), 2);
    assert!(
        matches!(verdict, Verdict::Unauthenticated(_)),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn refusals_are_cached_briefly() {
    let fake = Arc::new(FakeReviewer::default());
    let token = sa_token("argocd", "deleted", far_exp());
    let cache = reviews(&fake, &config(30, 100, 4));

    for offset in [0, 1, 4] {
        let verdict = cache
            .review(&token, NOW.saturating_add(Duration::from_secs(offset)))
            .await;
        assert_eq!(verdict, Verdict::Unauthenticated(INVALID_BEARER.into()));
    }
    assert_eq!(fake.calls(), 1, "a flood of one bad token is one review");
    let _ = cache.review(&token, NOW.saturating_add(NEGATIVE_TTL)).await;
    assert_eq!(fake.calls(), 2, "reviewed again after the negative TTL");
}

#[tokio::test]
async fn failures_are_shared_but_not_cached() {
    let fake = Arc::new(FakeReviewer::default());
    let token = sa_token("argocd", "argocd-application-controller", far_exp());
    fake.accept(&token, SA, &[]);
    fake.unreachable.store(true, Ordering::SeqCst);
    let cache = reviews(&fake, &config(30, 100, 4));

    let verdict = cache.review(&token, NOW).await;
    assert!(
        matches!(verdict, Verdict::Failed(ReviewError::Unreachable(_))),
        "{verdict:?}"
    );
    fake.unreachable.store(false, Ordering::SeqCst);
    assert_authenticated(&cache.review(&token, NOW).await);
    assert_eq!(fake.calls(), 2, "a failed review is not reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_waiters_share_a_failure() {
    let fake = Arc::new(FakeReviewer::slow(Duration::from_millis(100)));
    fake.unreachable.store(true, Ordering::SeqCst);
    let token = sa_token("argocd", "argocd-application-controller", far_exp());
    let cache = reviews(&fake, &config(30, 100, 4));
    let mut tasks = JoinSet::new();
    for _ in 0..50 {
        let cache = Arc::clone(&cache);
        let token = token.clone();
        tasks.spawn(async move { cache.review(&token, NOW).await });
    }
    let verdicts = tokio::time::timeout(LIMIT, tasks.join_all()).await.unwrap();
    assert!(verdicts.iter().all(|v| matches!(v, Verdict::Failed(_))));
    assert_eq!(
        fake.calls(),
        1,
        "the apiserver is not hammered while it is down"
    );
}

#[tokio::test]
async fn the_cache_is_bounded_and_drops_expired_entries_first() {
    let fake = Arc::new(FakeReviewer::default());
    let cache = reviews(&fake, &config(30, 16, 4));
    for i in 0..200 {
        let token = sa_token("flood", &format!("sa-{i}"), far_exp());
        let _ = cache.review(&token, NOW).await;
        assert!(cache.len() <= 16, "{} entries after {i}", cache.len());
    }
    assert_eq!(fake.calls(), 200);

    // Capacity 4: one short-lived entry, three long-lived ones.
    let fake = Arc::new(FakeReviewer::default());
    let cache = reviews(&fake, &config(30, 4, 4));
    let short = sa_token(
        "argocd",
        "short",
        NOW.saturating_add(Duration::from_secs(5)),
    );
    fake.accept(&short, "system:serviceaccount:argocd:short", &[]);
    let _ = cache.review(&short, NOW).await;
    let long: Vec<String> = (0..3)
        .map(|i| sa_token("argocd", &format!("long-{i}"), far_exp()))
        .collect();
    for token in &long {
        fake.accept(token, SA, &[]);
        let _ = cache.review(token, NOW).await;
    }
    assert_eq!(cache.len(), 4);
    let later = NOW.saturating_add(Duration::from_secs(10));
    let newcomer = sa_token("argocd", "newcomer", far_exp());
    let _ = cache.review(&newcomer, later).await;
    assert_eq!(cache.len(), 4);
    // The expired entry made room: every live one is still cached.
    let calls = fake.calls();
    for token in long.iter().chain([&newcomer]) {
        let _ = cache.review(token, later).await;
    }
    assert_eq!(fake.calls(), calls, "live entries were kept");
    // Full of live entries: the oldest goes.
    let last = sa_token("argocd", "last", far_exp());
    let _ = cache.review(&last, later).await;
    assert!(cache.len() <= 4);
    let calls = fake.calls();
    let _ = cache.review(&last, later).await;
    let _ = cache.review(&newcomer, later).await;
    assert_eq!(fake.calls(), calls, "the newest entries are still cached");
    let _ = cache.review(&long[0], later).await;
    assert_eq!(fake.calls(), calls + 1, "the oldest entry was evicted");
}

#[tokio::test]
async fn configured_audiences_must_be_confirmed() {
    let fake = Arc::new(FakeReviewer::default());
    let token = sa_token("argocd", "argocd-application-controller", far_exp());
    let other = sa_token("argocd", "other-audience", far_exp());
    fake.accept(&token, SA, &["tether"]);
    fake.accept(&other, SA, &[]);
    let mut config = config(30, 100, 4);
    config.audiences = vec!["tether".to_owned()];
    let cache = reviews(&fake, &config);

    assert_authenticated(&cache.review(&token, NOW).await);
    let verdict = cache.review(&other, NOW).await;
    match verdict {
        Verdict::Unauthenticated(reason) => assert!(reason.contains("audiences"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_reviews_are_bounded_but_never_refused() {
    let fake = Arc::new(FakeReviewer::slow(Duration::from_millis(50)));
    let cache = reviews(&fake, &config(30, 100, 3));
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let token = sa_token("argocd", &format!("sa-{i}"), far_exp());
        fake.accept(&token, SA, &[]);
        let cache = Arc::clone(&cache);
        tasks.spawn(async move { cache.review(&token, NOW).await });
    }
    let verdicts = tokio::time::timeout(LIMIT, tasks.join_all()).await.unwrap();
    verdicts.iter().for_each(assert_authenticated);
    assert_eq!(fake.calls(), 20);
    let max = fake.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "{max} reviews in flight at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_review_is_taken_over_by_a_waiter() {
    let fake = Arc::new(FakeReviewer::slow(Duration::from_millis(200)));
    let token = sa_token("argocd", "argocd-application-controller", far_exp());
    fake.accept(&token, SA, &[]);
    let cache = reviews(&fake, &config(30, 100, 4));

    let first = {
        let cache = Arc::clone(&cache);
        let token = token.clone();
        tokio::spawn(async move { cache.review(&token, NOW).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = {
        let cache = Arc::clone(&cache);
        let token = token.clone();
        tokio::spawn(async move { cache.review(&token, NOW).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    first.abort();
    let verdict = tokio::time::timeout(LIMIT, second).await.unwrap().unwrap();
    assert_authenticated(&verdict);
    assert_eq!(
        fake.calls(),
        2,
        "the waiter reviewed after the first caller went away"
    );
}
