//! ServiceAccount tokens checked with TokenReview on the hub cluster, behind a cache.
//!
//! [`TokenReviewer`] is the one call to the apiserver ([`KubeTokenReviewer`] in production,
//! an in-process fake in tests). [`TokenReviews`] puts a cache in front of it so that a
//! burst of requests with the same token (ArgoCD refreshing every spoke at once) costs ONE
//! TokenReview:
//!
//! - keyed by the SHA-256 of the token, never the token;
//! - a positive review is reused until `min(exp, now + cache_ttl)`, `exp` read from the
//!   token's payload without trusting it (it only shortens the cache);
//! - a negative review is reused for [`NEGATIVE_TTL`], so a flood of bad tokens does not
//!   reach the apiserver either; a failed call (apiserver unreachable) is not reused;
//! - single flight: concurrent lookups of one token share one in-flight review;
//! - at most `max_concurrent` reviews of distinct tokens run at once; the rest wait;
//! - at most `cache_size` entries: expired ones go first, then the oldest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use tether_common::time::UnixTime;
use tokio::sync::{OnceCell, Semaphore};

use super::config::TokenReviewConfig;
use super::{METRIC_TOKEN_REVIEW_CACHE, METRIC_TOKEN_REVIEWS, bounded_reason, unverified_exp};
use crate::oidc::provider::BoxFuture;

/// How long a negative review (the apiserver said "not authenticated") is reused.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Most distinct `iss` values remembered from authenticated tokens.
pub const MAX_KNOWN_ISSUERS: usize = 8;
/// Upper bound of one TokenReview call.
pub const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// The user a TokenReview authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewedUser {
    /// `status.user.username` (`system:serviceaccount:NS:NAME` for a ServiceAccount).
    pub username: String,
    /// `status.user.uid` (the ServiceAccount's uid).
    pub uid: Option<String>,
    /// `status.user.groups`.
    pub groups: Vec<String>,
    /// `status.user.extra` (bound tokens: `authentication.kubernetes.io/pod-name`).
    pub extra: BTreeMap<String, Vec<String>>,
    /// `status.audiences`: the requested audiences the token is valid for.
    pub audiences: Vec<String>,
}

/// What the apiserver answered to one TokenReview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewResponse {
    /// `status.authenticated: true`.
    Authenticated(ReviewedUser),
    /// Not authenticated, with `status.error` (expired, deleted ServiceAccount, bad
    /// signature...). Never contains the token.
    Unauthenticated(String),
}

/// Why a TokenReview could not be made. Carries no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// The apiserver could not be reached, timed out, or failed (5xx, 429).
    #[error("hub cluster unreachable: {0}")]
    Unreachable(String),
    /// The apiserver refused the review itself (e.g. 403: the hub's ServiceAccount may not
    /// create TokenReviews; bind it to `system:auth-delegator`).
    #[error("hub cluster refused the TokenReview ({code}): {message}")]
    Refused {
        /// The HTTP status.
        code: u16,
        /// The apiserver's message.
        message: String,
    },
}

/// One call to the apiserver's TokenReview API; object safe, so tests use a fake.
pub trait TokenReviewer: Send + Sync + fmt::Debug + 'static {
    /// Reviews `token` for `audiences` (empty: the apiserver's default audiences).
    fn review<'a>(
        &'a self,
        token: &'a str,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<ReviewResponse, ReviewError>>;
}

/// The cached outcome of reviewing one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token is valid for this user.
    Authenticated(Arc<ReviewedUser>),
    /// The token is not valid; the reason is the apiserver's (or the audience check's).
    Unauthenticated(Arc<str>),
    /// The review could not be made.
    Failed(ReviewError),
}

/// The TokenReview cache in front of a [`TokenReviewer`]. See the module documentation.
pub struct TokenReviews {
    reviewer: Arc<dyn TokenReviewer>,
    audiences: Vec<String>,
    cache_ttl: Duration,
    capacity: usize,
    permits: Semaphore,
    cache: Mutex<Cache>,
    /// `iss` of tokens the hub cluster authenticated (at most [`MAX_KNOWN_ISSUERS`]): lets
    /// a refusal say whether the token even looked like one of the hub cluster's.
    issuers: Mutex<BTreeSet<String>>,
}

/// SHA-256 of a token.
type Key = [u8; 32];

