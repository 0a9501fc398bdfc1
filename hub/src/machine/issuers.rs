//! Trusted external issuers of workload JWTs (a CI system's OIDC tokens).
//!
//! A token is routed here when its (unverified) `iss` is exactly a configured issuer; it is
//! then verified with that issuer's keys by tether_common's [`Verifier`]: `alg` (ES256 or
//! RS256, never `none` or HMAC), `kid`, signature, `iss`, `aud`, `exp`, `nbf` and `iat` with
//! the default 30 s skew.
//!
//! Keys come from `jwks_uri` (configured, or found by discovery at
//! `{issuer}/.well-known/openid-configuration`), fetched on first use and cached. A token
//! signed by an unknown `kid` triggers a refetch, at most once per [`REFETCH_INTERVAL`] per
//! issuer (a flood of forged `kid`s cannot make the hub hammer the issuer); keys older than
//! [`MAX_KEYS_AGE`] are refetched on use (old ones kept if that fails). Concurrent fetches of
//! one issuer are one fetch.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use tether_common::time::UnixTime;
use tether_common::token::{
    HasRegisteredClaims, Jwks, KeySet, Verifier, VerifyError, VerifyOptions,
};
use tokio::sync::{Mutex, watch};
use url::Url;

use super::config::TrustedIssuerConfig;
use super::{METRIC_JWKS_FETCHES, MachineError};

/// Least time between two fetches of one issuer's keys.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Keys older than this are refetched when next used.
pub const MAX_KEYS_AGE: Duration = Duration::from_secs(3600);
/// Timeout of one request to an issuer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of connecting to an issuer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery or JWKS document read.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The discovery path under an issuer.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Why an issuer's token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// The token failed verification (signature, kid, alg, iss, aud, exp, nbf...).
    #[error("trusted issuer {issuer}: {source}")]
    Refused {
        /// The issuer's name.
        issuer: String,
        /// What was wrong.
        #[source]
        source: VerifyError,
    },
    /// The issuer's keys could not be fetched (and none are cached).
    #[error("trusted issuer {issuer}: keys unavailable: {reason}")]
    Unavailable {
        /// The issuer's name.
        issuer: String,
        /// What failed (never a token).
        reason: String,
    },
}

/// The verified claims of an external token: `sub` and everything else.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExternalClaims {
    /// The subject.
    pub sub: String,
    /// Every claim, including the registered ones.
    #[serde(flatten)]
    pub claims: Map<String, Value>,
}

impl HasRegisteredClaims for ExternalClaims {
    const REQUIRED_CLAIMS: &'static [&'static str] = &["sub"];
}

/// The configured trusted issuers, by `iss`.
#[derive(Debug, Default)]
pub struct TrustedIssuers {
    by_iss: HashMap<String, Arc<TrustedIssuer>>,
}

impl TrustedIssuers {
    /// Builds one HTTP client per issuer (its own CA, if any). Nothing is fetched yet.
    pub fn new(configs: &[TrustedIssuerConfig]) -> Result<Self, MachineError> {
        let mut by_iss = HashMap::new();
        for config in configs {
            let issuer = TrustedIssuer::new(config)?;
            by_iss.insert(config.issuer.as_str().to_owned(), Arc::new(issuer));
        }
        Ok(Self { by_iss })
    }

    /// The issuer whose `iss` is exactly `iss`.
    pub fn get(&self, iss: &str) -> Option<&TrustedIssuer> {
        self.by_iss.get(iss).map(Arc::as_ref)
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.by_iss.is_empty()
    }
}

/// One trusted issuer and its cached keys.
pub struct TrustedIssuer {
    name: String,
    issuer: String,
    audience: String,
    jwks_uri: Option<Url>,
    http: reqwest::Client,
    /// The current keys; readers never wait on a fetch.
    keys: watch::Sender<Option<Arc<FetchedKeys>>>,
    /// Held while fetching: one fetch at a time per issuer.
    fetch: Mutex<FetchState>,
}

/// Keys as fetched at some time.
#[derive(Debug)]
struct FetchedKeys {
    verifier: Verifier,
    fetched_at: UnixTime,
    generation: u64,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<UnixTime>,
    /// `jwks_uri` found by discovery.
    discovered: Option<Url>,
    generation: u64,
}

/// The fields of a discovery document the hub reads.
#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: Url,
}

