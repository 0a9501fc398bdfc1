//! Machine tokens against real parts: a hub-cluster kube-apiserver issuing ServiceAccount
//! tokens (TokenRequest via `kubectl create token`) and reviewing them (TokenReview), and
//! the real hub exchanging them for cluster tokens under its `machine` policies. Covers
//! the refusals (another ServiceAccount, expired, deleted ServiceAccount, cluster outside
//! the policy, untrusted issuer) and that a burst with one token costs ONE TokenReview.

mod burst;
pub(crate) mod env;
mod exchange;
