//! `GET /callback`: the upstream IdP sends the browser back here (`{issuer}/callback` is the
//! hub's redirect URI at the IdP).
//!
//! The pending login is taken (single use) by the `tether_login` cookie, the IdP's `state`
//! is compared in constant time, the IdP's code is redeemed upstream, a session is created
//! and the client gets its own code at its redirect URI. A missing cookie or a wrong
//! `state` is answered with a page and stores nothing.
//!
//! A login started at `/device` ([`LoginPurpose::Device`]) ends differently: the session
//! approves the device code ([`device::approve`]) and the user sees a "signed in" page; an
//! IdP error denies the device code ([`device::deny`]). Its errors are always pages (there
//! is no redirect URI).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use url::Url;

use super::authorize::{clear_login_cookie, login_cookie_value, redirect_error};
use super::device::{self, LoginPurpose};
use super::error::{BrowserError, OAuthError, OAuthErrorCode, see_other};
use super::params::Params;
use super::provider::Provider;
use super::{METRIC_LOGINS, audit_kind, started};
use crate::http::AppState;
use crate::sessions::{SessionError, SessionId, SessionIdentity};
use crate::store::{AuditOutcome, AuditRecord};
use crate::upstream::PendingLogin;

/// Audit actor when no user is known yet.
const ANONYMOUS: &str = "anonymous";

/// Serves the hub's redirect URI at the upstream IdP.
#[tracing::instrument(name = "oidc.callback", skip_all, fields(client_id = tracing::field::Empty, outcome = tracing::field::Empty))]
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let provider = match started(&state) {
        Ok(provider) => provider,
        Err(err) => return err.into_response(),
    };
    let result = finish_login(&provider, &headers, query.as_deref()).await;
    let outcome = match &result {
        Ok(_) => "success",
        Err(Refusal { outcome, .. }) => outcome,
    };
    tracing::Span::current().record("outcome", outcome);
    metrics::counter!(METRIC_LOGINS, "outcome" => outcome).increment(1);
    let mut response = match result {
        Ok(response) => response,
        Err(refusal) => refusal.error.into_response(),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_login_cookie(&provider));
    response
}

/// A refused or failed login: the response, and the metric outcome.
struct Refusal {
    error: BrowserError,
    outcome: &'static str,
}

impl Refusal {
    fn new(error: impl Into<BrowserError>, outcome: &'static str) -> Self {
        Self {
            error: error.into(),
            outcome,
        }
    }
}

