//! Types shared by the Tether hub, agent and CLI.
//!
//! Modules:
//! - [`secret`]: secrets with redacted `Debug` and constant-time comparison.
#![forbid(unsafe_code)]

pub mod secret;
