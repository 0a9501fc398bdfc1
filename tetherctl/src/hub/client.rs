//! [`HubClient`]: discovery, the token endpoint (every grant), device authorization,
//! revocation and the cluster list, over reqwest with rustls on ring.
//!
//! Every request has a connect and a total timeout and follows no redirect. This is the one
//! place HTTP answers become [`Error`]s: an RFC 6749 error body becomes [`Error::OAuth`]
//! (callers turn `invalid_grant` / `invalid_target` into messages of their own), anything
//! else non-2xx becomes [`Error::HubStatus`]. Token values never appear in an error.

use std::error::Error as StdError;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tether_common::secret::Secret;

use super::{HubTarget, HubUrl, check_endpoint};
use crate::error::{Error, Result};

/// The hub's built-in public client.
pub const CLIENT_ID: &str = "tetherctl";
/// What `login` asks for: an ID token, the user's groups, and a refresh token.
pub const SCOPE: &str = "openid profile groups offline_access";
/// OpenID Connect Discovery.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The clusters the logged-in user may reach.
pub const CLUSTERS_PATH: &str = "/api/v1/clusters";

/// Limit on connecting (TCP + TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit on one whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from the hub.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// `grant_type` values.
pub mod grant_type {
    /// RFC 6749 §4.1.3.
    pub const AUTHORIZATION_CODE: &str = "authorization_code";
    /// RFC 6749 §6.
    pub const REFRESH_TOKEN: &str = "refresh_token";
    /// RFC 8628 §3.4.
    pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
    /// RFC 8693 §2.1.
    pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
}

/// RFC 8693 token type identifiers.
pub mod token_type {
    /// A hub access token (the user path).
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    /// A JWT: a Kubernetes ServiceAccount token or an external workload token.
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
}

/// RFC 6749 / RFC 8628 error codes the commands react to.
pub mod error_code {
    /// The grant (code, refresh token, subject token) is not valid (any more).
    pub const INVALID_GRANT: &str = "invalid_grant";
    /// RFC 8693: the audience (cluster) is unknown or not allowed.
    pub const INVALID_TARGET: &str = "invalid_target";
    /// RFC 6750: the bearer token is not valid.
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// RFC 8628: the user has not confirmed yet.
    pub const AUTHORIZATION_PENDING: &str = "authorization_pending";
    /// RFC 8628: poll less often (+5 s).
    pub const SLOW_DOWN: &str = "slow_down";
    /// RFC 8628: the device code expired.
    pub const EXPIRED_TOKEN: &str = "expired_token";
    /// The user (or the hub's policy) refused.
    pub const ACCESS_DENIED: &str = "access_denied";
}

/// The discovery fields the CLI uses.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Discovery {
    /// The issuer (compared with a callback's `iss`, RFC 9207).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Where the browser login starts.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// RFC 7009 revocation.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// RFC 8628 device authorization, if the hub offers it.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

/// A successful token endpoint answer.
#[derive(Clone)]
pub struct TokenResponse {
    /// The access token (a hub access token, or a cluster token from an exchange).
    pub access_token: Secret,
    /// Its lifetime in seconds, if the hub said.
    pub expires_in: Option<u64>,
    /// A new refresh token (code and refresh grants; rotated on every use).
    pub refresh_token: Option<Secret>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// RFC 8628 §3.2: the device authorization answer.
#[derive(Clone, Deserialize)]
pub struct DeviceAuthorization {
    /// The code the CLI polls with (a secret).
    #[serde(deserialize_with = "secret")]
    pub device_code: Secret,
    /// The code the user confirms.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The same, with the user code filled in.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Seconds between polls (RFC 8628 default 5).
    #[serde(default)]
    pub interval: Option<u64>,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// A cluster the hub offers the logged-in user (`GET /api/v1/clusters`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct OfferedCluster {
    /// The cluster's name (the token exchange `audience`).
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Where kubectl reaches it (the agent's proxy).
    pub proxy_url: String,
    /// The CA of the proxy's serving certificate, PEM; empty for a publicly trusted one.
    #[serde(default)]
    pub proxy_ca_pem: String,
}

/// An HTTP client for one hub.
#[derive(Clone, Debug)]
pub struct HubClient {
    hub: HubUrl,
    http: reqwest::Client,
}

impl HubClient {
    /// A client trusting `target.ca`: only the given CAs, or the system's roots.
    pub fn new(target: &HubTarget) -> Result<Self> {
        // Idempotent: `main` installs the same provider first; tests may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("tetherctl/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = target.ca.pem() {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                Error::invalid("hub CA", "(PEM)", format!("unusable certificate: {e}"))
            })?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().map_err(|e| Error::Unavailable {
            url: target.url.to_string(),
            source: format!("cannot set up the HTTP client: {e}").into(),
        })?;
        Ok(Self {
            hub: target.url.clone(),
            http,
        })
    }

    /// The hub.
    pub fn hub(&self) -> &HubUrl {
        &self.hub
    }