async fn finish_login(
    provider: &Provider,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Response, Refusal> {
    let now = provider.now();
    let params = Params::parse(query.unwrap_or_default().as_bytes())
        .map_err(|e| Refusal::new(e, "refused"))?;
    let Some(login_id) = login_cookie_value(headers) else {
        refused(provider, None, "no_login_cookie").await;
        return Err(Refusal::new(
            OAuthError::invalid_request(
                "no login in progress in this browser (the login cookie is missing or expired); start again from the application",
            ),
            "refused",
        ));
    };
    let taken = provider
        .sessions()
        .take_login::<LoginPurpose, PendingLogin>(&login_id, now)
        .await;
    let (purpose, pending) = match taken {
        Ok(taken) => taken,
        Err(SessionError::NotFound | SessionError::Expired) => {
            refused(provider, None, "login_expired_or_used").await;
            return Err(Refusal::new(
                OAuthError::invalid_request(
                    "this login has expired or was already completed; start again from the application",
                ),
                "refused",
            ));
        }
        Err(err) => return Err(Refusal::new(OAuthError::internal(err), "error")),
    };
    let client_id = purpose.client_id().to_owned();
    tracing::Span::current().record("client_id", client_id.as_str());
    let state_ok = params
        .get("state")
        .is_some_and(|state| pending.state_matches(state));
    if !state_ok {
        refused(provider, Some(&client_id), "state_mismatch").await;
        return Err(Refusal::new(
            OAuthError::invalid_request(
                "the login response does not belong to this login (state mismatch)",
            ),
            "refused",
        ));
    }
    let back = |error: OAuthError| match &purpose {
        LoginPurpose::Authorize(request) => redirect_error(provider, request, error),
        LoginPurpose::Device(_) => BrowserError::Page(error),
    };
    if let Some(idp_error) = params.get("error") {
        let reason = format!("upstream_error:{}", short(idp_error));
        refused(provider, Some(&client_id), &reason).await;
        if let LoginPurpose::Device(login) = &purpose {
            device::deny(provider, login, &reason, now).await;
        }
        let code = match idp_error {
            "temporarily_unavailable" => OAuthErrorCode::TemporarilyUnavailable,
            "server_error" => OAuthErrorCode::ServerError,
            _ => OAuthErrorCode::AccessDenied,
        };
        return Err(Refusal::new(
            back(OAuthError::new(
                code,
                "the upstream identity provider refused the login",
            )),
            "upstream_refused",
        ));
    }
    let Some(code) = params.get("code") else {
        refused(provider, Some(&client_id), "upstream_no_code").await;
        return Err(Refusal::new(
            back(OAuthError::new(
                OAuthErrorCode::ServerError,
                "the upstream identity provider sent no code",
            )),
            "upstream_error",
        ));
    };
    let Some(upstream) = provider.upstream() else {
        return Err(Refusal::new(
            back(OAuthError::new(
                OAuthErrorCode::TemporarilyUnavailable,
                "login is disabled: no upstream IdP configured",
            )),
            "refused",
        ));
    };
    let login = match upstream.complete(code, &pending).await {
        Ok(login) => login,
        Err(err) => {
            tracing::warn!(error = %err, client_id = %client_id, "upstream login failed");
            refused(
                provider,
                Some(&client_id),
                &format!("upstream_{}", err.outcome()),
            )
            .await;
            let (code, description, outcome) = if err.is_transient() {
                (
                    OAuthErrorCode::TemporarilyUnavailable,
                    "the upstream identity provider is unreachable",
                    "upstream_error",
                )
            } else {
                (
                    OAuthErrorCode::AccessDenied,
                    "the upstream identity provider login could not be completed",
                    "upstream_refused",
                )
            };
            return Err(Refusal::new(
                back(OAuthError::new(code, description)),
                outcome,
            ));
        }
    };
    let identity = SessionIdentity {
        subject: login.identity.subject,
        username: login.identity.username,
        groups: login.identity.groups,
    };
    let grant = zeroize::Zeroizing::new(login.grant.to_bytes());
    if let LoginPurpose::Device(login) = &purpose {
        device::check_pending(provider, login, now)
            .await
            .map_err(device_refusal)?;
    }
    let internal = |err: SessionError| Refusal::new(back(OAuthError::internal(err)), "error");
    let session = provider
        .sessions()
        .create(&identity, &grant, &client_id, now)
        .await
        .map_err(internal)?;
    let request = match purpose {
        LoginPurpose::Authorize(request) => request,
        LoginPurpose::Device(login) => {
            let response = device::approve(provider, &login, &session, now)
                .await
                .map_err(device_refusal)?;
            login_succeeded(provider, &identity, &session.id, &client_id, true, now).await;
            return Ok(response);
        }
    };
    let client_code = provider
        .sessions()
        .issue_code(
            &session,
            &request.client_id,
            &request.redirect_uri,
            &request.code_challenge,
            request.nonce.as_deref(),
            &request.scope,
            now,
        )
        .await
        .map_err(|err| {
            Refusal::new(
                redirect_error(provider, &request, OAuthError::internal(err)),
                "error",
            )
        })?;
    login_succeeded(provider, &identity, &session.id, &client_id, false, now).await;
    let mut target = Url::parse(&request.redirect_uri).map_err(|_| {
        Refusal::new(
            OAuthError::invalid_request("redirect_uri is not a URL"),
            "error",
        )
    })?;
    {
        let mut query = target.query_pairs_mut();
        query.append_pair("code", client_code.expose());
        if let Some(state) = &request.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", provider.issuer().as_str());
    }
    Ok(see_other(target.as_str()))
}

/// A device login refused after the upstream login (the device code can no longer be
/// approved), or failed.
fn device_refusal(error: OAuthError) -> Refusal {
    let outcome = if error.code() == OAuthErrorCode::ServerError {
        "error"
    } else {
        "refused"
    };
    Refusal::new(error, outcome)
}

/// Audits and logs a completed login (`login.success`).
async fn login_succeeded(
    provider: &Provider,
    identity: &SessionIdentity,
    sid: &SessionId,
    client_id: &str,
    device: bool,
    now: tether_common::time::UnixTime,
) {
    provider
        .audit(
            AuditRecord::new(
                now.as_secs(),
                audit_kind::LOGIN_SUCCESS,
                identity.subject.as_str(),
                AuditOutcome::Success,
            )
            .with_subject(sid.as_str())
            .with_details(serde_json::json!({
                "username": identity.username,
                "client_id": client_id,
                "groups": identity.groups.len(),
                "device": device,
            })),
        )
        .await;
    tracing::info!(sid = %sid, client_id, device, "login succeeded");
}

/// Audits a refused login (`login.refused`, with the reason and the client if known).
async fn refused(provider: &Provider, client_id: Option<&str>, reason: &str) {
    let mut record = AuditRecord::new(
        provider.now().as_secs(),
        audit_kind::LOGIN_REFUSED,
        ANONYMOUS,
        AuditOutcome::Denied,
    )
    .with_reason(reason);
    if let Some(client_id) = client_id {
        record = record.with_details(serde_json::json!({ "client_id": client_id }));
    }
    provider.audit(record).await;
}

/// An IdP error code, bounded and printable, for the audit reason.
fn short(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests;
