//! The header rewrite at the heart of the proxy: [`apply_identity`].
//!
//! Everything the client sent that could name an identity (`Authorization`, every
//! `Impersonate-*`, the front-proxy `X-Remote-*` headers) is removed first; only then are
//! the verified identity's `Impersonate-*` headers set (STYLE #10). The spoke's API server
//! trusts these headers because the proxy's own ServiceAccount may impersonate; that is why
//! no client value may ever pass through unchecked.

use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::auth::Identity;
use super::impersonation::{
    GROUPS, ImpersonationCheck, SERVICEACCOUNTS, UIDS, USEREXTRAS_PREFIX, USERS,
};
use super::status::ProxyError;

/// `Impersonate-User` (header names are lowercase in `http`).
pub const IMPERSONATE_USER: &str = "impersonate-user";
/// `Impersonate-Group`, one header per group.
pub const IMPERSONATE_GROUP: &str = "impersonate-group";
/// `Impersonate-Uid`.
pub const IMPERSONATE_UID: &str = "impersonate-uid";
/// Prefix of `Impersonate-Extra-<percent-encoded key>`.
pub const IMPERSONATE_EXTRA_PREFIX: &str = "impersonate-extra-";
/// Every header starting with this is removed from client requests.
const IMPERSONATE_PREFIX: &str = "impersonate-";
/// Front-proxy authentication headers (`X-Remote-User`, `-Group`, `-Extra-*`): removed too.
const X_REMOTE_PREFIX: &str = "x-remote-";

/// WebSocket subprotocol prefix carrying a bearer token to the API server.
const WEBSOCKET_BEARER_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// Extra: the hub session id.
pub const EXTRA_SID: &str = "tether.dev/sid";
/// Extra: the token issuer (the hub).
pub const EXTRA_ISSUER: &str = "tether.dev/issuer";
/// Extra: the authenticated user, when the request impersonates someone else.
pub const EXTRA_IMPERSONATED_BY: &str = "tether.dev/impersonated-by";
/// The headers of the proxy's own extras, as [`extra_header_name`] encodes their keys
/// (precomputed: they are set on every request).
const EXTRA_SID_HEADER: HeaderName = HeaderName::from_static("impersonate-extra-tether.dev%2fsid");
const EXTRA_ISSUER_HEADER: HeaderName =
    HeaderName::from_static("impersonate-extra-tether.dev%2fissuer");
const EXTRA_IMPERSONATED_BY_HEADER: HeaderName =
    HeaderName::from_static("impersonate-extra-tether.dev%2fimpersonated-by");
/// Extras under this prefix are set by the proxy only; a client may not request them.
const RESERVED_EXTRA_PREFIX: &str = "tether.dev/";
/// Usernames and groups under this prefix are Kubernetes' own; the hub never issues them.
const SYSTEM_PREFIX: &str = "system:";
/// Usernames of ServiceAccounts: `system:serviceaccount:<namespace>:<name>`.
const SERVICEACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Removes the client's `Authorization`, every `Impersonate-*` (and `X-Remote-*`) header and
/// any `base64url.bearer.authorization.k8s.io.*` WebSocket subprotocol, then sets the impersonation headers of the effective identity, which it returns.
///
/// - Without `Impersonate-User`/`-Group` from the client, the effective identity is
///   `identity`. Client `Impersonate-Uid`/`-Extra-*` without `Impersonate-User` are dropped.
/// - With them, every requested user, group, uid and extra must pass `check` for the
///   authenticated `identity`; the effective identity is the requested user (the
///   authenticated one if only groups were requested) with exactly the requested groups, and
///   `tether.dev/impersonated-by` names the authenticated user. One refusal refuses the
///   request ([`ProxyError::Forbidden`] naming it).
/// - A token naming a `system:` user or group, or an empty username, is refused.
///
/// `tether.dev/sid` (when the token has one) and `tether.dev/issuer` are always set. The
/// caller sets the proxy's own upstream credentials afterwards.
pub async fn apply_identity(
    headers: &mut HeaderMap,
    identity: &Identity,
    check: &dyn ImpersonationCheck,
) -> Result<Identity, ProxyError> {
    let requested = Requested::read(headers);
    strip_untrusted(headers);
    check_token_identity(identity)?;
    let requested = requested?;

    let mut extras: Vec<(String, String)> = Vec::new();
    let mut uid = None;
    let effective = if requested.asks_impersonation() {
        let username = requested
            .user
            .clone()
            .unwrap_or_else(|| identity.username.clone());
        if requested.user.is_some() {
            authorize(check, identity, user_resource(&username)).await?;
            if let Some(u) = &requested.uid {
                authorize(check, identity, (UIDS.to_owned(), u.clone())).await?;
                uid = Some(u.clone());
            }
            for (key, value) in &requested.extras {
                if key.starts_with(RESERVED_EXTRA_PREFIX) {
                    return Err(ProxyError::Forbidden(format!(
                        "the extra {key:?} is set by the tether proxy and cannot be impersonated"
                    )));
                }
                authorize(
                    check,
                    identity,
                    (format!("{USEREXTRAS_PREFIX}{key}"), value.clone()),
                )
                .await?;
                extras.push((key.clone(), value.clone()));
            }
        }
        for group in &requested.groups {
            authorize(check, identity, (GROUPS.to_owned(), group.clone())).await?;
        }
        extras.push((EXTRA_IMPERSONATED_BY.to_owned(), identity.username.clone()));
        Identity {
            username,
            groups: requested.groups.clone(),
            ..identity.clone()
        }
    } else {
        identity.clone()
    };

    if let Some(sid) = &effective.sid {
        extras.push((EXTRA_SID.to_owned(), sid.clone()));
    }
    extras.push((EXTRA_ISSUER.to_owned(), effective.issuer.clone()));

    headers.insert(
        HeaderName::from_static(IMPERSONATE_USER),
        header_value(&effective.username)?,
    );
    for group in &effective.groups {
        headers.append(
            HeaderName::from_static(IMPERSONATE_GROUP),
            header_value(group)?,
        );
    }
    if let Some(uid) = &uid {
        headers.insert(HeaderName::from_static(IMPERSONATE_UID), header_value(uid)?);
    }
    for (key, value) in &extras {
        headers.append(extra_header(key)?, header_value(value)?);
    }
    Ok(effective)
}

