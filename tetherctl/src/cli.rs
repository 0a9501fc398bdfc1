//! The command line: [`Cli`] (clap), and [`run`], which dispatches to the commands with an
//! injected environment, clock and output streams.

use std::io::Write;

use clap::{Parser, Subcommand};
use tether_common::time::Clock;

use crate::admin::cluster::{self, ClusterArgs};
use crate::admin::{AdminArgs, Env};
use crate::error::{Error, Result};

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

/// Top-level commands. `login`, `credential` and `logout` come next.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, list and remove spoke clusters (admin; talks to the hub over gRPC)
    Cluster(ClusterArgs),
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
        Command::Cluster(args) => cluster::run(args, &cli.admin, cx).await,
    }
}
