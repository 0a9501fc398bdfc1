//! [`VerifiedCache`]: tokens already verified, so the agent checks a hot token's signature once.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::claims::Claims;
use crate::secret::ct_eq;
use crate::time::UnixTime;

/// Default number of entries.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// SHA-256 of a token. Equality is constant-time: a bearer token's digest is compared like a
/// secret (the map's SipHash is keyed randomly per process).
#[derive(Clone, Copy)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl PartialEq for TokenDigest {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for TokenDigest {}

impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// A bounded, thread-safe map from SHA-256(token) to its verified claims; an entry is served
/// while `now < claims.exp`.
///
/// Keyed by the token's digest, so it holds no tokens. It must only be filled with claims
/// from one [`Verifier`](super::Verifier) (same keys, issuer, audience): clear it when the
/// key set changes, e.g. on an emergency rotation.
pub struct VerifiedCache {
    capacity: usize,
    entries: Mutex<HashMap<TokenDigest, Arc<Claims>>>,
}

impl VerifiedCache {
    /// A cache holding at most `capacity` tokens (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The verified claims of `token`, if cached and not expired at `now`.
    pub fn get(&self, token: &str, now: UnixTime) -> Option<Arc<Claims>> {
        let digest = TokenDigest::of(token);
        let mut entries = self.lock();
        let claims = entries.get(&digest)?;
        if claims.exp > now {
            return Some(claims.clone());
        }
        entries.remove(&digest);
        None
    }

    /// Records `claims` as the verified claims of `token`. Only call with the output of a
    /// successful verification. Already expired claims are not stored. When full, expired
    /// entries are dropped first, then the ones that expire soonest.
    pub fn insert(&self, token: &str, claims: impl Into<Arc<Claims>>, now: UnixTime) {
        let claims = claims.into();
        if self.capacity == 0 || claims.exp <= now {
            return;
        }
        let digest = TokenDigest::of(token);
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            entries.retain(|_, c| c.exp > now);
            while entries.len() >= self.capacity {
                let Some(soonest) = entries.iter().min_by_key(|(_, c)| c.exp).map(|(d, _)| *d)
                else {
                    break;
                };
                entries.remove(&soonest);
            }
        }
        entries.insert(digest, claims);
    }

    /// Drops every entry (call when the trusted keys change).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Number of entries, expired ones included until they are evicted.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenDigest, Arc<Claims>>> {
        // The map is consistent after any panic in a holder, so a poisoned lock is usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_CAPACITY)
    }
}

#[cfg(test)]
mod tests;