#[derive(Default)]
struct Cache {
    entries: HashMap<Key, Entry>,
    /// Insertion order: sequence number -> key.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

struct Entry {
    seq: u64,
    cell: Arc<OnceCell<Completed>>,
}

/// A finished review and until when it may be reused (not at or after `expires`).
#[derive(Debug, Clone)]
struct Completed {
    verdict: Verdict,
    expires: UnixTime,
}

/// How a lookup was answered (the `result` label of the cache counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Hit,
    Miss,
    Coalesced,
}

impl Lookup {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Coalesced => "coalesced",
        }
    }
}

impl TokenReviews {
    /// A cache over `reviewer` configured by `machine.token_review`.
    pub fn new(reviewer: Arc<dyn TokenReviewer>, config: &TokenReviewConfig) -> Self {
        Self {
            reviewer,
            audiences: config.audiences.clone(),
            cache_ttl: config.cache_ttl.as_duration(),
            capacity: config.cache_size.max(1),
            permits: Semaphore::new(config.max_concurrent.max(1)),
            cache: Mutex::new(Cache::default()),
            issuers: Mutex::new(BTreeSet::new()),
        }
    }

    /// Reviews `token` at time `now`, from the cache when possible.
    pub async fn review(&self, token: &str, now: UnixTime) -> Verdict {
        let key = token_key(token);
        let (cell, lookup) = self.lookup(key, now);
        metrics::counter!(METRIC_TOKEN_REVIEW_CACHE, "result" => lookup.as_str()).increment(1);
        if let (Lookup::Hit, Some(done)) = (lookup, cell.get()) {
            return done.verdict.clone();
        }
        // Whoever runs first reviews; the others wait for its answer. If that caller goes
        // away mid-review, the next waiter reviews instead.
        let done = cell.get_or_init(|| self.run(token, now)).await;
        done.verdict.clone()
    }

    /// Whether the hub cluster has authenticated a token with this `iss` (its
    /// ServiceAccount issuer).
    pub fn is_hub_cluster_issuer(&self, iss: &str) -> bool {
        lock(&self.issuers).contains(iss)
    }

