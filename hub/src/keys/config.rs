//! Key configuration: the `keys:` section of the hub's config file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_common::token::Algorithm;

use super::KeyError;

/// Default time a `current` key signs before it is rotated.
pub const DEFAULT_ROTATION_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Default time a `next` key is published before it may sign.
pub const DEFAULT_PUBLISH_LEAD: Duration = Duration::from_secs(10 * 60);
/// Default period of a replica's reload of the key table.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// Default longest lifetime of a token the hub signs.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Default clock skew tolerated by verifiers.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(30);
/// The JWKS `Cache-Control: max-age` is this fraction of `publish_lead`.
pub const JWKS_MAX_AGE_DIVISOR: u32 = 4;

/// Signing-key settings. Durations are humantime strings (`"24h"`, `"10m"`, `"30s"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Algorithm of newly generated keys: `ES256` (default) or `RS256`.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// How long a key signs before the next one takes over.
    #[serde(default = "default_rotation_interval", with = "humantime_duration")]
    pub rotation_interval: Duration,
    /// How long a `next` key is in the JWKS before it may sign. Must exceed the JWKS cache
    /// max-age ([`KeysConfig::jwks_max_age`]) plus the staleness bound
    /// ([`KeysConfig::max_staleness`]).
    #[serde(default = "default_publish_lead", with = "humantime_duration")]
    pub publish_lead: Duration,
    /// How often each hub replica re-reads the key table (and performs due transitions).
    #[serde(default = "default_refresh_interval", with = "humantime_duration")]
    pub refresh_interval: Duration,
    /// The key-encryption key: 32 random bytes, raw or base64, mode 0600 or stricter.
    pub kek_file: PathBuf,
    /// Longest lifetime of any token the hub signs; [`super::KeyManager::sign`] enforces it.
    #[serde(default = "default_max_token_lifetime", with = "humantime_duration")]
    pub max_token_lifetime: Duration,
    /// Clock skew verifiers tolerate past a token's expiry.
    #[serde(default = "default_clock_skew", with = "humantime_duration")]
    pub clock_skew: Duration,
}

impl KeysConfig {
    /// Defaults for everything but the KEK file.
    pub fn new(kek_file: impl Into<PathBuf>) -> Self {
        Self {
            algorithm: Algorithm::default(),
            rotation_interval: DEFAULT_ROTATION_INTERVAL,
            publish_lead: DEFAULT_PUBLISH_LEAD,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            kek_file: kek_file.into(),
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            clock_skew: DEFAULT_CLOCK_SKEW,
        }
    }

    /// The `Cache-Control: max-age` for the JWKS: `publish_lead / 4`, so a verifier refetches
    /// well before a `next` key starts signing.
    pub fn jwks_max_age(&self) -> Duration {
        self.publish_lead / JWKS_MAX_AGE_DIVISOR
    }

    /// How far a replica's view of the keys may lag the store: two refresh intervals (one
    /// period plus slack for a slow reload). Past it, [`super::KeyManager::sign`] refuses to
    /// sign, so a replica that cannot reach the store never signs with a retired key.
    pub fn max_staleness(&self) -> Duration {
        self.refresh_interval * 2
    }

    /// How long after a key stops signing it stays published: the longest token lifetime,
    /// plus the skew verifiers allow, plus [`KeysConfig::max_staleness`] (another replica
    /// may still sign with it until its next reload).
    pub fn retire_margin(&self) -> Duration {
        self.max_token_lifetime + self.clock_skew + self.max_staleness()
    }

    /// Checks the relations between the settings.
    pub fn validate(&self) -> Result<(), KeyError> {
        let invalid = |reason: String| Err(KeyError::InvalidConfig { reason });
        for (name, value) in [
            ("rotation_interval", self.rotation_interval),
            ("publish_lead", self.publish_lead),
            ("refresh_interval", self.refresh_interval),
            ("max_token_lifetime", self.max_token_lifetime),
        ] {
            if value < Duration::from_secs(1) {
                return invalid(format!("keys.{name} must be at least 1s"));
            }
        }
        if self.jwks_max_age() + self.max_staleness() >= self.publish_lead {
            return invalid(format!(
                "keys.publish_lead ({}) must exceed the JWKS max-age ({}, a quarter of it) plus twice keys.refresh_interval ({}), \
                 or verifiers may see a token before its key",
                humantime::format_duration(self.publish_lead),
                humantime::format_duration(self.jwks_max_age()),
                humantime::format_duration(self.max_staleness()),
            ));
        }
        Ok(())
    }
}

fn default_rotation_interval() -> Duration {
    DEFAULT_ROTATION_INTERVAL
}
fn default_publish_lead() -> Duration {
    DEFAULT_PUBLISH_LEAD
}
fn default_refresh_interval() -> Duration {
    DEFAULT_REFRESH_INTERVAL
}
fn default_max_token_lifetime() -> Duration {
    DEFAULT_MAX_TOKEN_LIFETIME
}
fn default_clock_skew() -> Duration {
    DEFAULT_CLOCK_SKEW
}

/// Serde for `Duration` as a humantime string.
mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); use e.g. \"24h\", \"10m\", \"30s\""
            ))
        })
    }
}
