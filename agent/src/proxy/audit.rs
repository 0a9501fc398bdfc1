//! One audit record per proxied request, on the tracing target [`TARGET`], with flat fields
//! a JSON formatter turns into one object. A record never contains a token: the caller gives
//! no header, and query parameters that can carry credentials are redacted by [`record`].

use std::borrow::Cow;
use std::time::Duration;

use http::Method;

/// The tracing target of audit records.
pub const TARGET: &str = "tether_agent::audit";

/// Query parameters whose value is replaced by `REDACTED` in audit records.
const SECRET_QUERY_PARAMS: &[&str] = &["access_token", "token", "id_token", "refresh_token"];

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Effective Kubernetes username (the impersonated one when `--as` was honoured; empty
    /// when the request was not authenticated).
    pub user: String,
    /// Effective groups.
    pub groups: Vec<String>,
    /// The authenticated user, when they impersonated `user`.
    pub impersonated_by: Option<String>,
    /// Hub session id.
    pub sid: Option<String>,
    /// Kubernetes verb, from [`k8s_verb`].
    pub verb: &'static str,
    /// Path and query of the request (credential parameters are redacted when recorded).
    pub path: String,
    /// HTTP status answered.
    pub status: u16,
    /// Time to the response (for an upgraded connection, its whole life).
    pub duration: Duration,
    /// Whether the connection was upgraded (exec, attach, port-forward).
    pub upgraded: bool,
}

/// Emits the audit record of `e` at INFO on [`TARGET`].
///
/// Every text field is a string value, so a log formatter quotes and escapes it: a user or
/// group name with a space or a newline in it cannot forge a field or a line.
pub fn record(e: &AuditEvent) {
    tracing::info!(
        target: TARGET,
        user = e.user.as_str(),
        groups = e.groups.join(",").as_str(),
        impersonated_by = e.impersonated_by.as_deref(),
        sid = e.sid.as_deref(),
        verb = e.verb,
        path = &*redact_path(&e.path),
        status = e.status,
        duration_ms = u64::try_from(e.duration.as_millis()).unwrap_or(u64::MAX),
        upgraded = e.upgraded,
        "proxied request"
    );
}

/// `path_and_query` with the value of every credential-carrying query parameter replaced by
/// `REDACTED`. Other parameters (`watch`, `labelSelector`, `command`...) are kept.
pub fn redact_path(path_and_query: &str) -> Cow<'_, str> {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return Cow::Borrowed(path_and_query);
    };
    let secret = |pair: &str| {
        let name = pair.split_once('=').map_or(pair, |(n, _)| n);
        SECRET_QUERY_PARAMS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
    };
    if !query.split('&').any(secret) {
        return Cow::Borrowed(path_and_query);
    }
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            if secret(pair) {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                format!("{name}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    Cow::Owned(format!("{path}?{}", query.join("&")))
}

/// The Kubernetes verb of a request, as the API server's `RequestInfo` derives it, except that
/// the streaming subresources `exec`, `attach`, `portforward` and `proxy` are named as such.
///
/// Resource requests (`/api/v1/...`, `/apis/<group>/<version>/...`): GET/HEAD is `get` with a
/// name, `list` without, `watch` with `?watch=true|1` or the legacy `/watch/` prefix; POST
/// `create`, PUT `update`, PATCH `patch`, DELETE `delete` / `deletecollection`. Other paths
/// are non-resource requests: the lowercase method. Unknown methods are `unknown`.
pub fn k8s_verb(method: &Method, path: &str, query: Option<&str>) -> &'static str {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return non_resource_verb(method),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    // namespaces/<ns>/<resource>... is namespaced; namespaces[/<name>] is the namespace itself.
    let rest = match rest {
        ["namespaces", _ns, resource @ ..] if !resource.is_empty() => resource,
        _ => rest,
    };
    let (has_name, subresource) = match rest {
        [] => return non_resource_verb(method),
        [_resource] => (false, None),
        [_resource, _name] => (true, None),
        [_resource, _name, sub, ..] => (true, Some(*sub)),
    };
    if let Some(sub @ ("exec" | "attach" | "portforward" | "proxy")) = subresource {
        return match sub {
            "exec" => "exec",
            "attach" => "attach",
            "portforward" => "portforward",
            _ => "proxy",
        };
    }
    let watch_param = query.is_some_and(|q| {
        q.split('&')
            .any(|pair| matches!(pair, "watch=true" | "watch=1"))
    });
    match *method {
        Method::GET | Method::HEAD if legacy_watch || watch_param => "watch",
        Method::GET | Method::HEAD if has_name => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if has_name => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

/// The verb of a non-resource request (`/healthz`, `/version`, `/api`, `/openapi/v2`...).
fn non_resource_verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "get",
        Method::HEAD => "head",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::OPTIONS => "options",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests;
