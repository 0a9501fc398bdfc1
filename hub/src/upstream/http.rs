//! The HTTP client openidconnect calls: reqwest 0.13, bounded timeouts and response size,
//! redirects never followed (a redirect is an error, not a hop to somewhere else).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Timeout of one request to the IdP.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of connecting to the IdP.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response body read from the IdP.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A reqwest client for openidconnect.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

/// A failed request to the IdP (transport, timeout, oversized response). Carries no token.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl HttpClient {
    /// A client with [`REQUEST_TIMEOUT`], [`CONNECT_TIMEOUT`] and no redirects.
    pub fn new() -> Result<Self, HttpError> {
        // Idempotent: `main` installs the same provider first; tests may not have.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tether-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| HttpError(format!("building the HTTP client: {err}")))?;
        Ok(Self { inner })
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request)
            .map_err(|err| HttpError(format!("preparing the request: {err}")))?;
        let target = format!(
            "{} {}",
            request.method(),
            request.url().as_str().split('?').next().unwrap_or_default()
        );
        let mut response = self
            .inner
            .execute(request)
            .await
            .map_err(|err| HttpError(format!("{target}: {}", describe(&err))))?;
        let mut builder = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| HttpError(format!("{target}: reading the body: {}", describe(&err))))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(HttpError(format!(
                    "{target}: response larger than {MAX_BODY_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|err| HttpError(format!("{target}: {err}")))
    }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// A reqwest error with its causes (the endpoint URLs carry no token: those travel in
/// headers and bodies).
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
