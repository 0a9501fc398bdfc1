//! The OAuth 2.0 Device Authorization Grant (RFC 8628): `tetherctl login --no-browser`
//! from a machine without a browser (an SSH session).
//!
//! 1. The device `POST`s [`routes::DEVICE_AUTHORIZATION`] (client authenticated like
//!    `/token`) and receives a `device_code` (256 random bits) and a `user_code`
//!    ([`UserCode`], shown `XXXX-XXXX`) with `verification_uri` = `{issuer}/device`.
//! 2. The user opens that page in any browser and enters the user code ([`device_submit`]).
//!    The hub starts the upstream login exactly like `/authorize` does (same pending-login
//!    row and `tether_login` cookie); the pending login is a [`LoginPurpose::Device`].
//! 3. The upstream callback creates the session as usual and approves the device code with
//!    it ([`approve`]) instead of issuing an authorization code; an IdP error (the user
//!    cancelled) denies it ([`deny`]).
//! 4. Meanwhile the device polls `/token` with [`GRANT_TYPE`] ([`device_code_grant`]):
//!    `authorization_pending`, `slow_down` (the interval of that code then grows by 5 s,
//!    §3.5), `expired_token`, `access_denied`, and once approved the same tokens as the
//!    code grant. The device code is single use; a second redemption is `invalid_grant`
//!    and revokes the session, as a reused authorization code does.
//!
//! Only SHA-256 hashes of both codes are stored. Codes are looked up by their hash (an
//! index lookup on the hash of a 256-bit secret reveals nothing through timing); the found
//! hash is compared again in constant time.
//!
//! **Guessing user codes.** A user code has ~34.6 bits and lives 10 minutes. Wrong codes
//! entered at `/device` are counted hub-wide (in the database, so every replica shares the
//! count) per fixed one-minute window; once [`MAX_USER_CODE_FAILURES_PER_MINUTE`] is
//! reached, every code entry is refused until the minute ends. With 1,000 codes pending at
//! once, that caps an attacker at ~30,000 guesses a day, a ~10⁻³ chance a day of hitting
//! any code. The cost: while someone is guessing, legitimate users wait up to a minute.
//! (A per-code attempt limit would not help: a guesser tries many codes, each once.)
//! A user code hashed with plain SHA-256 could be recovered from a database dump by brute
//! force; it would only let the reader approve a pending device with their own login.
//!
//! **CSRF.** The hub keeps no browser session, so there is no session to bind a form token
//! to. A cross-site auto-submitted form would send the victim, already signed in at the
//! IdP, through a login that approves the attacker's device code with the victim's
//! identity, so `POST /device` must come from the hub's own page: `Origin` must be the
//! issuer's origin, or, only when a browser sends no `Origin`, `Referer` must be on it
//! ([`same_origin`]). Every current browser sends `Origin` on a form POST. The page also
//! refuses framing (clickjacking) and warns the user to enter only their own codes (RFC
//! 8628 §5.4 remote phishing cannot be solved by the hub alone).

mod page;
mod user_code;

#[cfg(test)]
mod tests;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use tether_common::secret::{Secret, ct_eq};
use tether_common::time::UnixTime;
use url::Url;

pub use self::user_code::UserCode;
use super::authorize::{SCOPE_OPENID, granted_scope, login_cookie};
use super::error::{BrowserError, OAuthError, OAuthErrorCode, see_other};
use super::params::Params;
use super::provider::Provider;
use super::token::{
    TokenResponse, authenticate, mint, require_form, session_error, token_response,
};
use super::{audit_kind, routes, started};
use crate::clients::Client;
use crate::http::AppState;
use crate::sessions::secrets::{SESSION_ID_BYTES, random_b64, random_token, token_hash};
use crate::sessions::{AuthorizeRequest, Session, SessionId};
use crate::store::device_codes::USER_CODE_FAILURE_WINDOW_SECS;
use crate::store::{AuditOutcome, AuditRecord, DeviceCodeRow, DeviceCodeStatus, DevicePoll};