/// The authenticated user when `effective` is not `authenticated` (for audit records).
pub fn impersonated_by(authenticated: &Identity, effective: &Identity) -> Option<String> {
    (authenticated.username != effective.username || authenticated.groups != effective.groups)
        .then(|| authenticated.username.clone())
}

/// The header carrying extra `key`: `impersonate-extra-` and the key percent-encoded as
/// client-go does (every byte that is not an RFC 7230 token character, and `%`, becomes
/// `%XX`). Header names are case-insensitive, so the API server lowercases extra keys.
pub fn extra_header_name(key: &str) -> Result<HeaderName, ProxyError> {
    let mut name = String::from(IMPERSONATE_EXTRA_PREFIX);
    for b in key.bytes() {
        if is_token_byte(b) && b != b'%' {
            name.push(char::from(b.to_ascii_lowercase()));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ProxyError::BadRequest(format!("invalid extra key {key:?}")))
}

/// [`extra_header_name`], without encoding the proxy's own keys again on every request.
fn extra_header(key: &str) -> Result<HeaderName, ProxyError> {
    match key {
        EXTRA_SID => Ok(EXTRA_SID_HEADER),
        EXTRA_ISSUER => Ok(EXTRA_ISSUER_HEADER),
        EXTRA_IMPERSONATED_BY => Ok(EXTRA_IMPERSONATED_BY_HEADER),
        _ => extra_header_name(key),
    }
}

/// Removes every header a client could use to name an identity.
fn strip_untrusted(headers: &mut HeaderMap) {
    let untrusted: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            name.starts_with(IMPERSONATE_PREFIX) || name.starts_with(X_REMOTE_PREFIX)
        })
        .cloned()
        .collect();
    for name in untrusted {
        // `remove` drops every value of the name.
        headers.remove(&name);
    }
    headers.remove(AUTHORIZATION);
    strip_websocket_bearer(headers);
}

/// Removes `base64url.bearer.authorization.k8s.io.<token>` WebSocket subprotocols (a bearer
/// token the API server also accepts), keeping the others (`v5.channel.k8s.io`...).
fn strip_websocket_bearer(headers: &mut HeaderMap) {
    if !headers.contains_key(SEC_WEBSOCKET_PROTOCOL) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| {
            let protocols: Vec<&str> = value
                .to_str()
                .ok()?
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty() && !p.starts_with(WEBSOCKET_BEARER_PREFIX))
                .collect();
            (!protocols.is_empty())
                .then(|| HeaderValue::from_str(&protocols.join(", ")).ok())
                .flatten()
        })
        .collect();
    headers.remove(SEC_WEBSOCKET_PROTOCOL);
    for value in kept {
        headers.append(SEC_WEBSOCKET_PROTOCOL, value);
    }
}

