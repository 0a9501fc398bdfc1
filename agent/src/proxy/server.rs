//! The request pipeline: authenticate -> set the verified identity -> forward or upgrade
//! -> audit record and metrics.
//!
//! A request without a valid token is answered 401 (503 while the agent has no keys from
//! the hub) and nothing is sent upstream. Every refusal is a Kubernetes `Status`
//! ([`ProxyError`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::audit::{self, AuditEvent};
use super::auth::{Authenticator, Identity};
use super::forward::{Exchange, ForwardError, Upstream};
use super::identity::apply_identity;
use super::impersonation::ImpersonationCheck;
use super::metrics::{self, UpgradedConnectionGuard};
use super::status::ProxyError;
use super::upgrade::{self, UpgradeKind};

/// Boxed error of a response body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response the proxy sends.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// How long a complete response's head waits for its first body frame (see
/// [`with_first_frame`]); past this the head goes alone.
pub const FIRST_FRAME_WAIT: Duration = Duration::from_millis(100);

/// The proxy: shared by every connection.
pub struct Proxy {
    auth: Arc<Authenticator>,
    check: Arc<dyn ImpersonationCheck>,
    upstream: Upstream,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy authenticating with `auth`, checking impersonation with `check`, and
    /// forwarding to `upstream`. Proxies of several listener workers share one
    /// authenticator (and its verified-token cache), each with its own `upstream`.
    pub fn new(
        auth: impl Into<Arc<Authenticator>>,
        check: Arc<dyn ImpersonationCheck>,
        upstream: Upstream,
    ) -> Self {
        Self {
            auth: auth.into(),
            check,
            upstream,
        }
    }

    /// The upstream (tests).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Serves one request; never fails (errors are `Status` responses).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let started = Instant::now();
        let verb = audit::k8s_verb(req.method(), req.uri().path(), req.uri().query());
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let mut event = AuditEvent {
            user: String::new(),
            groups: Vec::new(),
            impersonated_by: None,
            sid: None,
            verb,
            path,
            status: 0,
            duration: Duration::ZERO,
            upgraded: false,
        };
        let response = match self.pipeline(req, &mut event, started).await {
            Ok(response) => response,
            Err(e) => {
                if matches!(e, ProxyError::Internal | ProxyError::BadGateway(_)) {
                    tracing::warn!(error = %e, path = %audit::redact_path(&event.path), "proxy error");
                }
                e.into_response::<Full<Bytes>>()
                    .map(|b| b.map_err(|never| match never {}).boxed())
            }
        };
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            // An upgraded connection is recorded when it closes (see UpgradeRecord).
            event.status = status.as_u16();
            event.duration = started.elapsed();
            metrics::record_request(event.status, verb, event.duration);
            audit::record(&event);
        }
        Ok(response)
    }

    async fn pipeline(
        &self,
        mut req: Request<Incoming>,
        event: &mut AuditEvent,
        started: Instant,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let caller = self.auth.authenticate(req.headers())?;
        event.user.clone_from(&caller.username);
        event.groups.clone_from(&caller.groups);
        event.sid.clone_from(&caller.sid);
        let kind = upgrade::classify(req.headers());
        if let UpgradeKind::Refused(protocol) = &kind {
            return Err(ProxyError::BadRequest(format!(
                "upgrade to {protocol:?} is not supported: only SPDY/3.1 and websocket"
            )));
        }
        let effective = apply_identity(req.headers_mut(), &caller, self.check.as_ref()).await?;
        record_identity(event, &caller, &effective);
        match kind {
            UpgradeKind::Allowed(_) => {
                event.upgraded = true;
                let open = event.clone();
                // Boxed: its future (a dial of its own) is ~2.7 KB, and inline it would make
                // every request's future that large. hyper spawns a task per HTTP/2 stream,
                // so that is copied at every request; upgrades are rare.
                let response = Box::pin(upgrade::forward(&self.upstream, req, move || {
                    UpgradeRecord {
                        _guard: UpgradedConnectionGuard::new(),
                        event: open,
                        started,
                    }
                }))
                .await
                .map_err(bad_gateway)?;
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    let (parts, _) = response.into_parts();
                    Ok(Response::from_parts(parts, empty()))
                } else {
                    Ok(response.map(box_incoming))
                }
            }
            UpgradeKind::None | UpgradeKind::Refused(_) => {
                let exchange = Exchange::of(&event.path);
                let response = self
                    .upstream
                    .send(req, exchange)
                    .await
                    .map_err(bad_gateway)?;
                if exchange == Exchange::LongLived {
                    Ok(response.map(box_incoming))
                } else {
                    with_first_frame(response).await
                }
            }
        }
    }
}

