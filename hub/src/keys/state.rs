//! [`KeyState`]: the immutable snapshot of the keys that [`super::KeyManager`] publishes.

use std::str::FromStr as _;
use std::sync::Arc;

use serde::Serialize;
use tether_common::time::UnixTime;
use tether_common::token::{Algorithm, Jwk, Jwks, KeyId, SigningKey};

use super::{Kek, KeyError};
use crate::store::{KeyRow, KeySnapshot, KeyStatus};

/// The keys at one generation of the key table: who signs, and what the JWKS publishes.
///
/// Published as `Arc<KeyState>` on a `watch` channel; readers clone the `Arc` and never lock.
#[derive(Debug)]
pub struct KeyState {
    /// `key_epoch.generation` this snapshot was read at (strictly increases on each change).
    pub generation: i64,
    /// The `current` key: the only one that signs.
    pub signer: Arc<SigningKey>,
    /// The JWKS to serve: `current`, `next`, then every `previous` (newest first).
    pub jwks: Arc<Jwks>,
    /// Public metadata of the published keys, same order as the JWKS.
    pub keys: Arc<[KeyInfo]>,
}

/// Public metadata of one key (no key material), for admin listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Key id.
    pub kid: KeyId,
    /// Algorithm.
    pub alg: Algorithm,
    /// State.
    pub status: KeyStatus,
    /// Generated (and published) at.
    pub created_at: UnixTime,
    /// Became `current` at.
    pub activated_at: Option<UnixTime>,
    /// Stopped signing at.
    pub deactivated_at: Option<UnixTime>,
    /// Leaves the JWKS at (for `previous` keys).
    pub retire_after: Option<UnixTime>,
}

impl KeyState {
    /// Builds the state from a snapshot of the published keys, decrypting the `current` key
    /// unless `reuse` already holds it.
    pub(crate) fn build(
        snapshot: &KeySnapshot,
        kek: &Kek,
        reuse: Option<&KeyState>,
    ) -> Result<Self, KeyError> {
        let mut rows: Vec<&KeyRow> = snapshot
            .keys
            .iter()
            .filter(|r| r.status.is_published())
            .collect();
        rows.sort_by_key(|r| (order(r.status), std::cmp::Reverse(r.created_at)));
        let current = rows
            .iter()
            .find(|r| r.status == KeyStatus::Current)
            .ok_or(KeyError::NoCurrentKey)?;
        let mut jwks = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let alg = parse_alg(row)?;
            let jwk: Jwk = serde_json::from_str(&row.public_jwk)
                .map_err(|e| corrupt(row, format!("public_jwk is not a JWK: {e}")))?;
            if jwk.kid.as_ref().map(KeyId::as_str) != Some(row.kid.as_str()) {
                return Err(corrupt(row, "public_jwk names another kid".to_owned()));
            }
            jwks.push(jwk);
            keys.push(KeyInfo {
                kid: KeyId::new(row.kid.clone()),
                alg,
                status: row.status,
                created_at: UnixTime::from_secs(row.created_at),
                activated_at: row.activated_at.map(UnixTime::from_secs),
                deactivated_at: row.deactivated_at.map(UnixTime::from_secs),
                retire_after: row.retire_after.map(UnixTime::from_secs),
            });
        }
        let signer = match reuse.filter(|s| s.signer.kid().as_str() == current.kid) {
            Some(state) => Arc::clone(&state.signer),
            None => Arc::new(decrypt(current, kek)?),
        };
        Ok(Self {
            generation: snapshot.generation,
            signer,
            jwks: Arc::new(Jwks { keys: jwks }),
            keys: keys.into(),
        })
    }

    /// The metadata of the key in `status` (`current` or `next`).
    pub fn key(&self, status: KeyStatus) -> Option<&KeyInfo> {
        self.keys.iter().find(|k| k.status == status)
    }
}

/// Decrypts a row's private key and checks it matches the row's public JWK.
pub(crate) fn decrypt(row: &KeyRow, kek: &Kek) -> Result<SigningKey, KeyError> {
    let alg = parse_alg(row)?;
    let der = kek.open(&row.kid, &row.alg, &row.private_key_ciphertext, &row.nonce)?;
    let key = SigningKey::from_pkcs8(KeyId::new(row.kid.clone()), alg, &der).map_err(|source| {
        KeyError::Load {
            kid: row.kid.clone(),
            source,
        }
    })?;
    let stored: Jwk = serde_json::from_str(&row.public_jwk)
        .map_err(|e| corrupt(row, format!("public_jwk is not a JWK: {e}")))?;
    if key.public_jwk() != stored {
        return Err(corrupt(
            row,
            "the private key does not match public_jwk".to_owned(),
        ));
    }
    Ok(key)
}

fn parse_alg(row: &KeyRow) -> Result<Algorithm, KeyError> {
    Algorithm::from_str(&row.alg)
        .map_err(|_| corrupt(row, format!("unsupported alg {:?}", row.alg)))
}

fn corrupt(row: &KeyRow, reason: String) -> KeyError {
    KeyError::CorruptKey {
        kid: row.kid.clone(),
        reason,
    }
}

fn order(status: KeyStatus) -> u8 {
    match status {
        KeyStatus::Current => 0,
        KeyStatus::Next => 1,
        KeyStatus::Previous => 2,
        KeyStatus::Retired => 3,
    }
}