/// Refuses identities the hub never issues.
fn check_token_identity(identity: &Identity) -> Result<(), ProxyError> {
    if identity.username.is_empty() {
        return Err(ProxyError::Forbidden("the token names no user".to_owned()));
    }
    if identity.username.starts_with(SYSTEM_PREFIX) {
        tracing::warn!(user = %identity.username, sid = ?identity.sid, "refused a token naming a system: user");
        return Err(ProxyError::Forbidden(format!(
            "user {:?} is reserved by Kubernetes and cannot sign in through tether",
            identity.username
        )));
    }
    if let Some(group) = identity
        .groups
        .iter()
        .find(|g| g.starts_with(SYSTEM_PREFIX))
    {
        tracing::warn!(user = %identity.username, group = %group, sid = ?identity.sid, "refused a token naming a system: group");
        return Err(ProxyError::Forbidden(format!(
            "group {group:?} is reserved by Kubernetes and cannot be granted through tether"
        )));
    }
    Ok(())
}

/// The `(resource, name)` checked to impersonate `username`.
fn user_resource(username: &str) -> (String, String) {
    match username
        .strip_prefix(SERVICEACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        Some((ns, sa)) => (SERVICEACCOUNTS.to_owned(), format!("{ns}/{sa}")),
        None => (USERS.to_owned(), username.to_owned()),
    }
}

/// Asks `check`; a refusal becomes a 403 worded like the API server's.
async fn authorize(
    check: &dyn ImpersonationCheck,
    who: &Identity,
    (resource, name): (String, String),
) -> Result<(), ProxyError> {
    if check.allowed(who, (&resource, &name)).await? {
        return Ok(());
    }
    tracing::info!(user = %who.username, resource = %resource, name = %name, "impersonation refused");
    Err(ProxyError::Forbidden(format!(
        "{resource} {name:?} is forbidden: User {:?} cannot impersonate resource {resource:?} in API group \"\" at the cluster scope",
        who.username
    )))
}

/// What the client asked to impersonate, read before the headers are stripped.
#[derive(Debug, Default)]
struct Requested {
    user: Option<String>,
    groups: Vec<String>,
    uid: Option<String>,
    extras: Vec<(String, String)>,
}

impl Requested {
    fn read(headers: &HeaderMap) -> Result<Self, ProxyError> {
        let mut requested = Self::default();
        for (name, value) in headers {
            let name = name.as_str();
            if !name.starts_with(IMPERSONATE_PREFIX) {
                continue;
            }
            let value = std::str::from_utf8(value.as_bytes())
                .map_err(|_| ProxyError::BadRequest(format!("{name} is not UTF-8")))?
                .to_owned();
            if name == IMPERSONATE_USER {
                if requested.user.replace(value).is_some() {
                    return Err(ProxyError::BadRequest(
                        "more than one Impersonate-User header".to_owned(),
                    ));
                }
            } else if name == IMPERSONATE_GROUP {
                requested.groups.push(value);
            } else if name == IMPERSONATE_UID {
                if requested.uid.replace(value).is_some() {
                    return Err(ProxyError::BadRequest(
                        "more than one Impersonate-Uid header".to_owned(),
                    ));
                }
            } else if let Some(encoded) = name.strip_prefix(IMPERSONATE_EXTRA_PREFIX) {
                let key = percent_decode(encoded).ok_or_else(|| {
                    ProxyError::BadRequest(format!("{name}: badly percent-encoded extra key"))
                })?;
                requested.extras.push((key, value));
            }
        }
        if requested.user.as_deref() == Some("") {
            return Err(ProxyError::BadRequest(
                "Impersonate-User is empty".to_owned(),
            ));
        }
        Ok(requested)
    }

    fn asks_impersonation(&self) -> bool {
        self.user.is_some() || !self.groups.is_empty()
    }
}

/// Percent-decodes an extra key (already lowercase: header names are).
fn percent_decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 7230 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A header value for a name (UTF-8 allowed, control characters refused).
fn header_value(value: &str) -> Result<HeaderValue, ProxyError> {
    HeaderValue::from_bytes(value.as_bytes())
        .map_err(|_| ProxyError::BadRequest(format!("{value:?} cannot be sent in a header")))
}

#[cfg(test)]
mod tests;
