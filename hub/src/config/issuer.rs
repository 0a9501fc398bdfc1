//! [`Issuer`]: the hub's issuer identifier, compared as an exact string by every verifier.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// The hub's public URL, the `iss` of every token and the base of every endpoint URL.
///
/// OIDC verifiers (Kubernetes, go-oidc, openid-client) compare issuers as exact strings,
/// so the text is canonical: `https://hub.example` (no trailing slash when there is no
/// path), `https://hub.example/tether` (no trailing slash after a path either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    url: Url,
    text: String,
}

impl Issuer {
    /// Parses and canonicalises an issuer URL.
    pub fn parse(text: &str) -> Result<Self, url::ParseError> {
        Url::parse(text).map(Self::from_url)
    }

    /// Canonicalises a parsed URL.
    pub fn from_url(url: Url) -> Self {
        let text = url.as_str().trim_end_matches('/').to_owned();
        Self { url, text }
    }

    /// The canonical issuer string, as it appears in `iss` and in discovery.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The absolute URL of a hub route: `route` starts with `/`.
    pub fn endpoint(&self, route: &str) -> String {
        format!("{}{route}", self.text)
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Issuer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Issuer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text)
            .map_err(|err| serde::de::Error::custom(format_args!("invalid URL {text:?}: {err}")))
    }
}
