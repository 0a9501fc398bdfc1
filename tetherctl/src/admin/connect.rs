//! Connecting to the hub's `Admin` service: TLS (CA file or pin) on ring, the bearer token
//! on every call, a limit on connecting and on each call, and gRPC statuses mapped to
//! [`Error`]s.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tether_proto::v1::admin_client::AdminClient;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Response, Status};

use super::{AdminConfig, Trust};
use crate::error::{Error, Result};
use tether_common::pin::PinnedVerifier;

/// The metadata key the admin token travels in.
pub const AUTHORIZATION: &str = "authorization";

/// The generated client with the bearer token attached.
pub type Client = AdminClient<InterceptedService<Channel, Bearer>>;

/// A connected admin session: the client, and what calls need for timeouts and messages.
#[derive(Debug, Clone)]
pub struct AdminSession {
    client: Client,
    url: String,
    timeout: Duration,
}

impl AdminSession {
    /// Connects to the hub described by `config` (TLS handshake included), within
    /// `config.timeout`.
    pub async fn connect(config: &AdminConfig) -> Result<Self> {
        let unavailable = |source: Box<dyn std::error::Error + Send + Sync>| Error::Unavailable {
            url: config.url.clone(),
            source,
        };
        let endpoint = endpoint(config).map_err(|e| unavailable(e.into()))?;
        let channel = match tokio::time::timeout(config.timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => return Err(unavailable(e.into())),
            Err(_) => {
                return Err(Error::Timeout {
                    url: config.url.clone(),
                    timeout: config.timeout,
                });
            }
        };
        let bearer = Bearer::new(config.token.expose())?;
        Ok(Self {
            client: AdminClient::with_interceptor(channel, bearer),
            url: config.url.clone(),
            timeout: config.timeout,
        })
    }

    /// A handle to the client for one call (cheap: the channel is shared).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Wraps a message in a request carrying the call's deadline (`grpc-timeout`).
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Awaits a call within the timeout and maps its status to an [`Error`].
    pub async fn finish<T>(
        &self,
        call: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) if is_deadline(&status) => Err(Error::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            }),
            Ok(Err(status)) => Err(Error::from_status(status, &self.url)),
            Err(_) => Err(Error::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            }),
        }
    }
}

/// The tonic endpoint for `config`: TLS per [`Trust`], connect and call limits.
fn endpoint(config: &AdminConfig) -> Result<Endpoint, tonic::transport::Error> {
    let endpoint = Endpoint::from(config.uri.clone())
        .connect_timeout(config.timeout)
        .timeout(config.timeout);
    let tls = ClientTlsConfig::new().timeout(config.timeout);
    match &config.trust {
        Trust::CaPem(pem) => endpoint.tls_config(tls.ca_certificate(Certificate::from_pem(pem))),
        Trust::Pin(pin) => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(PinnedVerifier::new(*pin, provider));
            endpoint.tls_config_with_verifier(tls, verifier)
        }
    }
}

/// Whether a status means the call ran out of time (the server's deadline, or tonic's own
/// request timeout, which it reports as `CANCELLED`).
fn is_deadline(status: &Status) -> bool {
    match status.code() {
        tonic::Code::DeadlineExceeded => true,
        tonic::Code::Cancelled => status.message().contains("Timeout expired"),
        _ => false,
    }
}

/// Adds `authorization: Bearer <token>` to every call; the value is marked sensitive (not
/// logged by hpack tables or tonic's debug output).
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Bearer {
    /// The interceptor for `token`.
    pub fn new(token: &str) -> Result<Self> {
        let mut value: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Error::BadToken("it is not a valid header value"))?;
        value.set_sensitive(true);
        Ok(Self(value))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(AUTHORIZATION, self.0.clone());
        Ok(request)
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

#[cfg(test)]
mod tests;
