//! `tether-agent join`: register this spoke with the hub and install the agent into it.
//!
//! Order matters, so that nothing is spent or written on a failure that could be fixed:
//! 1. check the hub's certificate against `--ca-hash` ([`tether_common::pin`]) — before any request;
//! 2. check the kubeconfig may create everything ([`install::check_access`]) — before the
//!    single-use token is redeemed;
//! 3. generate a key and CSR ([`csr`]) and call `Registration.Join`;
//! 4. server-side apply the [`manifests`] ([`install::apply`]); re-running is safe.
//!
//! `--dry-run` does none of the network steps: it prints the manifests with a placeholder
//! identity and does not redeem the token.

pub mod csr;
pub mod install;
pub mod manifests;

use std::path::PathBuf;
use std::sync::Arc;

use tether_common::pin::{CaPin, PinOutcome, PinnedVerifier};
use tether_proto::v1::JoinRequest;
use tether_proto::v1::registration_client::RegistrationClient;
use tokio::io::AsyncWriteExt as _;
use tonic::Code;

use self::manifests::{InstallOptions, Manifests};
use crate::error::{Error, Result};
use crate::identity::Identity;
use crate::tls::{self, HubAddr};

/// How long `Registration.Join` may take.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Parsed `join` arguments.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    /// The hub's gRPC URL.
    pub hub: HubAddr,
    /// `ID.SECRET`.
    pub token: tether_common::secret::Secret,
    /// The hub's gRPC CA pin.
    pub pin: CaPin,
    /// The cluster name.
    pub cluster: String,
    /// Kubeconfig of the spoke (`None`: `$KUBECONFIG`, `~/.kube/config`, or in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// Namespace and image.
    pub install: InstallOptions,
}

/// Checks a cluster name: a DNS-1123 label (it becomes part of names and audiences).
pub fn validate_cluster_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidClusterName(name.to_owned()))
    }
}

/// `--dry-run`: the manifests with a placeholder identity, as YAML. No network.
pub fn dry_run(cluster: &str, hub_url: &str, install: &InstallOptions) -> Result<String> {
    Manifests::build(install, &Identity::placeholder(cluster, hub_url)).to_yaml()
}

/// Runs the join. Returns the installed identity's cluster name on success.
pub async fn join(args: &JoinArgs) -> Result<Identity> {
    // 1. Pin, before anything is sent.
    let verifier = Arc::new(PinnedVerifier::new(args.pin, tls::provider()));
    let hub_ca = check_pin(&args.hub, verifier.clone()).await?;
    tracing::info!(hub = args.hub.url(), "hub certificate matches --ca-hash");

    // 2. Spoke access, before the token is spent.
    let kube = install::client(args.kubeconfig.as_deref()).await?;
    install::check_access(&kube, &args.install.namespace).await?;
    tracing::info!(namespace = %args.install.namespace, "spoke access checked");

    // 3. Key, CSR, Join.
    let key = csr::generate(&args.cluster)?;
    let channel = args
        .hub
        .channel(tls::config_with_verifier(verifier.clone())?)?;
    let mut client = RegistrationClient::new(channel);
    let mut request = tonic::Request::new(JoinRequest {
        token: args.token.expose().to_owned(),
        cluster: args.cluster.clone(),
        csr_pem: key.csr_pem.clone(),
        agent_version: crate::VERSION.to_owned(),
    });
    request.set_timeout(JOIN_TIMEOUT);
    let response = match client.join(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            if verifier.outcome() == PinOutcome::Mismatch {
                return Err(Error::PinMismatch);
            }
            return Err(refusal(&status, &args.cluster, args.hub.url()));
        }
    };

    // The hub CA it returns must be the one we pinned.
    let returned = tls::certs_from_pem(&response.hub_ca_pem, "hub CA in the join response")?;
    if !returned.iter().any(|c| c.as_ref() == hub_ca.as_ref()) {
        return Err(Error::BadJoinResponse(
            "hub_ca_pem is not the CA that matched --ca-hash".to_owned(),
        ));
    }
    tls::certs_from_pem(
        &response.certificate_pem,
        "certificate in the join response",
    )?;
    tls::certs_from_pem(&response.cluster_ca_pem, "cluster CA in the join response")?;
    let identity = Identity {
        cert_pem: response.certificate_pem,
        key_pem: key.key_pem,
        cluster_ca_pem: response.cluster_ca_pem,
        hub_ca_pem: response.hub_ca_pem,
        hub_url: args.hub.url().to_owned(),
        cluster: args.cluster.clone(),
        issuer: response.issuer,
        audience: response.audience,
    };
    tracing::info!(cluster = %args.cluster, not_after = response.not_after, "joined the hub");

    // 4. Install.
    let manifests = Manifests::build(&args.install, &identity);
    install::apply(&kube, &manifests)
        .await
        .map_err(|e| Error::InstallAfterJoin {
            cluster: args.cluster.clone(),
            source: Box::new(e),
        })?;
    Ok(identity)
}

/// Does one TLS handshake with the pinning verifier and closes it; returns the pinned CA.
pub async fn check_pin(
    hub: &HubAddr,
    verifier: Arc<PinnedVerifier>,
) -> Result<rustls_pki_types::CertificateDer<'static>> {
    let config = Arc::new(tls::config_with_verifier(verifier.clone())?);
    let result = hub.dial(config).await;
    match (verifier.outcome(), result) {
        (PinOutcome::Mismatch, _) => Err(Error::PinMismatch),
        (PinOutcome::Matched(ca), Ok(mut stream)) => {
            let _ = stream.shutdown().await;
            Ok(ca)
        }
        (PinOutcome::ChainInvalid(why), _) => Err(Error::HubUnreachable {
            url: hub.url().to_owned(),
            source: std::io::Error::other(format!(
                "its certificate chain contains the pinned CA but does not verify to it ({why})"
            )),
        }),
        (_, Err(e)) => Err(e),
        (_, Ok(_)) => Err(Error::PinMismatch),
    }
}

/// A refused `Join` as an operator-facing error. The hub's messages already say what to do;
/// the code picks a fallback hint when they do not.
pub fn refusal(status: &tonic::Status, cluster: &str, hub_url: &str) -> Error {
    let msg = status.message();
    let new_token = format!("ask for a new one: `tetherctl cluster add {cluster}`");
    let hint = match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => {
            format!("the join token is unknown, used, expired, or for another cluster; {new_token}")
        }
        Code::FailedPrecondition | Code::AlreadyExists => format!(
            "cluster {cluster} cannot join now (expired token, or already joined): \
             `tetherctl cluster remove {cluster}` first, then `tetherctl cluster add {cluster}`"
        ),
        Code::InvalidArgument => {
            "check --token and --cluster against the command from `tetherctl cluster add`"
                .to_owned()
        }
        Code::NotFound => format!("the hub does not know cluster {cluster}: {new_token}"),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            return Error::HubUnreachable {
                url: hub_url.to_owned(),
                source: std::io::Error::other(msg.to_owned()),
            };
        }
        _ => return Error::Grpc(Box::new(status.clone())),
    };
    if msg.contains("tetherctl") {
        Error::JoinRefused(msg.to_owned())
    } else if msg.is_empty() {
        Error::JoinRefused(hint)
    } else {
        Error::JoinRefused(format!("{msg}: {hint}"))
    }
}

#[cfg(test)]
mod tests;
