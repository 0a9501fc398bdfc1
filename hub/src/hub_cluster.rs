//! The hub's own Kubernetes cluster: where ServiceAccount tokens are reviewed
//! (TokenReview, the machine path) and ArgoCD cluster Secrets are written.
//!
//! Configured by the `hub_cluster` section: a kubeconfig file, or (section present without
//! one) the in-cluster ServiceAccount. Absent section: neither feature is available.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Deserialize;

/// `hub_cluster`: how the hub reaches the Kubernetes cluster it runs on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubClusterConfig {
    /// A kubeconfig file; absent means the in-cluster ServiceAccount (or `$KUBECONFIG`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
}

/// Why the hub cluster cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum HubClusterError {
    /// The kubeconfig could not be read or used.
    #[error("hub_cluster.kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// Neither in-cluster configuration nor `$KUBECONFIG` was usable.
    #[error("hub_cluster: no in-cluster ServiceAccount or kubeconfig: {0}")]
    Infer(String),
    /// The client could not be built.
    #[error("hub_cluster: cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

impl HubClusterConfig {
    /// A client for the hub cluster.
    pub async fn client(&self) -> Result<kube::Client, HubClusterError> {
        let config = match &self.kubeconfig {
            Some(path) => {
                let fail = |reason: String| HubClusterError::Kubeconfig {
                    path: path.display().to_string(),
                    reason,
                };
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| fail(e.to_string()))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|e| HubClusterError::Infer(e.to_string()))?,
        };
        kube::Client::try_from(config).map_err(HubClusterError::Client)
    }
}
