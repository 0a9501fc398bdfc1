//! The command line: [`Cli`] (clap), and [`run`], which dispatches to the commands with an
//! injected environment, clock and output streams.

use std::io::Write;

use clap::{Parser, Subcommand};
use tether_common::time::Clock;

use crate::admin::argocd::{self, ArgoCdArgs};
use crate::admin::cluster::{self, ClusterArgs};
use crate::admin::{AdminArgs, Env};
use crate::credential::{self, CredentialArgs};
use crate::error::{Error, Result};
use crate::login::{self, LoginArgs};
use crate::logout::{self, LogoutArgs};

/// Tether CLI: `login`, `credential` (kubectl/ArgoCD exec plugin), `logout`, and admin
/// commands for the hub (`cluster`, `key`, `session`, `policy`, `audit`, `argocd`).
#[derive(Debug, Parser)]
#[command(name = "tetherctl", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    /// How admin commands reach the hub.
    #[command(flatten)]
    pub admin: AdminArgs,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to the hub and write a kubeconfig context for every cluster it offers you
    Login(LoginArgs),
    /// Print a short-lived token for a cluster as a kubectl ExecCredential (the exec plugin
    /// kubectl and ArgoCD run)
    Credential(CredentialArgs),
    /// End your session at the hub and delete its local cache
    Logout(LogoutArgs),
    /// Add, list and remove spoke clusters (admin; talks to the hub over gRPC)
    Cluster(ClusterArgs),
    /// ArgoCD cluster Secrets the hub writes (admin; talks to the hub over gRPC)
    #[command(name = "argocd")]
    ArgoCd(ArgoCdArgs),
}

/// What a command runs against: the environment, the clock, stdout and stderr.
pub struct Context<'a> {
    /// Environment variables.
    pub env: &'a dyn Env,
    /// The current time (relative times, expiry).
    pub clock: &'a dyn Clock,
    /// Where results go (stdout): only what scripts consume.
    pub stdout: &'a mut dyn Write,
    /// Where explanations go (stderr).
    pub stderr: &'a mut dyn Write,
}

impl Context<'_> {
    /// Writes `text` to stdout.
    pub fn out(&mut self, text: &str) -> Result<()> {
        self.stdout
            .write_all(text.as_bytes())
            .and_then(|()| self.stdout.flush())
            .map_err(Error::Output)
    }

    /// Writes `text` to stderr.
    pub fn err(&mut self, text: &str) -> Result<()> {
        self.stderr
            .write_all(text.as_bytes())
            .and_then(|()| self.stderr.flush())
            .map_err(Error::Output)
    }
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Runs the parsed command line.
pub async fn run(cli: &Cli, cx: &mut Context<'_>) -> Result<()> {
    match &cli.command {
        Command::Login(args) => {
            user_command_flags(&cli.admin)?;
            login::run(args, cx).await
        }
        Command::Credential(args) => {
            user_command_flags(&cli.admin)?;
            credential::run(args, cx).await
        }
        Command::Logout(args) => {
            user_command_flags(&cli.admin)?;
            logout::run(args, cx).await
        }
        Command::Cluster(args) => cluster::run(args, &cli.admin, cx).await,
        Command::ArgoCd(args) => argocd::run(args, &cli.admin, cx).await,
    }
}

/// The admin commands' global TLS flags mean nothing to `login`, `credential` and `logout`:
/// refuse them rather than ignore them.
fn user_command_flags(admin: &AdminArgs) -> Result<()> {
    if admin.ca_file.is_some() || admin.ca_hash.is_some() {
        return Err(Error::Conflict(
            "--ca-file and --ca-hash are for the admin commands; trust the hub with --hub-ca FILE",
        ));
    }
    Ok(())
}

/// The whole program: parse the command line as `bin_name` (`tetherctl`, or `kubectl
/// tether` when run as the kubectl plugin), run it, print an error as `tetherctl: ...` on
/// stderr, and return the exit code.
pub fn main(bin_name: &'static str) -> std::process::ExitCode {
    use std::process::ExitCode;

    use clap::{CommandFactory as _, FromArgMatches as _};
    use tether_common::time::SystemClock;

    use crate::admin::ProcessEnv;
    use crate::error::{EXIT_FAILURE, EXIT_USAGE};

    // ring, not aws-lc-rs: install it before anything builds a TLS config. This fails only
    // if a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let parsed = Cli::command()
        .name(bin_name)
        .bin_name(bin_name)
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
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
            eprintln!("tetherctl: cannot start the async runtime: {e}");
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
    match runtime.block_on(run(&cli, &mut cx)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tetherctl: {}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests;
