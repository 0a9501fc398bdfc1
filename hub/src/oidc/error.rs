//! The one place where OAuth and OpenID Connect errors become responses.
//!
//! - [`OAuthError`]: an RFC 6749 §5.2 error; as a response, JSON `{error,
//!   error_description}` with `Cache-Control: no-store` (token, userinfo, revoke).
//! - [`BrowserError`]: an error of a browser endpoint (authorize, callback, logout): either
//!   a small HTML page (when the client or its redirect URI cannot be trusted, RFC 6749
//!   §4.1.2.1) or a 303 back to the client's redirect URI with `error`, `state` and `iss`
//!   (RFC 9207).
//!
//! Internal errors are logged here with a correlation id and answered `server_error`
//! with that id only; nothing internal reaches the client.

use std::borrow::Cow;
use std::fmt;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use url::Url;

/// RFC 6749 §4.1.2.1 / §5.2, RFC 6750 §3.1, RFC 8693 §2.2.2, RFC 8628 §3.5 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest,
    /// Client authentication failed (unknown client, bad secret, wrong method).
    InvalidClient,
    /// The code, refresh token or subject token is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use this grant or response type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The requested scope is invalid.
    InvalidScope,
    /// RFC 8693: the requested audience is unknown or not allowed.
    InvalidTarget,
    /// The user or the hub refused the request.
    AccessDenied,
    /// An internal error (details are only in the hub's log).
    ServerError,
    /// The hub cannot serve this now (login disabled, keys not loaded).
    TemporarilyUnavailable,
    /// The response type is not supported.
    UnsupportedResponseType,
    /// RFC 6750: the bearer token is invalid, expired or revoked.
    InvalidToken,
    /// RFC 8628: the user has not yet approved the device code; keep polling.
    AuthorizationPending,
    /// RFC 8628: polling too fast; the interval grew by 5 seconds.
    SlowDown,
    /// RFC 8628: the device code expired; start a new device authorization.
    ExpiredToken,
}

impl OAuthErrorCode {
    /// The wire form (`invalid_grant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidToken => "invalid_token",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
        }
    }

    /// The HTTP status of a JSON error with this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error answered to the client.
///
/// The description is public: a `&'static str` or a string built only from what the
/// client sent or may know. Internal failures go through [`OAuthError::internal`].
#[derive(Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    code: OAuthErrorCode,
    description: Cow<'static, str>,
    /// `invalid_client` after HTTP Basic authentication: answer with a Basic challenge.
    basic_challenge: bool,
    /// The cause of a `server_error`; logged, never sent.
    #[source]
    internal: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl OAuthError {
    /// An error with a public description.
    pub fn new(code: OAuthErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
            internal: None,
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }

    /// `invalid_client`; `basic` when the client authenticated with HTTP Basic.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>, basic: bool) -> Self {
        let mut err = Self::new(OAuthErrorCode::InvalidClient, description);
        err.basic_challenge = basic;
        err
    }

    /// `invalid_token` (RFC 6750): answered 401 with a Bearer challenge.
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidToken, description)
    }

    /// `server_error` caused by `source`: logged with a correlation id, never sent.
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            code: OAuthErrorCode::ServerError,
            description: Cow::Borrowed("internal error"),
            basic_challenge: false,
            internal: Some(Box::new(source)),
        }
    }

    /// The error code.
    pub fn code(&self) -> OAuthErrorCode {
        self.code
    }

    /// The public description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Logs an internal cause (once) and returns the public body.
    fn into_body(self) -> ErrorBody {
        let description = match &self.internal {
            Some(source) => {
                let id = correlation_id();
                tracing::error!(correlation_id = %id, error = %error_chain(source.as_ref()), "internal error");
                format!("internal error (correlation id {id})")
            }
            None => self.description.into_owned(),
        };
        ErrorBody {
            error: self.code.as_str(),
            error_description: description,
        }
    }
}

/// The JSON error body (RFC 6749 §5.2).
#[derive(Debug, Serialize)]
struct ErrorBody {
    error: &'static str,
    error_description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let code = self.code;
        let basic = self.basic_challenge;
        let body = self.into_body();
        let mut response = (code.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match code {
            OAuthErrorCode::InvalidClient if basic => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="tether""#),
                );
            }
            OAuthErrorCode::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            _ => {}
        }
        response
    }
}

/// An error of a browser-facing endpoint.
#[derive(Debug)]
pub enum BrowserError {
    /// Shown to the user as a 400 page (503 for `temporarily_unavailable`, 500 for
    /// `server_error`): the client or its redirect URI cannot be trusted with a redirect.
    Page(OAuthError),
    /// Sent back to the client's redirect URI (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
    Redirect {
        /// The client's registered redirect URI (boxed: keeps `Result`s small).
        redirect_uri: Box<Url>,
        /// The error.
        error: OAuthError,
        /// The client's `state`, echoed.
        state: Option<String>,
        /// The hub's issuer.
        iss: String,
    },
}

