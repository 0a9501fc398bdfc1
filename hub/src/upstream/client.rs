//! [`Upstream`]: the relying party itself (discovery, login, callback, re-validation).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, AuthType, AuthorizationCode, ClientId,
    ClientSecret, CsrfToken, DiscoveryError, EmptyExtraTokenFields, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IdToken, IdTokenFields, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardErrorResponse,
    StandardTokenResponse, SubjectIdentifier, TokenResponse as _, UserInfoClaims, UserInfoError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tether_common::secret::Secret;
use tether_common::time::{Clock, SystemClock, UnixTime};
use tracing::Instrument as _;
use url::Url;

use super::config::{SYSTEM_PREFIX, UpstreamConfig};
use super::http::{HttpClient, HttpError};
use super::mapping::{self, CLAIM_SUB};
use super::{Identity, PendingLogin, UpstreamError, UpstreamGrant, UpstreamLogin};

/// The counter of calls to the IdP, labelled `op` (`discovery`, `exchange`, `id_token`,
/// `userinfo`, `refresh`) and `outcome` (`ok`, `revoked`, `refused`, `unavailable`, `error`).
pub const METRIC_REQUESTS: &str = "tether_hub_upstream_requests_total";
/// Bound on the whole of discovery (metadata + JWKS) at startup.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// Every claim of an id_token or userinfo response that openidconnect does not model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct OtherClaims {
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

type IdTokenOf = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
pub(super) type TokenError =
    RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>;
/// The client, generic over which endpoints are known.
type ClientWith<Auth, Token, Userinfo> = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    Auth,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    Token,
    Userinfo,
>;
/// After discovery: the token and userinfo endpoints are checked at call time.
type OidcClient = ClientWith<EndpointSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The relying party to the upstream IdP. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    config: UpstreamConfig,
    client: OidcClient,
    /// Accepted id_token algorithms: the IdP's, minus HMAC and `none`.
    id_token_algs: Vec<CoreJwsSigningAlgorithm>,
    /// Whether discovery named a userinfo endpoint.
    has_userinfo: bool,
    http: HttpClient,
    clock: Arc<dyn Clock>,
}

