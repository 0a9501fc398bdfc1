//! [`ProxyError`]: every refusal of the proxy, answered as a Kubernetes `Status` object so
//! `kubectl` prints it like an API server error (`Error from server (Forbidden): ...`).
//!
//! This is the one place where proxy errors become HTTP responses (STYLE #5). Messages are
//! written for the user; none contains a token or an internal detail.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

/// `WWW-Authenticate` sent with every 401.
pub const WWW_AUTHENTICATE_BEARER: &str = "Bearer realm=\"tether\"";

/// Why the proxy refused or failed a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// No valid bearer token (401). The reason is a fixed, safe phrase: never token content.
    #[error("Unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The authenticated user may not do this (403), e.g. a refused impersonation.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The spoke's API server could not be reached or answered badly (502).
    #[error("{0}")]
    BadGateway(String),
    /// The proxy cannot serve yet, e.g. no keys from the hub (503).
    #[error("{0}")]
    ServiceUnavailable(String),
    /// A bug or an unexpected failure (500); the detail is logged, not sent.
    #[error("internal error")]
    Internal,
}

impl ProxyError {
    /// The HTTP status of the response.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Kubernetes `StatusReason` (`metav1.StatusReason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "Unauthorized",
            Self::Forbidden(_) => "Forbidden",
            Self::BadRequest(_) => "BadRequest",
            // Kubernetes has no reason for 502; clients fall back to the code.
            Self::BadGateway(_) => "BadGateway",
            Self::ServiceUnavailable(_) => "ServiceUnavailable",
            Self::Internal => "InternalError",
        }
    }

    /// The `Status` object as JSON bytes.
    pub fn body(&self) -> Bytes {
        let status = Status {
            kind: "Status",
            api_version: "v1",
            metadata: Metadata {},
            status: "Failure",
            message: self.to_string(),
            reason: self.reason(),
            code: self.status_code().as_u16(),
        };
        match serde_json::to_vec(&status) {
            Ok(json) => Bytes::from(json),
            // Serializing plain strings and numbers cannot fail; keep a valid body anyway.
            Err(_) => Bytes::from_static(
                br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"internal error","reason":"InternalError","code":500}"#,
            ),
        }
    }

    /// The response: the status code, `Content-Type: application/json`, the `Status` body,
    /// and on 401 `WWW-Authenticate: Bearer realm="tether"`.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let mut response = Response::new(B::from(self.body()));
        *response.status_mut() = self.status_code();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if matches!(self, Self::Unauthorized(_)) {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE_BEARER),
            );
        }
        response
    }
}

/// `metav1.Status`, the fields kubectl reads.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: Metadata,
    status: &'static str,
    message: String,
    reason: &'static str,
    code: u16,
}

/// Empty `ListMeta`.
#[derive(Serialize)]
struct Metadata {}

#[cfg(test)]
mod tests;
