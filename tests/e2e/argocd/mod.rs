//! ArgoCD cluster Secrets written by the hub into a real hub cluster: a spoke that joins
//! appears in ArgoCD's declarative format, `tetherctl argocd secret` prints the same, a
//! tampered Secret is put back, a removed spoke's Secret goes; two replicas on one
//! PostgreSQL write each change once.

mod env;
mod replicas;
mod secrets;
