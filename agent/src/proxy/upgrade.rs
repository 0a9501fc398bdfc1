//! HTTP/1.1 upgrades (`exec`, `attach`, `port-forward`, `cp`): only `SPDY/3.1` and
//! `websocket`. The client's upgrade is taken before the request is forwarded; when the
//! apiserver answers 101 the client gets 101 with the apiserver's headers and the two
//! upgraded connections are spliced until either side closes. Any other answer from the
//! apiserver (e.g. 400/403 for a refused WebSocket, after which kubectl retries over SPDY)
//! is passed through unchanged.

use std::time::Duration;

use http::header::{self, HeaderMap};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt as _;

use super::forward::{Exchange, ForwardError, Upstream};

/// The upgrade protocols the proxy passes on (compared case-insensitively).
pub const ALLOWED_PROTOCOLS: [&str; 2] = ["SPDY/3.1", "websocket"];

/// How long closing both sides of a finished splice may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeKind {
    /// A plain request.
    None,
    /// An upgrade to an allowed protocol.
    Allowed(String),
    /// An upgrade to something else (answered 400).
    Refused(String),
}

/// Classifies `headers`: an `Upgrade` header makes it an upgrade request.
pub fn classify(headers: &HeaderMap) -> UpgradeKind {
    let Some(value) = headers.get(header::UPGRADE) else {
        return UpgradeKind::None;
    };
    let text = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
    let protocols: Vec<&str> = text.split(',').map(str::trim).collect();
    let allowed = !protocols.is_empty()
        && protocols
            .iter()
            .all(|p| ALLOWED_PROTOCOLS.iter().any(|a| a.eq_ignore_ascii_case(p)));
    if allowed {
        UpgradeKind::Allowed(text)
    } else {
        UpgradeKind::Refused(text)
    }
}

/// Forwards an upgrade request. On 101 from the apiserver, returns 101 to the client and
/// spawns the splice; otherwise returns the apiserver's response as is. `guard` is held for
/// as long as the spliced connection is open (the open-upgrades gauge).
pub async fn forward<G: Send + 'static>(
    upstream: &Upstream,
    mut req: Request<Incoming>,
    guard: impl FnOnce() -> G,
) -> Result<Response<Incoming>, ForwardError> {
    let client_upgrade = hyper::upgrade::on(&mut req);
    let mut response = upstream.send(req, Exchange::Upgrade).await?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(response);
    }
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let guard = guard();
    tokio::spawn(async move {
        let _guard = guard;
        let (client, server) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut server = TokioIo::new(server);
        match tokio::io::copy_bidirectional(&mut client, &mut server).await {
            Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
            Err(e) => tracing::debug!(error = %e, "upgraded connection ended"),
        }
        // One side failed or both closed: close both, cleanly where the peer still listens
        // (TLS close_notify), then drop them.
        let close = async {
            let _ = tokio::join!(client.shutdown(), server.shutdown());
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    });
    Ok(response)
}

#[cfg(test)]
mod tests;
