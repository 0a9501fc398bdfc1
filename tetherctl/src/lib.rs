//! `tetherctl`: log in through the Tether hub, act as kubectl's credential plugin, and
//! administer the hub over gRPC.
//!
//! Modules:
//! - [`cli`]: the clap command line ([`cli::Cli`]) and [`cli::run`], which takes the
//!   environment, clock and output streams as a [`cli::Context`] so tests need no process;
//!   [`cli::main`] is the whole program for both binaries (`tetherctl`, `kubectl-tether`).
//! - [`login`]: `login` (browser with PKCE, or device code), then kubeconfig contexts.
//! - [`credential`]: `credential`, the kubectl/ArgoCD exec plugin (session or machine mode).
//! - [`logout`]: `logout` (revocation, cache wipe, optionally kubeconfig entries).
//! - [`hub`]: `--hub`/`--hub-ca` and the HTTP client for the hub's OAuth endpoints.
//! - [`session`]: the per-hub session cache and its lock.
//! - [`kubeconfig`]: where the kubeconfig is, and the `tether-*` entries of a hub.
//! - [`fsutil`]: private directories and atomic private files.
//! - [`admin`]: admin commands over the hub's gRPC `Admin` service: connection flags and
//!   their resolution, TLS by CA file or pin, the bearer token, and `cluster`.
//! - [`output`]: tables, JSON and times, as pure functions.
//! - [`error`]: [`Error`], one variant per thing the user can act on, and its exit code
//!   (1 for failures, 64 for usage errors).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod credential;
pub mod error;
pub mod fsutil;
pub mod hub;
pub mod kubeconfig;
pub mod login;
pub mod logout;
pub mod output;
pub mod session;

#[cfg(test)]
mod fake_hub;
#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
