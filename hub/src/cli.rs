//! The `tether-hub` command line.

use std::process::ExitCode;

use clap::Parser;

/// Tether hub: OIDC relying party to the enterprise IdP, OIDC provider for clusters,
/// owner of the signing keys.
#[derive(Debug, Parser)]
#[command(name = "tether-hub", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let _cli = Cli::parse();
    ExitCode::SUCCESS
}