impl Upstream {
    /// Reads the client secret file and runs discovery (metadata, then JWKS) at the issuer,
    /// within [`DISCOVERY_TIMEOUT`]. `redirect_uri` is the hub's callback
    /// (`{issuer}/callback`), registered at the IdP.
    pub async fn discover(
        config: &UpstreamConfig,
        redirect_uri: Url,
    ) -> Result<Self, UpstreamError> {
        config.validate()?;
        let issuer = config.issuer.to_string();
        let secret = match &config.client_secret_file {
            Some(path) => Some(read_secret_file(path)?),
            None => None,
        };
        let http = HttpClient::new().map_err(|err| UpstreamError::Http(err.to_string()))?;
        let span = tracing::info_span!("upstream.discovery", issuer = %issuer);
        let metadata =
            tokio::time::timeout(DISCOVERY_TIMEOUT, fetch_metadata(&config.issuer, &http))
                .instrument(span)
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "no answer within {}",
                        humantime::format_duration(DISCOVERY_TIMEOUT)
                    ))
                });
        let metadata = count(
            "discovery",
            metadata.map_err(|reason| UpstreamError::Discovery {
                issuer: issuer.clone(),
                reason,
            }),
        )?;
        let discovery_error = |reason: &str| UpstreamError::Discovery {
            issuer: issuer.clone(),
            reason: reason.to_owned(),
        };
        if metadata.token_endpoint().is_none() {
            return Err(discovery_error(
                "the provider metadata has no token_endpoint",
            ));
        }
        let auth_type = auth_type(&metadata, secret.is_some());
        let algs = asymmetric_algs(metadata.id_token_signing_alg_values_supported());
        let has_userinfo = metadata.userinfo_endpoint().is_some();
        if !has_userinfo {
            tracing::warn!(issuer = %issuer, "the IdP has no userinfo endpoint: claims come from the id_token only");
        }
        let client = OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            secret.map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(RedirectUrl::from_url(redirect_uri))
        .set_auth_type(auth_type);
        tracing::info!(issuer = %issuer, "upstream IdP discovered");
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                client,
                id_token_algs: algs,
                has_userinfo,
                http,
                clock: Arc::new(SystemClock),
            }),
        })
    }

    /// The same relying party with another clock (tests), used for `access_expires_at`.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                config: inner.config.clone(),
                client: inner.client.clone(),
                id_token_algs: inner.id_token_algs.clone(),
                has_userinfo: inner.has_userinfo,
                http: inner.http.clone(),
                clock,
            }),
        }
    }

    /// The IdP authorization URL to send the browser to (code flow, PKCE S256, `state`,
    /// `nonce`), and what must be kept until the callback.
    pub fn begin(&self) -> (Url, PendingLogin) {
        let (pending, challenge) = PendingLogin::generate();
        let state = CsrfToken::new(pending.state.clone());
        let nonce = Nonce::new(pending.nonce.clone());
        let mut request = self.inner.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || state,
            move || nonce,
        );
        for scope in &self.inner.config.scopes {
            // openidconnect always sends `openid` itself.
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let (url, _, _) = request.set_pkce_challenge(challenge).url();
        (url, pending)
    }

    /// The callback: exchanges `code` with the PKCE verifier, verifies the id_token
    /// (signature by the IdP's JWKS, `iss`, `aud`, `exp`, `nonce` = `pending.nonce`,
    /// `at_hash`), takes the username and groups from the id_token or, when it lacks them,
    /// from userinfo, and maps them. The caller has already checked `state`
    /// ([`PendingLogin::state_matches`]).
    pub async fn complete(
        &self,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<UpstreamLogin, UpstreamError> {
        let span = tracing::info_span!("upstream.exchange");
        let response = count(
            "exchange",
            self.exchange(code, pending).instrument(span).await,
        )?;
        let nonce = Nonce::new(pending.nonce.clone());
        let id_token = response
            .id_token()
            .ok_or_else(|| UpstreamError::IdToken("the token response has no id_token".into()))?;
        let claims = count(
            "id_token",
            self.verified_claims(id_token, response.access_token(), &nonce),
        )?;
        let grant = self.grant(&response, None);
        self.finish(claims, grant).await
    }

    /// Re-validation on a hub refresh: refreshes upstream when a refresh token is held
    /// (keeping a rotated one), else asks userinfo with the access token. `invalid_grant`,
    /// `invalid_token` or a 401 is [`UpstreamError::AccountRevoked`]; an access token past
    /// `access_expires_at` with no refresh token is [`UpstreamError::GrantExpired`]. Both end
    /// the session. The caller must check that the returned `identity.subject` is the
    /// session's, and store the returned grant in place of the old one.
    pub async fn revalidate(&self, grant: &UpstreamGrant) -> Result<UpstreamLogin, UpstreamError> {
        let Some(refresh_token) = &grant.refresh_token else {
            if grant
                .access_expires_at
                .is_some_and(|expires| expires <= self.inner.clock.now())
            {
                return Err(UpstreamError::GrantExpired);
            }
            if !self.inner.has_userinfo {
                return Err(UpstreamError::Userinfo(
                    "the IdP has no userinfo endpoint and no refresh token is held".into(),
                ));
            }
            let claims = self.userinfo(grant.access_token.expose(), None).await?;
            return self.map(&claims).map(|identity| UpstreamLogin {
                identity,
                grant: grant.clone(),
            });
        };
        let span = tracing::info_span!("upstream.refresh");
        let response = count(
            "refresh",
            self.refresh(refresh_token).instrument(span).await,
        )?;
        let new_grant = self.grant(&response, grant.refresh_token.clone());
        let claims =
            match response.id_token() {
                // A refreshed id_token carries no nonce, or the original one (OIDC Core §12.2).
                Some(id_token) => count(
                    "id_token",
                    self.verified_claims(id_token, response.access_token(), |_: Option<&Nonce>| {
                        Ok(())
                    }),
                )?,
                None => Map::new(),
            };
        self.finish(claims, new_grant).await
    }

    /// Whether a session last checked at `last_checked` is due for [`Upstream::revalidate`].
    pub fn recheck_due(&self, last_checked: UnixTime, now: UnixTime) -> bool {
        self.inner.config.recheck_due(last_checked, now)
    }

    /// The configuration this relying party was built from.
    pub fn config(&self) -> &UpstreamConfig {
        &self.inner.config
    }

    async fn exchange(
        &self,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<TokenResponse, UpstreamError> {
        let request = self
            .inner
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|err| UpstreamError::Exchange(err.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
        request
            .request_async(&self.inner.http)
            .await
            .map_err(|err| token_error(err, TokenOp::Exchange))
    }

    async fn refresh(&self, refresh_token: &Secret) -> Result<TokenResponse, UpstreamError> {
        let refresh_token = RefreshToken::new(refresh_token.expose().to_owned());
        let request = self
            .inner
            .client
            .exchange_refresh_token(&refresh_token)
            .map_err(|err| UpstreamError::Refresh(err.to_string()))?;
        request
            .request_async(&self.inner.http)
            .await
            .map_err(|err| token_error(err, TokenOp::Refresh))
    }

    /// Verifies `id_token` and returns all its claims as JSON.
    fn verified_claims(
        &self,
        id_token: &IdTokenOf,
        access_token: &AccessToken,
        nonce: impl openidconnect::NonceVerifier,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let verifier = self
            .inner
            .client
            .id_token_verifier()
            .set_allowed_algs(self.inner.id_token_algs.iter().cloned());
        let claims = id_token
            .claims(&verifier, nonce)
            .map_err(|err| UpstreamError::IdToken(err.to_string()))?;
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|err| UpstreamError::IdToken(err.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|err| UpstreamError::IdToken(err.to_string()))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|err| UpstreamError::IdToken(err.to_string()))?;
            if actual != *expected {
                return Err(UpstreamError::IdToken(
                    "at_hash does not match the access token".into(),
                ));
            }
        }
        to_map(claims).map_err(UpstreamError::IdToken)
    }

    /// Fills the username and groups from userinfo when `claims` (from an id_token, possibly
    /// empty) lack them, then maps.
    async fn finish(
        &self,
        mut claims: Map<String, Value>,
        grant: UpstreamGrant,
    ) -> Result<UpstreamLogin, UpstreamError> {
        let config = &self.inner.config;
        let needs_userinfo = self.inner.has_userinfo
            && [
                CLAIM_SUB,
                config.username_claim.as_str(),
                config.groups_claim.as_str(),
            ]
            .iter()
            .any(|name| !claims.contains_key(*name));
        if needs_userinfo {
            let subject = claims
                .get(CLAIM_SUB)
                .and_then(Value::as_str)
                .map(str::to_owned);
            let userinfo = self
                .userinfo(grant.access_token.expose(), subject.as_deref())
                .await?;
            for (name, value) in userinfo {
                claims.entry(name).or_insert(value);
            }
        }
        let identity = self.map(&claims)?;
        Ok(UpstreamLogin { identity, grant })
    }

    fn map(&self, claims: &Map<String, Value>) -> Result<Identity, UpstreamError> {
        let config = &self.inner.config;
        mapping::map_identity(claims, config).inspect_err(|err| {
            if let UpstreamError::SystemIdentity(what) = err {
                tracing::warn!(%what, "refused a `{SYSTEM_PREFIX}` identity from the IdP");
            }
        })
    }

    /// Userinfo with `access_token`; `subject`, when known, must match.
    async fn userinfo(
        &self,
        access_token: &str,
        subject: Option<&str>,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let span = tracing::info_span!("upstream.userinfo");
        let result = async {
            let request = self
                .inner
                .client
                .user_info(
                    AccessToken::new(access_token.to_owned()),
                    subject.map(|s| SubjectIdentifier::new(s.to_owned())),
                )
                .map_err(|err| UpstreamError::Userinfo(err.to_string()))?;
            let claims: UserInfoClaims<OtherClaims, CoreGenderClaim> = request
                .request_async(&self.inner.http)
                .await
                .map_err(userinfo_error)?;
            to_map(&claims).map_err(UpstreamError::Userinfo)
        }
        .instrument(span)
        .await;
        count("userinfo", result)
    }

    fn grant(&self, response: &TokenResponse, previous_refresh: Option<Secret>) -> UpstreamGrant {
        let now = self.inner.clock.now();
        UpstreamGrant {
            access_token: Secret::new(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone()))
                .or(previous_refresh),
            access_expires_at: response.expires_in().and_then(|d| now.checked_add(d)),
        }
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("issuer", &self.inner.config.issuer.as_str())
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

/// Records the outcome of one call to the IdP.
fn count<T>(op: &'static str, result: Result<T, UpstreamError>) -> Result<T, UpstreamError> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(err) => {
            tracing::warn!(op, error = %err, "upstream IdP call failed");
            err.outcome()
        }
    };
    metrics::counter!(METRIC_REQUESTS, "op" => op, "outcome" => outcome).increment(1);
    result
}

