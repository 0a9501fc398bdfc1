//! The Tether hub.
//!
//! Modules:
//! - [`cli`]: the `tether-hub` command line.
#![forbid(unsafe_code)]

pub mod cli;
