//! `tetherctl argocd secret NAME [-o yaml|json]`: the ArgoCD cluster Secret the hub writes
//! for a joined cluster, rendered by the hub (the same function its reconciler uses).
//!
//! The Secret goes to stdout, exactly as the hub rendered it; spoke labels the hub could
//! not copy onto it are listed on stderr.

use tether_proto::v1::ArgoCdSecretRequest;

use super::cluster::ClusterName;
use super::connect::AdminSession;
use super::{AdminArgs, AdminConfig};
use crate::cli::Context;
use crate::error::Result;

/// `tetherctl argocd ...`
#[derive(Debug, clap::Args)]
pub struct ArgoCdArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ArgoCdCommand,
}

/// The `argocd` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ArgoCdCommand {
    /// Print the ArgoCD cluster Secret the hub writes for a joined cluster
    Secret {
        /// The cluster
        #[arg(value_name = "NAME")]
        name: ClusterName,
        /// Output format
        #[arg(short = 'o', long = "output", value_enum, default_value_t = SecretFormat::Yaml)]
        output: SecretFormat,
    },
}

/// `-o` for `argocd secret`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretFormat {
    /// A YAML manifest (what `kubectl get secret -o yaml` shows).
    #[default]
    Yaml,
    /// A JSON document.
    Json,
}

/// Runs an `argocd` subcommand.
pub async fn run(args: &ArgoCdArgs, admin: &AdminArgs, cx: &mut Context<'_>) -> Result<()> {
    let ArgoCdCommand::Secret { name, output } = &args.command;
    let config = AdminConfig::resolve(admin, cx.env)?;
    let session = AdminSession::connect(&config).await?;
    let request = ArgoCdSecretRequest {
        name: name.as_str().to_owned(),
    };
    let response = session
        .finish(session.client().argo_cd_secret(session.request(request)))
        .await?;
    for skipped in &response.skipped_labels {
        cx.err(&format!("warning: label not copied: {skipped}\n"))?;
    }
    let text = match output {
        SecretFormat::Yaml => response.yaml,
        SecretFormat::Json => response.json,
    };
    cx.out(&text)
}

#[cfg(test)]
mod tests;