/// Fetches the provider metadata and its JWKS. An issuer configured as `https://idp/`
/// matches a document saying `https://idp` and the other way round (the URL type cannot
/// tell them apart); any other difference fails (OpenID Connect Discovery 1.0 §4.3).
async fn fetch_metadata(issuer: &Url, http: &HttpClient) -> Result<CoreProviderMetadata, String> {
    let as_given = issuer.as_str();
    let mut candidates = vec![as_given.to_owned()];
    if issuer.path() == "/" {
        candidates.insert(0, as_given.trim_end_matches('/').to_owned());
    }
    let mut last = String::new();
    for candidate in candidates {
        let issuer_url = IssuerUrl::new(candidate).map_err(|err| err.to_string())?;
        match CoreProviderMetadata::discover_async(issuer_url, http).await {
            Ok(metadata) => return Ok(metadata),
            Err(DiscoveryError::Validation(reason)) => last = reason,
            Err(err) => return Err(discovery_reason(&err)),
        }
    }
    Err(last)
}

fn discovery_reason(err: &DiscoveryError<HttpError>) -> String {
    match err {
        DiscoveryError::Request(err) => err.to_string(),
        DiscoveryError::Response(status, _, message) => format!("HTTP {status}: {message}"),
        DiscoveryError::Parse(err) => format!("unparseable document: {err}"),
        other => other.to_string(),
    }
}