impl TrustedIssuer {
    fn new(config: &TrustedIssuerConfig) -> Result<Self, MachineError> {
        let fail = |reason: String| MachineError::Issuer {
            name: config.name.clone(),
            reason,
        };
        // Idempotent: `main` installs the same provider first; tests may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tether-hub/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path)
                .map_err(|err| fail(format!("ca_file {}: {err}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|err| fail(format!("ca_file {}: {err}", path.display())))?;
            if certs.is_empty() {
                return Err(fail(format!(
                    "ca_file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|err| fail(format!("building the HTTP client: {err}")))?;
        Ok(Self {
            name: config.name.clone(),
            issuer: config.issuer.as_str().to_owned(),
            audience: config.audience.clone(),
            jwks_uri: config.jwks_uri.clone(),
            http,
            keys: watch::channel(None).0,
            fetch: Mutex::new(FetchState::default()),
        })
    }

    /// The configured name (`ci`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The issuer string (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies `token` at `now`, fetching keys when needed (see the module documentation).
    pub async fn verify(&self, token: &str, now: UnixTime) -> Result<ExternalClaims, IssuerError> {
        let mut keys = self.keys.borrow().clone();
        let stale = keys
            .as_ref()
            .is_none_or(|k| k.fetched_at.saturating_add(MAX_KEYS_AGE) <= now);
        if stale {
            keys = Some(
                self.refresh(now, keys.as_ref().map(|k| k.generation))
                    .await?,
            );
        }
        let Some(current) = keys else {
            return Err(self.unavailable("no keys".to_owned()));
        };
        match current.verifier.verify_as::<ExternalClaims>(token, now) {
            Err(VerifyError::UnknownKid) => {
                let fresh = self.refresh(now, Some(current.generation)).await?;
                fresh
                    .verifier
                    .verify_as(token, now)
                    .map_err(|source| self.refused(source))
            }
            other => other.map_err(|source| self.refused(source)),
        }
    }

    /// Fetches the keys unless someone else did since `seen` or the last attempt is younger
    /// than [`REFETCH_INTERVAL`]; returns the keys to use. Fails only when there are none.
    async fn refresh(
        &self,
        now: UnixTime,
        seen: Option<u64>,
    ) -> Result<Arc<FetchedKeys>, IssuerError> {
        let mut state = self.fetch.lock().await;
        let current = self.keys.borrow().clone();
        if let Some(keys) = &current
            && Some(keys.generation) != seen
        {
            return Ok(Arc::clone(keys));
        }
        let recent = state
            .last_attempt
            .is_some_and(|last| now < last.saturating_add(REFETCH_INTERVAL));
        if recent {
            return current.ok_or_else(|| {
                self.unavailable(format!(
                    "the last fetch failed; retrying at most every {}",
                    humantime::format_duration(REFETCH_INTERVAL)
                ))
            });
        }
        state.last_attempt = Some(now);
        match self.fetch_keys(&mut state).await {
            Ok(set) => {
                metrics::counter!(METRIC_JWKS_FETCHES, "issuer" => self.name.clone(), "outcome" => "success").increment(1);
                state.generation += 1;
                let keys = Arc::new(FetchedKeys {
                    verifier: Verifier::new(
                        set,
                        VerifyOptions::new(self.issuer.clone(), self.audience.clone()),
                    ),
                    fetched_at: now,
                    generation: state.generation,
                });
                self.keys.send_replace(Some(Arc::clone(&keys)));
                tracing::info!(issuer = %self.name, "trusted issuer keys fetched");
                Ok(keys)
            }
            Err(reason) => {
                metrics::counter!(METRIC_JWKS_FETCHES, "issuer" => self.name.clone(), "outcome" => "error").increment(1);
                tracing::warn!(issuer = %self.name, %reason, "cannot fetch the trusted issuer's keys");
                current.ok_or_else(|| self.unavailable(reason))
            }
        }
    }

    /// Discovery (unless `jwks_uri` is known), then the JWKS.
    async fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let jwks_uri = match (&self.jwks_uri, &state.discovered) {
            (Some(uri), _) | (None, Some(uri)) => uri.clone(),
            (None, None) => {
                let url = format!("{}{DISCOVERY_PATH}", self.issuer);
                let discovery: Discovery = self.get_json(&url).await?;
                if discovery.issuer != self.issuer {
                    return Err(format!(
                        "{url}: issuer is {:?}, expected {:?}",
                        discovery.issuer, self.issuer
                    ));
                }
                if !matches!(discovery.jwks_uri.scheme(), "https" | "http")
                    || (discovery.jwks_uri.scheme() == "http"
                        && Url::parse(&self.issuer).is_ok_and(|u| u.scheme() == "https"))
                {
                    return Err(format!(
                        "{url}: jwks_uri {} is not https",
                        discovery.jwks_uri
                    ));
                }
                state.discovered = Some(discovery.jwks_uri.clone());
                discovery.jwks_uri
            }
        };
        let jwks: Jwks = self.get_json(jwks_uri.as_str()).await?;
        let set = KeySet::from_jwks(&jwks);
        for rejected in set.rejected() {
            tracing::warn!(issuer = %self.name, kid = ?rejected.kid, reason = %rejected.reason, "JWK skipped");
        }
        if set.is_empty() {
            return Err(format!("{jwks_uri}: no usable key (ES256 or RS256)"));
        }
        Ok(set)
    }

    /// GETs `url` (bounded body, no redirects) and parses JSON.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| format!("GET {url}: {}", describe(&err)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| format!("GET {url}: {}", describe(&err)))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(format!("GET {url}: larger than {MAX_BODY_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|err| format!("GET {url}: invalid JSON: {err}"))
    }

    fn refused(&self, source: VerifyError) -> IssuerError {
        IssuerError::Refused {
            issuer: self.name.clone(),
            source,
        }
    }

    fn unavailable(&self, reason: String) -> IssuerError {
        IssuerError::Unavailable {
            issuer: self.name.clone(),
            reason,
        }
    }
}

impl fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedIssuer")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_uri", &self.jwks_uri)
            .finish_non_exhaustive()
    }
}

/// A reqwest error with its causes (URLs of discovery and JWKS carry no secret).
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
