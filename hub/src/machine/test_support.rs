//! Fixtures for machine-path tests: an in-process [`FakeReviewer`] (counting calls,
//! optionally slow or failing) and unsigned JWT-shaped tokens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use tether_common::time::UnixTime;

use super::token_review::{ReviewError, ReviewResponse, ReviewedUser, TokenReviewer};
use crate::oidc::provider::BoxFuture;

/// The apiserver's answer to an unknown token.
pub const INVALID_BEARER: &str =
    "[invalid bearer token, square/go-jose: error in cryptographic primitive]";

/// A TokenReview API in memory.
#[derive(Debug, Default)]
pub struct FakeReviewer {
    /// Reviews made.
    pub calls: AtomicUsize,
    /// Reviews in flight now, and the most ever seen at once.
    pub in_flight: AtomicUsize,
    /// The most reviews in flight at once.
    pub max_in_flight: AtomicUsize,
    /// How long each review takes.
    pub delay: Mutex<Duration>,
    /// Every review fails as if the apiserver were down.
    pub unreachable: AtomicBool,
    /// Known tokens and who they are; others are unauthenticated.
    pub users: Mutex<HashMap<String, ReviewedUser>>,
}

impl FakeReviewer {
    /// A reviewer taking `delay` per review.
    pub fn slow(delay: Duration) -> Self {
        let fake = Self::default();
        *fake.delay.lock().unwrap() = delay;
        fake
    }

    /// Makes `token` authenticate as `username` (with `audiences` in the status).
    pub fn accept(&self, token: &str, username: &str, audiences: &[&str]) {
        self.users.lock().unwrap().insert(
            token.to_owned(),
            ReviewedUser {
                username: username.to_owned(),
                uid: Some("uid-1234".to_owned()),
                groups: vec!["system:serviceaccounts".to_owned()],
                extra: [(
                    "authentication.kubernetes.io/pod-name".to_owned(),
                    vec!["argocd-application-controller-0".to_owned()],
                )]
                .into(),
                audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            },
        );
    }

    /// Reviews made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl TokenReviewer for FakeReviewer {
    fn review<'a>(
        &'a self,
        token: &'a str,
        _audiences: &'a [String],
    ) -> BoxFuture<'a, Result<ReviewResponse, ReviewError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let delay = *self.delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.unreachable.load(Ordering::SeqCst) {
                return Err(ReviewError::Unreachable("connection refused".to_owned()));
            }
            Ok(match self.users.lock().unwrap().get(token) {
                Some(user) => ReviewResponse::Authenticated(user.clone()),
                None => ReviewResponse::Unauthenticated(INVALID_BEARER.to_owned()),
            })
        })
    }
}

/// An unsigned JWT-shaped token with these claims (enough for the fake reviewer and for
/// the hub's unverified `iss`/`exp` reads).
pub fn fake_jwt(claims: &serde_json::Value) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","kid":"sa-key"}"#),
        b64(claims.to_string().as_bytes()),
        b64(b"not-a-signature")
    )
}

/// A fake ServiceAccount token for `name` (unique per `name`) expiring at `exp`.
pub fn sa_token(namespace: &str, name: &str, exp: UnixTime) -> String {
    fake_jwt(&serde_json::json!({
        "iss": "https://kubernetes.default.svc",
        "aud": ["https://kubernetes.default.svc"],
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "exp": exp.as_secs(),
        "iat": exp.as_secs() - 3600,
    }))
}
