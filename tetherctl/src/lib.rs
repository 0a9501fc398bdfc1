//! `tetherctl`: log in through the Tether hub, act as kubectl's credential plugin, and
//! administer the hub over gRPC.
//!
//! Modules:
//! - [`cli`]: the clap command line ([`cli::Cli`]) and [`cli::run`], which takes the
//!   environment, clock and output streams as a [`cli::Context`] so tests need no process.
//! - [`admin`]: admin commands over the hub's gRPC `Admin` service: connection flags and
//!   their resolution, TLS by CA file or pin, the bearer token, and `cluster`.
//! - [`output`]: tables, JSON and times, as pure functions.
//! - [`error`]: [`Error`], one variant per thing the user can act on, and its exit code
//!   (1 for failures, 64 for usage errors).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod cli;
pub mod error;
pub mod output;

#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
