//! Types shared by the Tether hub, agent and CLI.
//!
//! Modules:
//! - [`fs`]: [`fs::write_private`], files with mode 0600.
//! - [`kube`]: kubeconfig files that keep unknown fields through an edit, and the
//!   `ExecCredential` a kubectl exec plugin prints.
//! - [`pin`]: trusting a hub by `--ca-hash sha256:...`: [`pin::CaPin`] and the rustls
//!   [`pin::PinnedVerifier`] (used by `tether-agent join` and `tetherctl`).
//! - [`secret`]: secrets with redacted `Debug` and constant-time comparison.
//! - [`time`]: [`time::UnixTime`] and the injectable [`time::Clock`]; nothing else reads the
//!   wall clock.
//! - [`token`]: JWTs on `ring` — signing keys, JWK/JWKS, cluster-token claims, compact JWS,
//!   the [`token::Verifier`] and its [`token::VerifyError`], and the [`token::VerifiedCache`].
//!
//! Each module has its own error type ([`token::KeyError`], [`token::JwkError`],
//! [`token::VerifyError`], [`kube::KubeconfigError`], [`kube::ExecCredentialError`]); there is
//! no crate-wide error.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fs;
pub mod kube;
pub mod pin;
pub mod secret;
pub mod time;
pub mod token;
