//! Starting the impersonating proxy beside the control loop: its certificate, the
//! apiserver it forwards to (with the agent's ServiceAccount), and the listener, reading
//! the verifier and revocations the control loop publishes ([`Published`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tether_common::time::Clock;

use super::Published;
use crate::join::manifests::{AGENT_NAME, SERVICE_PORT};
use crate::proxy::auth::Authenticator;
use crate::proxy::forward::{TOKEN_RECHECK, Upstream, UpstreamConfig};
use crate::proxy::impersonation::{ImpersonationCheck, SarCheck};
use crate::proxy::listener::ProxyListener;
use crate::proxy::server::Proxy;
use crate::proxy::tls::{ServerCert, SetupError, default_hosts};

/// The default `--proxy-listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";

/// Where the apiserver is.
#[derive(Debug, Clone)]
pub enum ApiserverSettings {
    /// In a pod: `KUBERNETES_SERVICE_HOST` and the mounted ServiceAccount.
    InCluster,
    /// `--apiserver`, `--apiserver-ca`, `--apiserver-token-file`.
    Explicit {
        /// `https://host:port`.
        url: String,
        /// CA bundle file.
        ca: PathBuf,
        /// Bearer token file (re-read when it changes).
        token_file: PathBuf,
    },
}

/// The proxy's settings, parsed from the flags.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `--proxy-listen`.
    pub listen: SocketAddr,
    /// `--proxy-host`: extra names for the generated certificate; the first is used in the
    /// default URL.
    pub hosts: Vec<String>,
    /// `--proxy-url`: what the hub is told.
    pub url: Option<String>,
    /// `--proxy-cert` / `--proxy-key`; generated in the state directory when absent.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// The agent's namespace (the Service's DNS names).
    pub namespace: String,
    /// Where a generated certificate is kept.
    pub state_dir: PathBuf,
    /// The apiserver.
    pub apiserver: ApiserverSettings,
    /// `--proxy-workers`: threads serving connections (see [`ProxyListener`]).
    pub workers: usize,
}

/// The default `--proxy-workers`: the CPUs this process may use (its affinity and cgroup
/// quota), at most 8.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, 8)
}

/// A proxy ready to serve.
#[derive(Debug)]
pub struct StartedProxy {
    /// The URL reported to the hub.
    pub url: String,
    /// The CA clients should trust (PEM), reported to the hub.
    pub ca_pem: String,
    /// The bound listener.
    pub listener: ProxyListener,
}

impl ProxySettings {
    /// The URL the hub is told: `--proxy-url`, else `https://<first --proxy-host>:<port>`,
    /// else in a pod the Service (`https://tether-agent.<ns>.svc:443`), else
    /// `https://127.0.0.1:<port>`.
    pub fn advertised_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.trim_end_matches('/').to_owned();
        }
        let port = self.listen.port();
        match (self.hosts.first(), &self.apiserver) {
            (Some(host), _) => format!("https://{}:{port}", bracket(host)),
            (None, ApiserverSettings::InCluster) => {
                format!("https://{AGENT_NAME}.{}.svc:{SERVICE_PORT}", self.namespace)
            }
            (None, ApiserverSettings::Explicit { .. }) => format!("https://127.0.0.1:{port}"),
        }
    }

    /// Loads or generates the certificate, connects nothing yet, and binds the listener.
    pub async fn start(
        &self,
        published: &Published,
        clock: Arc<dyn Clock>,
    ) -> Result<StartedProxy, SetupError> {
        let cert = match &self.cert {
            Some((cert, key)) => ServerCert::from_files(cert, key)?,
            None => ServerCert::generated(
                &self.state_dir,
                &default_hosts(&self.namespace, &self.hosts),
            )?,
        };
        let upstream_config = match &self.apiserver {
            ApiserverSettings::InCluster => UpstreamConfig::in_cluster()?,
            ApiserverSettings::Explicit {
                url,
                ca,
                token_file,
            } => UpstreamConfig::from_files(url.clone(), ca, token_file.clone())?,
        };
        let check: Arc<dyn ImpersonationCheck> =
            Arc::new(SarCheck::new(upstream_config.kube_client()?));
        let auth = Arc::new(Authenticator::new(
            published.verifier.clone(),
            published.revocations.clone(),
            clock,
        ));
        // One proxy per worker: shared authentication, its own upstream connection pool.
        let proxies = (0..self.workers)
            .map(|_| {
                let upstream = Upstream::new(&upstream_config, TOKEN_RECHECK)?;
                Ok(Arc::new(Proxy::new(auth.clone(), check.clone(), upstream)))
            })
            .collect::<Result<Vec<_>, SetupError>>()?;
        let listener =
            ProxyListener::bind_workers(self.listen, cert.server_config()?, proxies).await?;
        tracing::info!(
            url = %self.advertised_url(),
            apiserver = %upstream_config.url,
            workers = self.workers,
            "proxy ready"
        );
        Ok(StartedProxy {
            url: self.advertised_url(),
            ca_pem: cert.ca_pem,
            listener,
        })
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}
