//! The `tether-hub` command line.
//!
//! - `serve --config FILE` / `serve --dev [--data-dir DIR]` ([`serve`]).
//! - `config example`, `config check --config FILE` ([`config`]).
//! - `admin-token`, `keys list|rotate [--emergency]` ([`offline`]: on the store directly).
//! - `client-secret` ([`client_secret`]).
//!
//! Exit codes: 0 success, 64 unusable configuration or usage, 1 any other failure.

mod client_secret;
mod config;
mod offline;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code of every failure that is not the configuration's.
const EXIT_FAILURE: u8 = 1;

/// Tether hub: OIDC relying party to the enterprise IdP, OIDC provider for clusters,
/// owner of the signing keys.
#[derive(Debug, Parser)]
#[command(name = "tether-hub", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub (HTTPS: discovery, JWKS, health; metrics on a separate listener).
    Serve(serve::ServeArgs),
    /// Print an example configuration, or check a configuration file.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a short-lived admin token for the Admin API (break-glass; audited).
    AdminToken(offline::AdminTokenArgs),
    /// Inspect or rotate the signing keys in the store (emergency rotation; audited).
    #[command(subcommand)]
    Keys(offline::KeysCommand),
    /// Generate a confidential client's secret and the hash for `clients[].secret_hash`.
    ClientSecret(client_secret::ClientSecretArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                crate::config::EXIT_CONFIG
            } else {
                0
            };
            // Printing help or a usage error can only fail on a closed stdout/stderr.
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Config(command) => config::run(command),
        Command::AdminToken(args) => offline::admin_token(args),
        Command::Keys(command) => offline::keys(command),
        Command::ClientSecret(args) => client_secret::run(args),
    }
}
