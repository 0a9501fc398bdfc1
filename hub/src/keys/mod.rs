//! Signing keys: `next -> current -> previous -> retired`, encrypted at rest, published by
//! JWKS before they sign and after they stop, rotated exactly once across hub replicas.
//!
//! - [`config`]: [`KeysConfig`] (the `keys:` config section).
//! - [`kek`]: [`Kek`], the key-encryption key (AES-256-GCM).
//! - [`lifecycle`]: the pure rules: which transitions are due at `now`.
//! - [`state`]: [`KeyState`], the published snapshot (signer + JWKS).
//! - [`manager`]: [`KeyManager`], which applies transitions in the store and publishes.
//!
//! Key material never appears in logs, errors or any API except the encrypted column.

pub mod config;
pub mod kek;
pub mod lifecycle;
pub mod manager;
pub mod state;

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
#[cfg(test)]
mod tests;

pub use config::KeysConfig;
pub use kek::Kek;
pub use manager::{KeyEvent, KeyManager};
pub use state::{KeyInfo, KeyState};

use crate::store::StoreError;

/// Counter of tokens signed, labelled `kind` (e.g. `cluster`, `id`).
pub const METRIC_TOKENS_MINTED: &str = "tether_hub_tokens_minted_total";
/// Gauge of keys in the JWKS.
pub const METRIC_KEYS_PUBLISHED: &str = "tether_hub_keys_published";
/// Counter of rotations, labelled `kind` = `scheduled` | `emergency`.
pub const METRIC_KEY_ROTATIONS: &str = "tether_hub_key_rotations_total";

/// Audit kinds written by this module.
pub mod audit_kind {
    /// The first keys were created.
    pub const BOOTSTRAP: &str = "key.bootstrap";
    /// A scheduled rotation.
    pub const ROTATION: &str = "key.rotation";
    /// An emergency rotation (a key dropped at once).
    pub const EMERGENCY_ROTATION: &str = "key.emergency_rotation";
    /// A previous key left the JWKS.
    pub const RETIREMENT: &str = "key.retirement";
    /// A missing current or next key was recreated.
    pub const REPAIR: &str = "key.repair";
}

/// Why a key operation failed. No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The `keys:` settings contradict each other.
    #[error("invalid keys configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The KEK file could not be read.
    #[error("cannot read the key-encryption key file {path}")]
    KekRead {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The KEK file is readable by group or others.
    #[error(
        "the key-encryption key file {path} has mode {mode:04o}; it must not be accessible to group or others (chmod 600)"
    )]
    KekPermissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The KEK file does not hold 32 bytes (raw or base64).
    #[error("the key-encryption key file {path} is invalid: {reason}")]
    KekFormat {
        /// The file.
        path: String,
        /// What is wrong (never the content).
        reason: String,
    },
    /// A new KEK file could not be written (it may already exist).
    #[error("cannot create the key-encryption key file {path}")]
    KekWrite {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// AES-GCM refused to encrypt (should not happen).
    #[error("encrypting a signing key failed")]
    Crypto,
    /// A stored private key did not decrypt: wrong KEK, or a tampered or moved ciphertext.
    #[error(
        "cannot decrypt signing key {kid}: wrong key-encryption key (keys.kek_file) or a corrupted row"
    )]
    Decrypt {
        /// The key id.
        kid: String,
    },
    /// A decrypted private key was rejected.
    #[error("cannot load signing key {kid}")]
    Load {
        /// The key id.
        kid: String,
        /// Why.
        #[source]
        source: tether_common::token::KeyError,
    },
    /// Generating a new key failed.
    #[error("cannot generate a signing key")]
    Generate(#[source] tether_common::token::KeyError),
    /// Signing a token failed.
    #[error("cannot sign a token")]
    Sign(#[source] tether_common::token::KeyError),
    /// A token to sign has no integer `exp`; every token the hub signs must expire.
    #[error("refusing to sign a token without an integer exp claim")]
    MissingExpiry,
    /// A token to sign outlives `keys.max_token_lifetime`, so it could outlive its key's
    /// publication.
    #[error(
        "refusing to sign a token expiring at {exp}: later than now + keys.max_token_lifetime ({limit})"
    )]
    LifetimeTooLong {
        /// The token's `exp`.
        exp: i64,
        /// The latest allowed `exp`.
        limit: i64,
    },
    /// This replica has not read the key table for longer than `2 × keys.refresh_interval`
    /// (the store is unreachable?): its current key may have been rotated out, so it does
    /// not sign.
    #[error(
        "refusing to sign: signing keys last refreshed at {refreshed_at}, more than 2 × keys.refresh_interval ago"
    )]
    Stale {
        /// Unix time of the last successful refresh.
        refreshed_at: i64,
    },
    /// A stored key row is inconsistent.
    #[error("signing key {kid} is corrupt: {reason}")]
    CorruptKey {
        /// The key id.
        kid: String,
        /// What is wrong.
        reason: String,
    },
    /// The key table has no `current` key.
    #[error("no current signing key")]
    NoCurrentKey,
    /// Other writers kept changing the key table; gave up after several attempts.
    #[error("gave up changing signing keys after {attempts} conflicting attempts")]
    Contention {
        /// How many attempts were made.
        attempts: u32,
    },
    /// A blocking key-generation task failed.
    #[error("key generation task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The store failed.
    #[error("key storage failed")]
    Store(#[from] StoreError),
}