    /// Number of cached entries (finished or in flight).
    pub fn len(&self) -> usize {
        self.locked().entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cell for `key`: a live finished entry (hit), an in-flight one (coalesced) or a new
    /// one (miss).
    fn lookup(&self, key: Key, now: UnixTime) -> (Arc<OnceCell<Completed>>, Lookup) {
        let mut cache = self.locked();
        if let Some(entry) = cache.entries.get(&key) {
            match entry.cell.get() {
                Some(done) if done.expires > now => return (Arc::clone(&entry.cell), Lookup::Hit),
                Some(_) => {
                    let seq = entry.seq;
                    cache.entries.remove(&key);
                    cache.order.remove(&seq);
                }
                None => return (Arc::clone(&entry.cell), Lookup::Coalesced),
            }
        }
        if cache.entries.len() >= self.capacity {
            cache.evict(self.capacity, now);
        }
        let cell = Arc::new(OnceCell::new());
        let seq = cache.next_seq;
        cache.next_seq += 1;
        cache.order.insert(seq, key);
        cache.entries.insert(
            key,
            Entry {
                seq,
                cell: Arc::clone(&cell),
            },
        );
        metrics::gauge!(super::METRIC_TOKEN_REVIEW_CACHE_ENTRIES).set(cache.entries.len() as f64);
        (cell, Lookup::Miss)
    }

    /// One TokenReview (waiting for a permit), turned into a cacheable verdict.
    async fn run(&self, token: &str, now: UnixTime) -> Completed {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.permits.acquire().await.ok();
        let response = self.reviewer.review(token, &self.audiences).await;
        let outcome = match &response {
            Ok(ReviewResponse::Authenticated(_)) => "authenticated",
            Ok(ReviewResponse::Unauthenticated(_)) => "unauthenticated",
            Err(_) => "error",
        };
        metrics::counter!(METRIC_TOKEN_REVIEWS, "outcome" => outcome).increment(1);
        match response {
            Ok(ReviewResponse::Authenticated(user)) => match self.check_audiences(&user) {
                Ok(()) => {
                    self.note_issuer(token);
                    let mut expires = now.saturating_add(self.cache_ttl);
                    if let Some(exp) = unverified_exp(token) {
                        expires = expires.min(exp);
                    }
                    Completed {
                        verdict: Verdict::Authenticated(Arc::new(user)),
                        expires,
                    }
                }
                Err(reason) => negative(reason, now),
            },
            Ok(ReviewResponse::Unauthenticated(reason)) => negative(bounded_reason(&reason), now),
            Err(err) => {
                tracing::warn!(error = %err, "TokenReview failed");
                // Shared with the requests waiting on this review, then forgotten.
                Completed {
                    verdict: Verdict::Failed(err),
                    expires: now,
                }
            }
        }
    }

    /// With configured audiences, the apiserver must say the token is valid for one of them.
    fn check_audiences(&self, user: &ReviewedUser) -> Result<(), String> {
        if self.audiences.is_empty() || user.audiences.iter().any(|a| self.audiences.contains(a)) {
            Ok(())
        } else {
            Err(format!(
                "the token is not valid for the audiences {:?}",
                self.audiences
            ))
        }
    }

    /// Remembers the (unverified, but just authenticated) `iss` of `token`.
    fn note_issuer(&self, token: &str) {
        let Some(iss) = super::unverified_claims(token)
            .and_then(|claims| claims.get("iss")?.as_str().map(str::to_owned))
        else {
            return;
        };
        let mut issuers = lock(&self.issuers);
        if issuers.len() < MAX_KNOWN_ISSUERS {
            issuers.insert(iss);
        }
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, Cache> {
        lock(&self.cache)
    }
}

impl fmt::Debug for TokenReviews {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenReviews")
            .field("reviewer", &self.reviewer)
            .field("audiences", &self.audiences)
            .field("cache_ttl", &self.cache_ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Makes room for one entry: drops expired entries, then the oldest, down to 15/16 of
    /// `capacity` (so a flood of distinct tokens does not scan the map on every insert).
    fn evict(&mut self, capacity: usize, now: UnixTime) {
        let before = self.entries.len();
        let order = &mut self.order;
        self.entries.retain(|_, entry| {
            let keep = entry.cell.get().is_none_or(|done| done.expires > now);
            if !keep {
                order.remove(&entry.seq);
            }
            keep
        });
        let target = capacity.saturating_sub((capacity / 16).max(1));
        while self.entries.len() > target {
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&key);
        }
        tracing::debug!(
            before,
            after = self.entries.len(),
            "TokenReview cache full: evicted"
        );
    }
}

/// Locks `mutex`. A panic while holding one of these locks leaves a consistent value (every
/// update is one statement), so a poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn negative(reason: String, now: UnixTime) -> Completed {
    Completed {
        verdict: Verdict::Unauthenticated(reason.into()),
        expires: now.saturating_add(NEGATIVE_TTL),
    }
}

/// The cache key: SHA-256 of the token.
fn token_key(token: &str) -> Key {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// TokenReview through the hub cluster's apiserver.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    api: Api<TokenReview>,
}

impl KubeTokenReviewer {
    /// A reviewer using `client` (from [`HubClusterConfig`](crate::hub_cluster::HubClusterConfig)).
    pub fn new(client: kube::Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }

    async fn call(&self, token: &str, audiences: &[String]) -> Result<ReviewResponse, ReviewError> {
        let request = TokenReview {
            metadata: Default::default(),
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            },
            status: None,
        };
        let answer = tokio::time::timeout(
            REVIEW_TIMEOUT,
            self.api.create(&PostParams::default(), &request),
        )
        .await
        .map_err(|_| {
            ReviewError::Unreachable(format!(
                "no answer within {}",
                humantime::format_duration(REVIEW_TIMEOUT)
            ))
        })?;
        let review = match answer {
            Ok(review) => review,
            Err(kube::Error::Api(status)) if status.code >= 500 || status.code == 429 => {
                return Err(ReviewError::Unreachable(format!(
                    "{} {}",
                    status.code, status.message
                )));
            }
            Err(kube::Error::Api(status)) => {
                return Err(ReviewError::Refused {
                    code: status.code,
                    message: status.message,
                });
            }
            Err(err) => return Err(ReviewError::Unreachable(err.to_string())),
        };
        let status = review.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            let reason = status.error.unwrap_or_default();
            return Ok(ReviewResponse::Unauthenticated(reason));
        }
        let user = status.user.unwrap_or_default();
        Ok(ReviewResponse::Authenticated(ReviewedUser {
            username: user.username.unwrap_or_default(),
            uid: user.uid,
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
            audiences: status.audiences.unwrap_or_default(),
        }))
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(
        &'a self,
        token: &'a str,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<ReviewResponse, ReviewError>> {
        Box::pin(self.call(token, audiences))
    }
}

impl fmt::Debug for KubeTokenReviewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeTokenReviewer").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
