//! `GET /authorize`: checks the client's request, then sends the browser to the upstream IdP.
//!
//! Until the client and its redirect URI are known good, errors are shown as a page
//! (never redirected: RFC 6749 §4.1.2.1); after that they go back to the redirect URI
//! with `error`, `state` and `iss`. PKCE is S256 only, and required of public clients.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use tether_common::secret::Secret;
use url::Url;

use super::error::{BrowserError, OAuthError, OAuthErrorCode, see_other};
use super::params::Params;
use super::provider::Provider;
use super::{routes, started};
use crate::http::AppState;
use crate::sessions::{AuthorizeRequest, valid_code_challenge};

/// The only response type: the authorization code flow.
pub const RESPONSE_TYPE_CODE: &str = "code";
/// The only PKCE method.
pub const PKCE_S256: &str = "S256";
/// The scope every request must carry.
pub const SCOPE_OPENID: &str = "openid";
/// Scopes the hub grants; any other requested scope is ignored (left out of the grant).
/// `username` and `groups` are always in the tokens.
pub const SCOPES_SUPPORTED: [&str; 4] = [SCOPE_OPENID, "profile", "groups", "offline_access"];
/// The cookie holding the pending login's id between `/authorize` and `/callback`.
pub const LOGIN_COOKIE: &str = "tether_login";
/// Longest `state` or `nonce` accepted.
const MAX_STATE_LEN: usize = 512;

/// Serves the authorization endpoint.
#[tracing::instrument(name = "oidc.authorize", skip_all, fields(client_id = tracing::field::Empty))]
pub async fn authorize(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, BrowserError> {
    let provider = started(&state)?;
    let params = Params::parse(query.unwrap_or_default().as_bytes())?;
    let request = check_request(&provider, &params)?;
    tracing::Span::current().record("client_id", request.client_id.as_str());

    let back = |error: OAuthError| redirect_error(&provider, &request, error);
    let Some(upstream) = provider.upstream() else {
        return Err(back(OAuthError::new(
            OAuthErrorCode::TemporarilyUnavailable,
            "login is disabled: no upstream IdP configured",
        )));
    };
    let (idp_url, pending) = upstream.begin();
    let now = provider.now();
    let login_id = provider
        .sessions()
        .start_login(&request, &pending, now)
        .await
        .map_err(|err| back(OAuthError::internal(err)))?;
    let mut response = see_other(idp_url.as_str());
    let cookie = login_cookie(&provider, &login_id, provider.lifetimes().login.as_secs());
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Validates the request: page errors first (client, redirect URI), then redirect errors.
fn check_request(provider: &Provider, params: &Params) -> Result<AuthorizeRequest, BrowserError> {
    let client_id = params.required("client_id")?;
    let client = provider
        .clients()
        .get(client_id)
        .ok_or_else(|| OAuthError::invalid_request("unknown client_id"))?;
    let redirect_uri = params.required("redirect_uri")?;
    if !client.redirect_allowed(redirect_uri) {
        return Err(
            OAuthError::invalid_request("redirect_uri is not registered for this client").into(),
        );
    }
    let target = Url::parse(redirect_uri)
        .map_err(|_| OAuthError::invalid_request("redirect_uri is not a URL"))?;
    let client_state = params.get("state").map(str::to_owned);
    let back = |error: OAuthError| BrowserError::Redirect {
        redirect_uri: Box::new(target.clone()),
        error,
        state: client_state.clone(),
        iss: provider.issuer().as_str().to_owned(),
    };
    if client_state
        .as_ref()
        .is_some_and(|s| s.len() > MAX_STATE_LEN)
    {
        return Err(back(OAuthError::invalid_request("state is too long")));
    }
    match params.get("response_type") {
        Some(RESPONSE_TYPE_CODE) => {}
        Some(_) => {
            return Err(back(OAuthError::new(
                OAuthErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            )));
        }
        None => {
            return Err(back(OAuthError::invalid_request(
                "missing parameter response_type",
            )));
        }
    }
    if params.get("request").is_some() || params.get("request_uri").is_some() {
        return Err(back(OAuthError::invalid_request(
            "request objects are not supported",
        )));
    }
    let scope = granted_scope(params.get("scope").unwrap_or_default()).ok_or_else(|| {
        back(OAuthError::new(
            OAuthErrorCode::InvalidScope,
            "scope must include openid",
        ))
    })?;
    let nonce = params.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_STATE_LEN) {
        return Err(back(OAuthError::invalid_request("nonce is too long")));
    }
    let code_challenge = match (
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    ) {
        (_, Some(method)) if method != PKCE_S256 => {
            return Err(back(OAuthError::invalid_request(
                "code_challenge_method must be S256 (plain is not supported)",
            )));
        }
        (Some(_), None) => {
            return Err(back(OAuthError::invalid_request(
                "code_challenge_method=S256 is required (plain is not supported)",
            )));
        }
        (Some(challenge), Some(_)) => {
            if !valid_code_challenge(challenge) {
                return Err(back(OAuthError::invalid_request(
                    "code_challenge is not a base64url SHA-256 (43 characters)",
                )));
            }
            challenge.to_owned()
        }
        // Required of public clients by policy, and of every client by the code store
        // (a code always carries its challenge).
        (None, _) => {
            return Err(back(OAuthError::invalid_request(
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            )));
        }
    };
    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: client_state,
        nonce,
        code_challenge,
    })
}

/// The scope to grant: the supported scopes requested, in order; `None` without `openid`.
pub fn granted_scope(requested: &str) -> Option<String> {
    let requested: Vec<&str> = requested.split(' ').filter(|s| !s.is_empty()).collect();
    if !requested.contains(&SCOPE_OPENID) {
        return None;
    }
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested {
        if SCOPES_SUPPORTED.contains(&scope) && !granted.contains(&scope) {
            granted.push(scope);
        }
    }
    Some(granted.join(" "))
}

/// An error sent back to the (already checked) redirect URI of `request`.
pub fn redirect_error(
    provider: &Provider,
    request: &AuthorizeRequest,
    error: OAuthError,
) -> BrowserError {
    match Url::parse(&request.redirect_uri) {
        Ok(redirect_uri) => BrowserError::Redirect {
            redirect_uri: Box::new(redirect_uri),
            error,
            state: request.state.clone(),
            iss: provider.issuer().as_str().to_owned(),
        },
        Err(_) => BrowserError::Page(error),
    }
}

/// The path the login cookie is scoped to: the issuer's path + [`routes::CALLBACK`].
fn cookie_path(provider: &Provider) -> String {
    format!(
        "{}{}",
        provider.issuer().url().path().trim_end_matches('/'),
        routes::CALLBACK
    )
}

/// `tether_login=<id>`: `HttpOnly`, `SameSite=Lax` (the IdP's redirect back is a top-level
/// GET), `Secure` unless the issuer is `http://` (dangerous test setups only).
pub(crate) fn login_cookie(provider: &Provider, login_id: &Secret, max_age: u64) -> HeaderValue {
    let secure = if provider.issuer().url().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{LOGIN_COOKIE}={}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        login_id.expose(),
        cookie_path(provider),
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Deletes the login cookie.
pub fn clear_login_cookie(provider: &Provider) -> HeaderValue {
    login_cookie(provider, &Secret::new(""), 0)
}

/// The login id from the request's cookies.
pub fn login_cookie_value(headers: &axum::http::HeaderMap) -> Option<Secret> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == LOGIN_COOKIE && !value.is_empty())
        .map(|(_, value)| Secret::new(value))
}

#[cfg(test)]
mod tests;