/// The grant type of the token request (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Seconds added to a device code's interval on every `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_SECS: i64 = 5;
/// Wrong user codes accepted hub-wide per one-minute window before code entry pauses.
pub const MAX_USER_CODE_FAILURES_PER_MINUTE: i64 = 20;
/// `revoked_reason` when a spent device code is presented again.
pub const REASON_DEVICE_CODE_REUSE: &str = "device_code_reuse";
/// `revoked_reason` of a session whose device code could no longer be approved (it expired
/// or was decided while the user was at the IdP).
pub const REASON_DEVICE_CODE_UNUSABLE: &str = "device_code_unusable";

/// Counter of `/device_authorization` requests, labelled `outcome` (`success` or the OAuth
/// error code).
pub const METRIC_DEVICE_AUTHORIZATIONS: &str = "tether_hub_device_authorizations_total";
/// Counter of user codes entered at `/device`, labelled `outcome` (`accepted`, `unknown`,
/// `expired`, `used`, `malformed`, `throttled`, `forbidden`, `unavailable`, `error`).
pub const METRIC_DEVICE_USER_CODES: &str = "tether_hub_device_user_codes_total";
/// Counter of device codes decided at the upstream callback, labelled `outcome`
/// (`approved`, `denied`).
pub const METRIC_DEVICE_DECISIONS: &str = "tether_hub_device_decisions_total";

/// Draws of a fresh user code before giving up (a clash needs two equal live codes).
const MAX_CODE_DRAWS: usize = 5;

/// Why a device-grant operation failed on the hub's side (answered `server_error`).
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Every drawn user code was already in use.
    #[error("no free user code after {0} draws")]
    NoFreeCode(usize),
    /// An approved device code names no session (a corrupt row).
    #[error("approved device code {0} names no session")]
    NoSession(String),
}

/// What a pending login (between the hub and the upstream IdP) is for. Stored as JSON
/// without a tag: an [`AuthorizeRequest`] (as `/authorize` stores it) or a
/// [`DeviceLogin`], told apart by their required fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LoginPurpose {
    /// A client's authorization request: the callback issues an authorization code.
    Authorize(AuthorizeRequest),
    /// A device authorization: the callback approves the device code.
    Device(DeviceLogin),
}

impl LoginPurpose {
    /// The client the login is for.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Authorize(request) => &request.client_id,
            Self::Device(login) => &login.client_id,
        }
    }
}

/// A login started at `/device`: which device authorization it approves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceLogin {
    /// The device code's row id (not a secret).
    pub device_id: String,
    /// The client that asked for the device code.
    pub client_id: String,
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Serialize)]
pub struct DeviceAuthorizationResponse {
    /// The device verification code (256 random bits, base64url).
    pub device_code: String,
    /// The code the user types, `XXXX-XXXX`.
    pub user_code: String,
    /// `{issuer}/device`.
    pub verification_uri: String,
    /// `{issuer}/device?user_code=XXXX-XXXX`.
    pub verification_uri_complete: String,
    /// Seconds until both codes expire.
    pub expires_in: u64,
    /// Minimum seconds between polls.
    pub interval: u64,
}

impl std::fmt::Debug for DeviceAuthorizationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorizationResponse")
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

// ----- POST /device_authorization -----

