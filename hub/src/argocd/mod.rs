//! ArgoCD cluster Secrets: the hub writes one for every joined spoke, so a spoke appears in
//! ArgoCD (and ApplicationSet cluster generators) as soon as it joins, with no static
//! credential: ArgoCD runs `tetherctl credential` with its controller's ServiceAccount token.
//!
//! - [`config`]: the `argocd` section.
//! - [`secret`]: [`secret::render`], the one pure function that turns a cluster record into
//!   its Secret (used by the reconciler and by `tetherctl argocd secret`).
//! - [`reconcile`]: the background task that makes the Secrets in the hub cluster match the
//!   registry, behind the small [`reconcile::SecretApi`] trait; optimistic concurrency
//!   (create → `AlreadyExists`, replace/delete with a `resourceVersion` → `Conflict`) makes
//!   each change written once however many hub replicas reconcile.
//!
//! [`ArgoCdLink`] is what the gRPC services share with the reconciler: they poke it when a
//! cluster is added, joined or removed, or its proxy URL or CA changes.

pub mod config;
pub mod reconcile;
pub mod secret;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};

use tether_common::time::SystemClock;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub use self::config::ArgoCdConfig;
pub use self::reconcile::{KubeSecrets, Reconciler, SecretApi};
pub use self::secret::{RenderSettings, Rendered, render};
use crate::config::Config;
use crate::grpc::GrpcState;
use crate::hub_cluster::HubClusterError;
use crate::store::StoreError;

/// Label that makes ArgoCD read a Secret as a cluster.
pub const LABEL_SECRET_TYPE: &str = "argocd.argoproj.io/secret-type";
/// Its value for clusters.
pub const SECRET_TYPE_CLUSTER: &str = "cluster";
/// Label marking the Secrets the hub owns.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "tether-hub";
/// Annotation naming the spoke a Secret is for.
pub const ANNOTATION_CLUSTER: &str = "tether.dev/cluster";
/// Prefix of annotations the hub owns (others on a Secret are kept).
pub const ANNOTATION_PREFIX: &str = "tether.dev/";
/// Prefix of the Secrets' names (`tether-cluster-<cluster>`).
pub const SECRET_NAME_PREFIX: &str = "tether-cluster-";
/// The label selector of the Secrets the hub owns.
pub const MANAGED_SELECTOR: &str =
    "app.kubernetes.io/managed-by=tether-hub,argocd.argoproj.io/secret-type=cluster";

/// Counter of Secret writes that succeeded, labelled `op` = `create` | `update` | `delete`.
pub const METRIC_SECRET_WRITES: &str = "tether_hub_argocd_secret_writes_total";
/// Counter of writes another writer (another replica) got in first.
pub const METRIC_WRITE_CONFLICTS: &str = "tether_hub_argocd_write_conflicts_total";
/// Counter of failed reconciliations.
pub const METRIC_RECONCILE_ERRORS: &str = "tether_hub_argocd_reconcile_errors_total";
/// Gauge of the Secrets the registry calls for.
pub const METRIC_SECRETS: &str = "tether_hub_argocd_secrets";

/// Audit kinds.
pub mod audit_kind {
    /// A cluster Secret was created.
    pub const SECRET_CREATED: &str = "argocd.secret.created";
    /// A cluster Secret was updated.
    pub const SECRET_UPDATED: &str = "argocd.secret.updated";
    /// A cluster Secret was deleted.
    pub const SECRET_DELETED: &str = "argocd.secret.deleted";
    /// An admin looked at a cluster's rendered Secret (`tetherctl argocd secret`).
    pub const SECRET_SHOWN: &str = "argocd.secret.shown";
}