/// Who the request ran as, and who asked.
fn record_identity(event: &mut AuditEvent, caller: &Identity, effective: &Identity) {
    event.impersonated_by = super::identity::impersonated_by(caller, effective);
    event.user.clone_from(&effective.username);
    event.groups.clone_from(&effective.groups);
}

/// Held by a spliced connection: counts it as open and writes its audit record (with its
/// whole duration) when it closes.
struct UpgradeRecord {
    _guard: UpgradedConnectionGuard,
    event: AuditEvent,
    started: Instant,
}

impl Drop for UpgradeRecord {
    fn drop(&mut self) {
        self.event.status = StatusCode::SWITCHING_PROTOCOLS.as_u16();
        self.event.duration = self.started.elapsed();
        metrics::record_request(self.event.status, self.event.verb, self.event.duration);
        audit::record(&self.event);
    }
}

fn bad_gateway(e: ForwardError) -> ProxyError {
    tracing::warn!(error = %e, "forwarding to the apiserver failed");
    match e {
        ForwardError::Upstream(_) => {
            ProxyError::BadGateway("the cluster's API server could not be reached".to_owned())
        }
        ForwardError::BadTarget(_) => ProxyError::BadRequest("invalid request target".to_owned()),
        ForwardError::Body(_) => {
            ProxyError::BadGateway("the cluster's API server broke off its response".to_owned())
        }
    }
}

/// A complete response (a `Content-Length` above 0; watches and followed logs never come
/// here) is answered once its first body frame is in, so that its head and body leave in
/// one write and reach the client in one wake-up. kube-apiserver may send a response's
/// head and body in two writes (over HTTP/2 it did for every response: Go's HTTP/2 server
/// flushes the head before the handler queues the body), and forwarded as they came they
/// cost the agent and the client a write and a wake-up more per request. The wait is bounded by
/// [`FIRST_FRAME_WAIT`]; the body is never read further than its first frame.
async fn with_first_frame(response: Response<Incoming>) -> Result<Response<ProxyBody>, ProxyError> {
    let sized = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    if !sized {
        return Ok(response.map(box_incoming));
    }
    let (parts, mut body) = response.into_parts();
    // `frame()` is cancel safe: on a timeout nothing has been taken from the body.
    let first = match tokio::time::timeout(FIRST_FRAME_WAIT, body.frame()).await {
        Ok(Some(Ok(frame))) => Some(frame),
        Ok(Some(Err(e))) => return Err(bad_gateway(ForwardError::Body(e))),
        Ok(None) | Err(_) => None,
    };
    Ok(Response::from_parts(
        parts,
        FirstFrame { first, rest: body }.boxed(),
    ))
}

/// A body whose first frame was already read.
struct FirstFrame {
    first: Option<Frame<Bytes>>,
    rest: Incoming,
}

impl Body for FirstFrame {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest)
            .poll_frame(cx)
            .map_err(|e| Box::new(e) as BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = self
            .first
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |d| d.len() as u64);
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + first);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + first);
        }
        hint
    }
}

fn box_incoming(body: Incoming) -> ProxyBody {
    body.map_err(|e| Box::new(e) as BoxError).boxed()
}

fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

#[cfg(test)]
mod tests;
