//! `tether-hub config example` and `tether-hub config check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::{Config, EXAMPLE, EXIT_CONFIG};

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print a fully commented example configuration.
    Example,
    /// Parse and validate a configuration file; exit 0 if usable, 64 if not.
    Check {
        /// The configuration file.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
}

/// Runs a `config` subcommand.
pub fn run(command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Example => {
            print!("{EXAMPLE}");
            ExitCode::SUCCESS
        }
        ConfigCommand::Check { config } => match Config::load(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {}: {err}", config.display());
                ExitCode::from(EXIT_CONFIG)
            }
        },
    }
}
