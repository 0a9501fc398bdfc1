//! Kubernetes client-side formats the hub, agent and CLI exchange with kubectl.
//!
//! - [`exec_credential`]: the `ExecCredential` an exec plugin (`tetherctl credential`)
//!   prints, and the `KUBERNETES_EXEC_INFO` kubectl passes it.
//! - [`kubeconfig`]: a kubeconfig file as a typed top level whose entries keep every field
//!   they were read with, so a tool can edit its own entries and write the file back
//!   without losing anyone else's.

pub mod exec_credential;
pub mod kubeconfig;

pub use exec_credential::{ExecApiVersion, ExecCredential, ExecCredentialError, ExecInfo};
pub use kubeconfig::{EntryKind, ExecConfig, ExecEnvVar, Kubeconfig, KubeconfigError, NamedEntry};