/// `client_secret_basic` unless the IdP supports only `client_secret_post`.
fn auth_type(metadata: &CoreProviderMetadata, confidential: bool) -> AuthType {
    let methods = metadata.token_endpoint_auth_methods_supported();
    let post_only = methods.is_some_and(|m| {
        m.contains(&CoreClientAuthMethod::ClientSecretPost)
            && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
    });
    if confidential && !post_only {
        AuthType::BasicAuth
    } else {
        AuthType::RequestBody
    }
}

/// The IdP's id_token algorithms minus HMAC and `none`: an id_token MACed with the client
/// secret is not accepted.
pub(super) fn asymmetric_algs(
    advertised: &[CoreJwsSigningAlgorithm],
) -> Vec<CoreJwsSigningAlgorithm> {
    let algs: Vec<_> = advertised
        .iter()
        .filter(|alg| {
            !matches!(
                alg,
                CoreJwsSigningAlgorithm::HmacSha256
                    | CoreJwsSigningAlgorithm::HmacSha384
                    | CoreJwsSigningAlgorithm::HmacSha512
                    | CoreJwsSigningAlgorithm::None
            )
        })
        .cloned()
        .collect();
    if algs.is_empty() {
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]
    } else {
        algs
    }
}

/// Reads, trims and checks the client secret file. The content never reaches an error.
pub(super) fn read_secret_file(path: &Path) -> Result<Secret, UpstreamError> {
    let error = |reason: String| UpstreamError::SecretFile {
        path: path.to_owned(),
        reason,
    };
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|err| error(err.to_string()))?,
    );
    let secret = text.trim();
    if secret.is_empty() {
        return Err(error("the file is empty".to_owned()));
    }
    Ok(Secret::new(secret))
}

/// Any serializable claims as a JSON object.
fn to_map(claims: &impl Serialize) -> Result<Map<String, Value>, String> {
    match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("claims are not a JSON object".to_owned()),
        Err(err) => Err(format!("claims do not serialize: {err}")),
    }
}

/// Which call to the token endpoint failed.
#[derive(Clone, Copy)]
pub(super) enum TokenOp {
    /// The authorization code exchange.
    Exchange,
    /// An upstream refresh.
    Refresh,
}

/// On refresh, `invalid_grant` means the account or its grant is gone. (On a code exchange
/// it means a bad, spent or expired code or PKCE verifier: an [`UpstreamError::Exchange`].)
pub(super) fn token_error(err: TokenError, op: TokenOp) -> UpstreamError {
    let refreshing = matches!(op, TokenOp::Refresh);
    let wrap = match op {
        TokenOp::Exchange => UpstreamError::Exchange,
        TokenOp::Refresh => UpstreamError::Refresh,
    };
    match err {
        RequestTokenError::ServerResponse(response) => match response.error() {
            CoreErrorResponseType::InvalidGrant if refreshing => UpstreamError::AccountRevoked,
            code => wrap(match response.error_description() {
                Some(description) => format!("{}: {description}", code.as_ref()),
                None => code.as_ref().to_owned(),
            }),
        },
        RequestTokenError::Request(err) => UpstreamError::Http(err.to_string()),
        RequestTokenError::Parse(err, _) => wrap(format!("unparseable token response: {err}")),
        RequestTokenError::Other(reason) => wrap(reason),
    }
}

/// A 401 (`invalid_token`) means the account or its grant is gone.
pub(super) fn userinfo_error(err: UserInfoError<HttpError>) -> UpstreamError {
    match err {
        UserInfoError::Response(status, _, _) if status == http::StatusCode::UNAUTHORIZED => {
            UpstreamError::AccountRevoked
        }
        UserInfoError::Response(status, _, message) => {
            UpstreamError::Userinfo(format!("HTTP {status}: {message}"))
        }
        UserInfoError::ClaimsVerification(
            openidconnect::ClaimsVerificationError::InvalidSubject(_),
        ) => UpstreamError::SubjectMismatch,
        UserInfoError::Request(err) => UpstreamError::Http(err.to_string()),
        UserInfoError::Parse(err) => {
            UpstreamError::Userinfo(format!("unparseable response: {err}"))
        }
        other => UpstreamError::Userinfo(other.to_string()),
    }
}
