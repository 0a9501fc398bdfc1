//! `tether-demo`: the local demo behind `scripts/demo`.
//!
//! `up` starts, on loopback, a hub cluster and N spoke clusters (real kube-apiservers on one
//! etcd, each spoke with a test node so `kubectl exec` works), the Okta-like IdP fixture and
//! the hub on SQLite, then writes `STATE_DIR/env` and stays up until SIGINT/SIGTERM.
//! `down` stops a running `up` through the pid file in the state directory.

mod env;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tether's local demo: real kube-apiservers, the IdP fixture and the hub.
#[derive(Debug, Parser)]
#[command(name = "tether-demo", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start everything, write STATE_DIR/env when ready, stay up until interrupted.
    Up {
        /// Where state, logs and the env file go.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
        /// How many spoke clusters (named spoke-1, spoke-2, ...).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
        spokes: u8,
    },
    /// Stop the demo started from STATE_DIR.
    Down {
        /// The state directory given to `up`.
        #[arg(long, value_name = "DIR")]
        state_dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tether-demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Up { state_dir, spokes } => runtime.block_on(run::up(&state_dir, spokes)),
        Command::Down { state_dir } => run::down(&state_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether-demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