/// Why ArgoCD Secrets could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum ArgoCdError {
    /// The `config` JSON or the Secret could not be serialized.
    #[error("cannot serialize the cluster Secret")]
    Render(#[source] serde_json::Error),
    /// The Secret could not be written as YAML.
    #[error("cannot write the cluster Secret as YAML: {0}")]
    Yaml(String),
    /// `argocd.hub_ca_file` (or the self-signed TLS CA) could not be read.
    #[error("cannot read the hub CA {path} for ArgoCD: {reason}")]
    HubCa {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// `argocd` is configured without `hub_cluster` (config validation refuses this).
    #[error("argocd needs the hub_cluster section")]
    NoHubCluster,
    /// The hub cluster could not be reached.
    #[error(transparent)]
    HubCluster(#[from] HubClusterError),
    /// The Kubernetes API refused or failed a call.
    #[error("{op} Secret {namespace}/{name}")]
    Api {
        /// `list`, `get`, `create`, `replace`, `delete`.
        op: &'static str,
        /// The namespace.
        namespace: String,
        /// The Secret (empty for `list`).
        name: String,
        /// What the API said.
        #[source]
        source: reconcile::ApiError,
    },
    /// Other writers kept changing a Secret while this replica tried to converge it.
    #[error("Secret {name} kept changing under {attempts} attempts; retrying next time")]
    TooManyConflicts {
        /// The Secret.
        name: String,
        /// Attempts made.
        attempts: usize,
    },
    /// The registry could not be read.
    #[error("cannot read the cluster registry")]
    Store(#[from] StoreError),
}

/// What the gRPC services share with the reconciler: the change signal and, once the
/// `argocd` section is resolved, the render settings.
#[derive(Debug, Default)]
pub struct ArgoCdLink {
    changed: Notify,
    settings: OnceLock<Arc<RenderSettings>>,
}

impl ArgoCdLink {
    /// Signals that clusters changed (added, joined, removed, new proxy URL or CA): the
    /// reconciler runs at once (several pokes while it runs make one more run).
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    /// Completes at the next [`Self::poke`] (or at once if one came since the last wait).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Sets the render settings (once; false if they were already set).
    pub fn configure(&self, settings: Arc<RenderSettings>) -> bool {
        self.settings.set(settings).is_ok()
    }

    /// The render settings; `None` when `argocd` is not configured.
    pub fn settings(&self) -> Option<&Arc<RenderSettings>> {
        self.settings.get()
    }
}

/// Resolves the `argocd` section into [`RenderSettings`]: the hub URL (default: the
/// issuer) and the hub CA (`hub_ca_file`, else the self-signed TLS CA, else none).
pub fn resolve_settings(
    config: &Config,
    argocd: &ArgoCdConfig,
) -> Result<RenderSettings, ArgoCdError> {
    // `Url` writes a bare origin with a trailing `/`; the credential joins paths to it.
    let hub_url = argocd.hub_url.as_ref().map_or_else(
        || config.issuer.as_str().to_owned(),
        |url| url.as_str().trim_end_matches('/').to_owned(),
    );
    let ca_file = argocd.hub_ca_file.clone().or_else(|| {
        config
            .tls
            .self_signed_dir
            .as_ref()
            .filter(|_| config.tls.self_signed)
            .map(|dir| dir.join(crate::tls::CA_CERT_FILE))
    });
    let hub_ca_pem = ca_file.map(|path| read_ca(&path)).transpose()?;
    Ok(RenderSettings {
        namespace: argocd.namespace.clone(),
        command: argocd.credential_command.clone(),
        token_file: argocd.token_file.to_string_lossy().into_owned(),
        hub_url,
        hub_ca_pem,
    })
}

fn read_ca(path: &std::path::Path) -> Result<String, ArgoCdError> {
    let fail = |reason: String| ArgoCdError::HubCa {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(fail("no PEM CERTIFICATE block in it".to_owned()));
    }
    Ok(pem)
}

/// When `argocd` is configured: resolves its settings, publishes them to the gRPC services
/// (for `tetherctl argocd secret`) and starts the reconciler on the hub cluster.
pub async fn start(
    config: &Config,
    grpc: &GrpcState,
) -> Result<Option<JoinHandle<()>>, ArgoCdError> {
    let Some(argocd) = &config.argocd else {
        return Ok(None);
    };
    let hub_cluster = config
        .hub_cluster
        .as_ref()
        .ok_or(ArgoCdError::NoHubCluster)?;
    let settings = Arc::new(resolve_settings(config, argocd)?);
    let client = hub_cluster.client().await?;
    grpc.argocd().configure(Arc::clone(&settings));
    tracing::info!(
        namespace = %settings.namespace,
        hub_url = %settings.hub_url,
        hub_ca = settings.hub_ca_pem.is_some(),
        resync = %argocd.resync_interval,
        "ArgoCD cluster Secrets: reconciling"
    );
    let api = KubeSecrets::new(client, &settings.namespace);
    let reconciler = Reconciler::new(api, grpc.store().clone(), settings, Arc::new(SystemClock));
    let link = Arc::clone(grpc.argocd());
    let resync = argocd.resync_interval.as_duration();
    Ok(Some(tokio::spawn(reconciler.run(link, resync))))
}
