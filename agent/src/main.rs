//! `tether-agent`: joins a spoke cluster to the Tether hub and runs the impersonating proxy.

use clap::Parser;

/// Tether agent: joins a spoke cluster to the hub (`join`) and runs the control loop and
/// the impersonating proxy in front of the spoke's kube-apiserver (`run`).
#[derive(Debug, Parser)]
#[command(name = "tether-agent", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
