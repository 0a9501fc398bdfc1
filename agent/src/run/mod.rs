//! `tether-agent run`: the control loop.
//!
//! The agent dials `Control.Connect` with its hub-signed certificate, reports a heartbeat
//! every [`HEARTBEAT_INTERVAL`], and publishes what the hub pushes — a
//! [`Verifier`](tether_common::token::Verifier) built from the JWKS and a [`RevocationList`]
//! — as `Arc` values on `watch` channels ([`Published`]), for the proxy to read without
//! locks. The certificate is renewed over the stream when 2/3 of its lifetime has passed.
//! Reconnects use [`backoff`]. `--state-dir` keeps `jwks.json` and `status.json`
//! ([`jwks_store`]). [`proxy`] starts the impersonating proxy beside the loop.

pub mod backoff;
pub mod control;
pub mod jwks_store;
pub mod proxy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tether_common::time::UnixTime;
use tether_common::token::Verifier;
use tether_proto::v1::Revocations;
use tokio::sync::watch;

pub use control::Agent;

/// How often the agent sends a heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// Session ids the proxy must refuse, each until its `until` (unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    until: BTreeMap<String, i64>,
}

impl RevocationList {
    /// Whether `sid` is revoked at `now`.
    pub fn is_revoked(&self, sid: &str, now: UnixTime) -> bool {
        self.until.get(sid).is_some_and(|&u| u >= now.as_secs())
    }

    /// Applies a push: a full list replaces, an increment adds. Expired entries are dropped.
    pub fn apply(&mut self, push: &Revocations, now: UnixTime) {
        if push.full {
            self.until.clear();
        }
        for s in &push.sessions {
            let entry = self.until.entry(s.sid.clone()).or_insert(s.until);
            *entry = (*entry).max(s.until);
        }
        self.prune(now);
    }

    /// Drops entries whose `until` has passed.
    pub fn prune(&mut self, now: UnixTime) {
        self.until.retain(|_, u| *u >= now.as_secs());
    }

    /// The revoked session ids, sorted.
    pub fn sids(&self) -> Vec<String> {
        self.until.keys().cloned().collect()
    }
}

/// The receiving ends the proxy (and tests) read.
#[derive(Debug, Clone)]
pub struct Published {
    /// The current token verifier; `None` until a JWKS and issuer/audience are known.
    pub verifier: watch::Receiver<Option<Arc<Verifier>>>,
    /// The current revocations.
    pub revocations: watch::Receiver<Arc<RevocationList>>,
    /// The current status (also written to `status.json`).
    pub status: watch::Receiver<jwks_store::Status>,
}

#[cfg(test)]
mod tests;