/// Serves the device authorization endpoint.
#[tracing::instrument(name = "oidc.device_authorization", skip_all, fields(client_id = tracing::field::Empty, outcome = tracing::field::Empty))]
pub async fn device_authorization(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let provider = started(&state)?;
        require_form(&headers)?;
        let params = Params::parse(&body)?;
        let client = authenticate(&provider, &headers, &params)?;
        tracing::Span::current().record("client_id", client.id());
        issue_codes(&provider, &client, &params).await
    }
    .await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(err) => err.code().as_str(),
    };
    tracing::Span::current().record("outcome", outcome);
    metrics::counter!(METRIC_DEVICE_AUTHORIZATIONS, "outcome" => outcome).increment(1);
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Checks the client and scope, stores a new device code, answers with both codes.
async fn issue_codes(
    provider: &Provider,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    if !client.may_use_device_grant() {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        ));
    }
    let scope = granted_scope(params.get("scope").unwrap_or(SCOPE_OPENID)).ok_or_else(|| {
        OAuthError::new(OAuthErrorCode::InvalidScope, "scope must include openid")
    })?;
    let config = provider.sessions().config();
    let lifetime = config.device_code_lifetime.as_duration();
    let interval = config.device_poll_interval.as_duration().as_secs();
    let now = provider.now();
    let rng = SystemRandom::new();
    for _ in 0..MAX_CODE_DRAWS {
        let device_code = random_token(&rng).map_err(OAuthError::internal)?;
        let user_code = UserCode::generate(&rng).map_err(OAuthError::internal)?;
        let row = DeviceCodeRow {
            id: random_b64(&rng, SESSION_ID_BYTES).map_err(OAuthError::internal)?,
            device_code_hash: token_hash(&device_code),
            user_code_hash: user_code.hash(),
            client_id: client.id().to_owned(),
            scope: scope.clone(),
            created_at: now.as_secs(),
            expires_at: now.saturating_add(lifetime).as_secs(),
            interval_secs: i64::try_from(interval).unwrap_or(i64::MAX),
            last_polled_at: None,
            status: DeviceCodeStatus::Pending,
            session_id: None,
            decided_at: None,
            used_at: None,
        };
        let inserted = provider
            .store()
            .insert_device_code(&row)
            .await
            .map_err(OAuthError::internal)?;
        if !inserted {
            continue;
        }
        provider
            .audit(
                AuditRecord::new(
                    now.as_secs(),
                    audit_kind::DEVICE_AUTHORIZED,
                    client.id(),
                    AuditOutcome::Success,
                )
                .with_subject(row.id.as_str())
                .with_details(serde_json::json!({
                    "scope": scope,
                    "expires_in": lifetime.as_secs(),
                })),
            )
            .await;
        tracing::info!(device_id = %row.id, client_id = client.id(), "device authorization started");
        let verification_uri = provider.issuer().endpoint(routes::DEVICE);
        let shown = user_code.display();
        let body = DeviceAuthorizationResponse {
            device_code: device_code.expose().to_owned(),
            verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
            user_code: shown,
            verification_uri,
            expires_in: lifetime.as_secs(),
            interval,
        };
        let mut response = Json(body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        return Ok(response);
    }
    Err(OAuthError::internal(DeviceError::NoFreeCode(
        MAX_CODE_DRAWS,
    )))
}

// ----- GET /device -----

/// Serves the code entry page, pre-filled from `?user_code=` when it holds a well-formed
/// code.
#[tracing::instrument(name = "oidc.device_page", skip_all)]
pub async fn device_page(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let provider = match started(&state) {
        Ok(provider) => provider,
        Err(err) => return BrowserError::Page(err).into_response(),
    };
    let prefill = Params::parse(query.unwrap_or_default().as_bytes())
        .ok()
        .and_then(|params| params.get("user_code").and_then(UserCode::parse))
        .map(|code| code.display())
        .unwrap_or_default();
    entry_page(&provider, StatusCode::OK, &prefill, None)
}

// ----- POST /device -----

/// Takes the user code from the form; on a good one starts the upstream login.
#[tracing::instrument(name = "oidc.device_submit", skip_all, fields(client_id = tracing::field::Empty, outcome = tracing::field::Empty))]
pub async fn device_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let provider = match started(&state) {
        Ok(provider) => provider,
        Err(err) => return BrowserError::Page(err).into_response(),
    };
    let (response, outcome) = submit(&provider, &headers, &body).await;
    tracing::Span::current().record("outcome", outcome);
    metrics::counter!(METRIC_DEVICE_USER_CODES, "outcome" => outcome).increment(1);
    response
}

async fn submit(provider: &Provider, headers: &HeaderMap, body: &[u8]) -> (Response, &'static str) {
    if !same_origin(provider, headers) {
        tracing::info!("device code form refused: not posted from the hub's own page");
        let message = "This form must be sent from the hub's own page. Open the address \
                       shown in your terminal and enter the code there.";
        return (
            entry_page(provider, StatusCode::FORBIDDEN, "", Some(message)),
            "forbidden",
        );
    }
    let typed = Params::parse(body)
        .ok()
        .and_then(|params| params.get("user_code").map(str::to_owned))
        .unwrap_or_default();
    let Some(code) = UserCode::parse(&typed) else {
        let message =
            "That is not a code: enter the 8 letters shown in your terminal, like BCDF-GHJK.";
        return (
            entry_page(provider, StatusCode::BAD_REQUEST, "", Some(message)),
            "malformed",
        );
    };
    let shown = code.display();
    match check_user_code(provider, &code).await {
        Ok(Ok(row)) => start_login(provider, &row, provider.now()).await,
        Ok(Err((status, outcome, message))) => {
            (entry_page(provider, status, &shown, Some(message)), outcome)
        }
        Err(err) => (BrowserError::Page(err).into_response(), "error"),
    }
}

