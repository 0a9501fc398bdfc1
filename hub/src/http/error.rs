//! The one place where errors become HTTP responses.
//!
//! Bodies are OAuth-style JSON (`{"error": ..., "error_description": ...}`, RFC 6749
//! §5.2 codes where one applies); internal details are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error a handler returns; [`IntoResponse`] turns it into status and JSON body.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No route matches the request.
    #[error("not found")]
    NotFound,
    /// The hub cannot serve this yet (store down, keys not loaded); the reason is public.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an infrastructure failure; logged, answered with a generic message.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl HttpError {
    /// Wraps any error as [`HttpError::Internal`].
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    /// The status code of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The JSON error body.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// A stable machine-readable code.
    pub error: &'static str,
    /// A human-readable explanation with nothing internal in it.
    pub error_description: String,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match self {
            Self::NotFound => ErrorBody {
                error: "not_found",
                error_description: "no such endpoint".to_owned(),
            },
            Self::Unavailable(reason) => ErrorBody {
                error: "temporarily_unavailable",
                error_description: reason,
            },
            Self::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                ErrorBody {
                    error: "server_error",
                    error_description: "internal error".to_owned(),
                }
            }
        };
        (status, Json(body)).into_response()
    }
}

/// The router's fallback: every unknown path is a JSON 404.
pub async fn not_found() -> HttpError {
    HttpError::NotFound
}