    /// `GET /.well-known/openid-configuration`, with every endpoint checked to be https
    /// (or loopback http).
    pub async fn discover(&self) -> Result<Discovery> {
        let url = self.hub.join(DISCOVERY_PATH);
        let discovery: Discovery = self.json(self.http.get(&url), &url).await?;
        check_endpoint("authorization_endpoint", &discovery.authorization_endpoint)?;
        check_endpoint("token_endpoint", &discovery.token_endpoint)?;
        if let Some(url) = &discovery.revocation_endpoint {
            check_endpoint("revocation_endpoint", url)?;
        }
        if let Some(url) = &discovery.device_authorization_endpoint {
            check_endpoint("device_authorization_endpoint", url)?;
        }
        Ok(discovery)
    }

    /// POSTs `form` to the token endpoint.
    pub async fn token(&self, endpoint: &str, form: &[(&str, &str)]) -> Result<TokenResponse> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(deserialize_with = "secret")]
            access_token: Secret,
            #[serde(default)]
            expires_in: Option<u64>,
            #[serde(default, deserialize_with = "optional_secret")]
            refresh_token: Option<Secret>,
        }
        let raw: Raw = self.post_form(endpoint, form).await?;
        Ok(TokenResponse {
            access_token: raw.access_token,
            expires_in: raw.expires_in,
            refresh_token: raw.refresh_token,
        })
    }

    /// RFC 8628 §3.1: starts a device login.
    pub async fn device_authorization(&self, endpoint: &str) -> Result<DeviceAuthorization> {
        self.post_form(endpoint, &[("client_id", CLIENT_ID), ("scope", SCOPE)])
            .await
    }

    /// RFC 7009: revokes `token` (a refresh token), which ends its session.
    pub async fn revoke(&self, endpoint: &str, token: &Secret) -> Result<()> {
        let request = self.form_request(
            endpoint,
            &[
                ("token", token.expose()),
                ("token_type_hint", "refresh_token"),
                ("client_id", CLIENT_ID),
            ],
        );
        self.send(request, endpoint).await.map(|_| ())
    }

    /// `GET /api/v1/clusters` as the user of `access_token`.
    pub async fn clusters(&self, access_token: &Secret) -> Result<Vec<OfferedCluster>> {
        #[derive(Deserialize)]
        struct List {
            clusters: Vec<OfferedCluster>,
        }
        let url = self.hub.join(CLUSTERS_PATH);
        let bearer =
            HeaderValue::try_from(format!("Bearer {}", access_token.expose())).map_err(|_| {
                Error::BadResponse {
                    url: "token_endpoint".to_owned(),
                    reason: "the access token is not a valid header value".to_owned(),
                }
            })?;
        let request = self.http.get(&url).header(AUTHORIZATION, bearer);
        let list: List = self.json(request, &url).await?;
        Ok(list.clusters)
    }

    async fn post_form<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<T> {
        self.json(self.form_request(endpoint, form), endpoint).await
    }

    fn form_request(&self, endpoint: &str, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.http
            .request(Method::POST, endpoint)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
    }

    async fn json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T> {
        let body = self.send(request, url).await?;
        serde_json::from_slice(&body).map_err(|e| Error::BadResponse {
            url: url.to_owned(),
            reason: format!("not the expected JSON: {e}"),
        })
    }

    /// Sends, reads at most [`MAX_BODY_BYTES`], and maps every failure.
    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> Result<Vec<u8>> {
        let mut response = request
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(e, url))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_error(e, url))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(Error::BadResponse {
                    url: url.to_owned(),
                    reason: format!("larger than {MAX_BODY_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        Err(status_error(status, &body, url))
    }
}

/// An RFC 6749 error body.
#[derive(Debug, Deserialize)]
struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A non-2xx answer: the OAuth error if the body is one, else the status.
fn status_error(status: StatusCode, body: &[u8], url: &str) -> Error {
    match serde_json::from_slice::<OAuthErrorBody>(body) {
        Ok(e) if !e.error.is_empty() => Error::OAuth {
            url: url.to_owned(),
            code: bounded(&e.error),
            description: e.error_description.map(|d| bounded(&d)),
        },
        _ => Error::HubStatus {
            url: url.to_owned(),
            status: status.to_string(),
        },
    }
}

/// A failure below HTTP: timeout, TLS, connection.
fn transport_error(err: reqwest::Error, url: &str) -> Error {
    if err.is_timeout() {
        return Error::Timeout {
            url: url.to_owned(),
            timeout: REQUEST_TIMEOUT,
        };
    }
    let tls = is_tls_error(&err);
    // reqwest's message repeats the URL; the chain underneath says what happened.
    let source: Box<dyn StdError + Send + Sync> = Box::new(err.without_url());
    if tls {
        Error::Tls {
            url: url.to_owned(),
            source,
        }
    } else {
        Error::Unavailable {
            url: url.to_owned(),
            source,
        }
    }
}

/// Whether a rustls error is somewhere in the chain. `io::Error::source` skips the error it
/// wraps, so descend through `io::Error::get_ref` instead.
fn is_tls_error(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    for _ in 0..16 {
        let Some(e) = current else {
            break;
        };
        if e.is::<rustls::Error>() {
            return true;
        }
        current = match e.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    false
}

/// A hub-sent string, bounded (it ends up in a terminal).
fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

fn secret<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Secret, D::Error> {
    let value = String::deserialize(de)?;
    if value.is_empty() {
        return Err(serde::de::Error::custom("empty token"));
    }
    Ok(Secret::new(value))
}

fn optional_secret<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(de)?
        .filter(|v| !v.is_empty())
        .map(Secret::new))
}