/// A page refusal: status, metric outcome, message.
type Refused = (StatusCode, &'static str, &'static str);

/// The pending device code `code` names, unless code entry is throttled or the code is
/// unknown, expired or already used (each of those counts as a failure).
async fn check_user_code(
    provider: &Provider,
    code: &UserCode,
) -> Result<Result<DeviceCodeRow, Refused>, OAuthError> {
    let now = provider.now().as_secs();
    let window = now - now.rem_euclid(USER_CODE_FAILURE_WINDOW_SECS);
    let store = provider.store();
    let failures = store
        .user_code_failures(window)
        .await
        .map_err(OAuthError::internal)?;
    if failures >= MAX_USER_CODE_FAILURES_PER_MINUTE {
        tracing::warn!(failures, "device code entry paused: too many wrong codes");
        return Ok(Err((
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Too many wrong codes were entered on this hub in the last minute. Wait a \
             minute and try again.",
        )));
    }
    let row = store
        .device_code_by_user_hash(&code.hash())
        .await
        .map_err(OAuthError::internal)?;
    let (outcome, message) = match row {
        None => (
            "unknown",
            "Unknown code. Check the code shown in your terminal and try again.",
        ),
        Some(row) if now >= row.expires_at => (
            "expired",
            "This code has expired. Run tetherctl login --no-browser again for a new one.",
        ),
        Some(row) if row.status != DeviceCodeStatus::Pending => (
            "used",
            "This code was already used. Run tetherctl login --no-browser again for a new one.",
        ),
        Some(row) => return Ok(Ok(row)),
    };
    store
        .count_user_code_failure(window)
        .await
        .map_err(OAuthError::internal)?;
    Ok(Err((StatusCode::BAD_REQUEST, outcome, message)))
}

/// Starts the upstream login for the device code `row`, exactly as `/authorize` does.
async fn start_login(
    provider: &Provider,
    row: &DeviceCodeRow,
    now: UnixTime,
) -> (Response, &'static str) {
    tracing::Span::current().record("client_id", row.client_id.as_str());
    let Some(upstream) = provider.upstream() else {
        let error = OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "login is disabled: no upstream IdP configured",
        );
        return (BrowserError::Page(error).into_response(), "unavailable");
    };
    let (idp_url, pending) = upstream.begin();
    let purpose = LoginPurpose::Device(DeviceLogin {
        device_id: row.id.clone(),
        client_id: row.client_id.clone(),
    });
    let login_id = match provider
        .sessions()
        .start_login(&purpose, &pending, now)
        .await
    {
        Ok(id) => id,
        Err(err) => {
            return (
                BrowserError::Page(OAuthError::internal(err)).into_response(),
                "error",
            );
        }
    };
    tracing::info!(device_id = %row.id, client_id = %row.client_id, "device code entered; on to the upstream IdP");
    let mut response = see_other(idp_url.as_str());
    let cookie = login_cookie(provider, &login_id, provider.lifetimes().login.as_secs());
    response.headers_mut().append(header::SET_COOKIE, cookie);
    (response, "accepted")
}

/// The CSRF check of `POST /device` (see the module documentation): `Origin` is the
/// issuer's origin, or there is no `Origin` and `Referer` is on the issuer's origin.
/// `Origin: null` (a sandboxed or privacy-stripped request) is refused.
fn same_origin(provider: &Provider, headers: &HeaderMap) -> bool {
    let expected = provider.issuer().url().origin();
    let origin_of = |value: &HeaderValue| {
        value
            .to_str()
            .ok()
            .and_then(|text| Url::parse(text).ok())
            .is_some_and(|url| url.origin() == expected)
    };
    match headers.get(header::ORIGIN) {
        Some(origin) => origin_of(origin),
        None => headers.get(header::REFERER).is_some_and(origin_of),
    }
}

fn entry_page(
    provider: &Provider,
    status: StatusCode,
    user_code: &str,
    error: Option<&str>,
) -> Response {
    let action = provider.issuer().endpoint(routes::DEVICE);
    page::respond(status, page::entry(&action, user_code, error))
}

