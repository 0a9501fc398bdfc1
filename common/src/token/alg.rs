//! The signature algorithms Tether signs and accepts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A JWS signature algorithm. ES256 is the default; RS256 exists for old clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256, fixed-length (r || s) signatures.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (2048-bit keys when we generate them).
    #[serde(rename = "RS256")]
    Rs256,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 2] = [Algorithm::Es256, Algorithm::Rs256];

    /// The JOSE name (`"ES256"` or `"RS256"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
        }
    }

    /// The JWK key type this algorithm uses (`"EC"` or `"RSA"`).
    pub const fn key_type(self) -> &'static str {
        match self {
            Algorithm::Es256 => "EC",
            Algorithm::Rs256 => "RSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `"ES256"` or `"RS256"` (names are case-sensitive, as in JOSE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signature algorithm (expected ES256 or RS256)")]
pub struct UnsupportedAlgorithm;

impl FromStr for Algorithm {
    type Err = UnsupportedAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or(UnsupportedAlgorithm)
    }
}

#[cfg(test)]
mod tests;
