//! `tetherctl`: log in through the Tether hub, act as kubectl's credential plugin, and
//! administer the hub over gRPC.

use clap::Parser;

/// Tether CLI: `login`, `credential` (kubectl/ArgoCD exec plugin), `logout`, and admin
/// commands for the hub (`cluster`, `key`, `session`, `policy`, `audit`, `argocd`).
#[derive(Debug, Parser)]
#[command(name = "tetherctl", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