impl BrowserError {
    /// The error code.
    pub fn code(&self) -> OAuthErrorCode {
        match self {
            Self::Page(error) | Self::Redirect { error, .. } => error.code(),
        }
    }
}

impl From<OAuthError> for BrowserError {
    fn from(error: OAuthError) -> Self {
        Self::Page(error)
    }
}

impl IntoResponse for BrowserError {
    fn into_response(self) -> Response {
        match self {
            Self::Page(error) => {
                let status = match error.code() {
                    OAuthErrorCode::ServerError | OAuthErrorCode::TemporarilyUnavailable => {
                        error.code().status()
                    }
                    _ => StatusCode::BAD_REQUEST,
                };
                let body = error.into_body();
                let html = page(
                    "Sign-in failed",
                    &format!("{}: {}", body.error, body.error_description),
                );
                let mut response = (status, html).into_response();
                no_store(&mut response);
                response
            }
            Self::Redirect {
                mut redirect_uri,
                error,
                state,
                iss,
            } => {
                let body = error.into_body();
                {
                    let mut query = redirect_uri.query_pairs_mut();
                    query.append_pair("error", body.error);
                    query.append_pair("error_description", &body.error_description);
                    if let Some(state) = &state {
                        query.append_pair("state", state);
                    }
                    query.append_pair("iss", &iss);
                }
                see_other(redirect_uri.as_str())
            }
        }
    }
}

/// A `303 See Other` to `location`, not cached.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => {
            // A `Url` serializes to visible ASCII only; this cannot happen.
            return OAuthError::internal(std::io::Error::other(
                "redirect location is not a valid header value",
            ))
            .into_response();
        }
    }
    no_store(&mut response);
    response
}

/// Sets `Cache-Control: no-store`.
pub fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A minimal HTML page with an escaped title and message.
pub fn page(title: &str, message: &str) -> axum::response::Html<String> {
    let (title, message) = (escape_html(title), escape_html(message));
    axum::response::Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{message}</p></body></html>\n"
    ))
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// 64 random bits as hex, to find an internal error in the log.
fn correlation_id() -> String {
    use ring::rand::SecureRandom as _;

    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return "unavailable".to_owned();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `error: cause: cause...`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_support::{body, json};

    #[tokio::test]
    async fn json_errors_carry_rfc_codes_and_no_store() {
        let response = OAuthError::invalid_grant("code expired").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body = json(response).await;
        assert_eq!(body["error"], "invalid_grant");
        assert_eq!(body["error_description"], "code expired");
    }

    #[tokio::test]
    async fn invalid_client_challenges_only_after_basic() {
        let basic = OAuthError::invalid_client("bad secret", true).into_response();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            basic.headers()[header::WWW_AUTHENTICATE],
            r#"Basic realm="tether""#
        );
        let post = OAuthError::invalid_client("bad secret", false).into_response();
        assert_eq!(post.status(), StatusCode::UNAUTHORIZED);
        assert!(post.headers().get(header::WWW_AUTHENTICATE).is_none());
        let bearer = OAuthError::invalid_token("expired").into_response();
        assert_eq!(
            bearer.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak() {
        let response =
            OAuthError::internal(std::io::Error::other("db password is hunter2")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = json(response).await;
        assert_eq!(body["error"], "server_error");
        assert!(!body.to_string().contains("hunter2"));
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("correlation id")
        );
    }

    #[tokio::test]
    async fn pages_escape_and_redirects_carry_state_and_iss() {
        let page = BrowserError::Page(OAuthError::invalid_request("bad <script>")).into_response();
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        let text = String::from_utf8(body(page).await.to_vec()).unwrap();
        assert!(text.contains("bad &lt;script&gt;"), "{text}");

        let redirect = BrowserError::Redirect {
            redirect_uri: Box::new(Url::parse("https://app.test/cb?x=1").unwrap()),
            error: OAuthError::new(OAuthErrorCode::AccessDenied, "no"),
            state: Some("s t".to_owned()),
            iss: "https://hub.test".to_owned(),
        }
        .into_response();
        assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
        let location = Url::parse(redirect.headers()[header::LOCATION].to_str().unwrap()).unwrap();
        let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(query["x"], "1");
        assert_eq!(query["error"], "access_denied");
        assert_eq!(query["state"], "s t");
        assert_eq!(query["iss"], "https://hub.test");
    }
}
