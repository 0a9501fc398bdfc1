//! gRPC errors, and their one conversion to a [`tonic::Status`] (STYLE.md #5).
//!
//! Client-facing variants carry a message written for the operator (what is wrong and
//! what to do); internal failures (storage, keys, certificate generation) become
//! `INTERNAL` with a fixed message, and are logged here, never sent.

use tonic::{Code, Status};

use crate::keys::KeyError;
use crate::store::StoreError;

/// Why a gRPC call failed.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// No or an invalid credential (admin token, client certificate).
    #[error("{0}")]
    Unauthenticated(String),
    /// The request is malformed (bad token shape, bad name, bad CSR).
    #[error("{0}")]
    InvalidArgument(String),
    /// A credential was refused (unknown, reused or foreign join token; removed cluster).
    #[error("{0}")]
    PermissionDenied(String),
    /// The system is not in a state that allows this (expired token, already joined).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The named object exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The store failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// The signing keys or the KEK failed.
    #[error("signing keys failed")]
    Keys(#[from] KeyError),
    /// A certificate could not be generated or parsed.
    #[error("PKI: {0}")]
    Pki(String),
    /// An ArgoCD cluster Secret could not be rendered.
    #[error("ArgoCD Secret")]
    ArgoCd(#[from] crate::argocd::ArgoCdError),
}

impl From<GrpcError> for Status {
    fn from(err: GrpcError) -> Self {
        let code = match &err {
            GrpcError::Unauthenticated(_) => Code::Unauthenticated,
            GrpcError::InvalidArgument(_) => Code::InvalidArgument,
            GrpcError::PermissionDenied(_) => Code::PermissionDenied,
            GrpcError::FailedPrecondition(_) => Code::FailedPrecondition,
            GrpcError::NotFound(_) => Code::NotFound,
            GrpcError::AlreadyExists(_) => Code::AlreadyExists,
            GrpcError::Store(_) | GrpcError::Keys(_) | GrpcError::Pki(_) | GrpcError::ArgoCd(_) => {
                tracing::error!(error = %err, source = ?std::error::Error::source(&err), "gRPC call failed");
                return Status::internal("internal error on the hub; see its logs");
            }
        };
        Status::new(code, err.to_string())
    }
}

impl From<crate::registry::RegistryError> for GrpcError {
    fn from(err: crate::registry::RegistryError) -> Self {
        use crate::registry::RegistryError;
        match err {
            RegistryError::AlreadyExists(name) => Self::AlreadyExists(format!(
                "cluster {name} already exists: remove it first (`tetherctl cluster remove {name}`) or pick another name"
            )),
            RegistryError::NotFound(name) => Self::NotFound(format!(
                "cluster {name} is not registered (or already removed): see `tetherctl cluster list`"
            )),
            RegistryError::WrongState { name, state } => {
                Self::FailedPrecondition(format!("cluster {name} is {state}"))
            }
            RegistryError::Store(err) => Self::Store(err),
        }
    }
}