// ----- the upstream callback -----

/// Before a session is created for a device login: the device code must still be pending
/// and unexpired (otherwise the login would create a session nobody can use).
pub async fn check_pending(
    provider: &Provider,
    login: &DeviceLogin,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let row = provider
        .store()
        .device_code(&login.device_id)
        .await
        .map_err(OAuthError::internal)?;
    match row {
        Some(row) if row.status == DeviceCodeStatus::Pending && now.as_secs() < row.expires_at => {
            Ok(())
        }
        _ => Err(unusable()),
    }
}

/// Approves the device code of `login` with the new `session` and answers the "signed in"
/// page. If the code can no longer be approved (expired or decided meanwhile), the session
/// is revoked and the user is told to start again.
pub async fn approve(
    provider: &Provider,
    login: &DeviceLogin,
    session: &Session,
    now: UnixTime,
) -> Result<Response, OAuthError> {
    let approved = provider
        .store()
        .approve_device_code(&login.device_id, session.id.as_str(), now.as_secs())
        .await
        .map_err(OAuthError::internal)?;
    if !approved {
        provider
            .sessions()
            .revoke(&session.id, REASON_DEVICE_CODE_UNUSABLE, now)
            .await
            .map_err(OAuthError::internal)?;
        return Err(unusable());
    }
    metrics::counter!(METRIC_DEVICE_DECISIONS, "outcome" => "approved").increment(1);
    provider
        .audit(
            AuditRecord::new(
                now.as_secs(),
                audit_kind::DEVICE_APPROVED,
                session.subject.as_str(),
                AuditOutcome::Success,
            )
            .with_subject(login.device_id.as_str())
            .with_details(serde_json::json!({
                "client_id": login.client_id,
                "sid": session.id.as_str(),
                "username": session.username,
            })),
        )
        .await;
    tracing::info!(device_id = %login.device_id, sid = %session.id, client_id = %login.client_id, "device approved");
    Ok(page::respond(
        StatusCode::OK,
        page::signed_in(&session.username),
    ))
}

/// Denies the device code of `login` (the IdP answered an error: the user cancelled or was
/// refused). A code that is no longer pending is left alone.
pub async fn deny(provider: &Provider, login: &DeviceLogin, reason: &str, now: UnixTime) {
    let denied = match provider
        .store()
        .deny_device_code(&login.device_id, now.as_secs())
        .await
    {
        Ok(denied) => denied,
        Err(err) => {
            tracing::error!(error = %err, device_id = %login.device_id, "cannot deny the device code");
            return;
        }
    };
    if !denied {
        return;
    }
    metrics::counter!(METRIC_DEVICE_DECISIONS, "outcome" => "denied").increment(1);
    provider
        .audit(
            AuditRecord::new(
                now.as_secs(),
                audit_kind::DEVICE_DENIED,
                login.client_id.as_str(),
                AuditOutcome::Denied,
            )
            .with_subject(login.device_id.as_str())
            .with_reason(reason),
        )
        .await;
    tracing::info!(device_id = %login.device_id, reason, "device denied");
}

fn unusable() -> OAuthError {
    OAuthError::invalid_request(
        "this code has expired or was already used; run tetherctl login --no-browser again",
    )
}

// ----- POST /token, grant_type=urn:ietf:params:oauth:grant-type:device_code -----

