//! ArgoCD cluster Secrets written by the hub into a real hub cluster: a spoke that joins
//! appears in ArgoCD's declarative format, `tetherctl argocd secret` prints the same, a
//! tampered Secret is put back, a removed spoke's Secret goes; two replicas on one
//! PostgreSQL write each change once; and the whole path: the Secret's exec config, run by
//! kubectl with a real ServiceAccount token, reaches the spoke as the policy's identity.

mod env;
mod flow;
mod replicas;
mod secrets;
