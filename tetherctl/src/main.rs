//! `tetherctl`: log in through the Tether hub, act as kubectl's credential plugin, and
//! administer the hub over gRPC.

use std::process::ExitCode;

use clap::Parser;
use tether_common::time::SystemClock;
use tetherctl::admin::ProcessEnv;
use tetherctl::cli::{self, Cli, Context};
use tetherctl::error::{EXIT_FAILURE, EXIT_USAGE};

fn main() -> ExitCode {
    // ring, not aws-lc-rs: install it before anything builds a TLS config. This fails only
    // if a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit 64.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr());
    let mut cx = Context {
        env: &ProcessEnv,
        clock: &SystemClock,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    match runtime.block_on(cli::run(&cli, &mut cx)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}