/// The device code grant (RFC 8628 §3.4, §3.5).
pub async fn device_code_grant(
    provider: &Provider,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    if !client.may_use_device_grant() {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "this client may not use the device authorization grant",
        ));
    }
    let device_code = Secret::new(params.required("device_code")?);
    let hash = token_hash(&device_code);
    let now = provider.now();
    let store = provider.store();
    let row = store
        .device_code_by_device_hash(&hash)
        .await
        .map_err(OAuthError::internal)?
        .filter(|row| ct_eq(row.device_code_hash.as_bytes(), hash.as_bytes()))
        .ok_or_else(|| OAuthError::invalid_grant("unknown device_code"))?;
    if row.client_id != client.id() {
        refused(provider, client, &row, "wrong client").await;
        return Err(OAuthError::invalid_grant(
            "device_code was issued to another client",
        ));
    }
    if row.status == DeviceCodeStatus::Consumed {
        return Err(reuse(provider, client, &row, now).await);
    }
    if now.as_secs() >= row.expires_at {
        return Err(OAuthError::new(
            OAuthErrorCode::ExpiredToken,
            "the device code has expired; start the login again",
        ));
    }
    let poll = store
        .record_device_poll(&row.id, now.as_secs(), SLOW_DOWN_SECS)
        .await
        .map_err(OAuthError::internal)?;
    if let DevicePoll::SlowDown(interval) = poll {
        return Err(OAuthError::new(
            OAuthErrorCode::SlowDown,
            format!("polling too fast: wait at least {interval} seconds between requests"),
        ));
    }
    match row.status {
        DeviceCodeStatus::Pending => Err(OAuthError::new(
            OAuthErrorCode::AuthorizationPending,
            "the user has not yet entered the code and logged in",
        )),
        DeviceCodeStatus::Denied => Err(OAuthError::new(
            OAuthErrorCode::AccessDenied,
            "the login was refused or cancelled",
        )),
        DeviceCodeStatus::Consumed => Err(reuse(provider, client, &row, now).await),
        DeviceCodeStatus::Approved => redeem(provider, client, &row, now).await,
    }
}

/// Spends the approved `row` (single use) and answers like the code grant.
async fn redeem(
    provider: &Provider,
    client: &Client,
    row: &DeviceCodeRow,
    now: UnixTime,
) -> Result<Response, OAuthError> {
    let sid = row
        .session_id
        .as_deref()
        .map(SessionId::new)
        .ok_or_else(|| OAuthError::internal(DeviceError::NoSession(row.id.clone())))?;
    let spent = provider
        .store()
        .consume_device_code(&row.id, now.as_secs())
        .await
        .map_err(OAuthError::internal)?;
    if !spent {
        // A concurrent request redeemed it between our read and our write.
        return Err(reuse(provider, client, row, now).await);
    }
    let sessions = provider.sessions();
    sessions.touch(&sid, now).await.map_err(session_error)?;
    let session = sessions.session(&sid, now).await.map_err(session_error)?;
    let tokens = mint(provider, &session, client.id(), &row.scope, None)?;
    let refresh_token = sessions
        .issue_refresh(&session, client.id(), now)
        .await
        .map_err(session_error)?;
    provider
        .audit(
            AuditRecord::new(
                now.as_secs(),
                audit_kind::DEVICE_TOKEN_ISSUED,
                session.subject.as_str(),
                AuditOutcome::Success,
            )
            .with_subject(sid.as_str())
            .with_details(serde_json::json!({
                "client_id": client.id(),
                "device_id": row.id,
            })),
        )
        .await;
    tracing::info!(sid = %sid, device_id = %row.id, client_id = client.id(), "device code redeemed");
    Ok(token_response(TokenResponse {
        refresh_token: Some(refresh_token.expose().to_owned()),
        scope: Some(row.scope.clone()),
        ..tokens
    }))
}

/// A spent device code came back: revoke its session (whoever redeemed first may be a
/// thief), audit, refuse.
async fn reuse(
    provider: &Provider,
    client: &Client,
    row: &DeviceCodeRow,
    now: UnixTime,
) -> OAuthError {
    tracing::warn!(device_id = %row.id, client_id = client.id(), "device code reused: revoking its session");
    refused(provider, client, row, REASON_DEVICE_CODE_REUSE).await;
    if let Some(sid) = &row.session_id {
        let revoked = provider
            .sessions()
            .revoke(&SessionId::new(sid.as_str()), REASON_DEVICE_CODE_REUSE, now)
            .await;
        if let Err(err) = revoked {
            return OAuthError::internal(err);
        }
    }
    OAuthError::invalid_grant("device_code was already used")
}

/// Audits a refused redemption (`device.token_issued`, denied).
async fn refused(provider: &Provider, client: &Client, row: &DeviceCodeRow, reason: &str) {
    let mut record = AuditRecord::new(
        provider.now().as_secs(),
        audit_kind::DEVICE_TOKEN_ISSUED,
        client.id(),
        AuditOutcome::Denied,
    )
    .with_reason(reason)
    .with_details(serde_json::json!({ "device_id": row.id }));
    if let Some(sid) = &row.session_id {
        record = record.with_subject(sid.as_str());
    }
    provider.audit(record).await;
}
