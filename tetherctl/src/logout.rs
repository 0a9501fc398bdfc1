//! `tetherctl logout`: end the session at the hub (RFC 7009 revocation of the refresh
//! token) and delete its cache; with `--remove-contexts`, also remove its kubeconfig
//! entries. The local cache is wiped even when the hub cannot be reached.

use std::path::PathBuf;

use crate::cli::Context;
use crate::error::Result;
use crate::hub::{HubArgs, HubClient, HubTarget};
use crate::kubeconfig;
use crate::session::{self, LOCK_WAIT, SessionStore};

/// `tetherctl logout`
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The hub to log out of.
    #[command(flatten)]
    pub hub: HubArgs,

    /// Also remove the kubeconfig contexts, clusters and users `login` wrote for this hub
    #[arg(long)]
    pub remove_contexts: bool,

    /// The kubeconfig to remove them from [default: first path of $KUBECONFIG, else
    /// ~/.kube/config]
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

/// Runs `logout`.
pub async fn run(args: &LogoutArgs, cx: &mut Context<'_>) -> Result<()> {
    let target = HubTarget::resolve(&args.hub, cx.env)?;
    let hub = target.url.to_string();
    let kubeconfig_path = args
        .remove_contexts
        .then(|| kubeconfig::path(args.kubeconfig.as_deref(), cx.env))
        .transpose()?;
    let store = SessionStore::new(&session::cache_root(cx.env)?, &target.url);
    let lock = store.lock(LOCK_WAIT).await?;
    // An unreadable session cannot be revoked, but is still wiped.
    let session = store.load(&lock).ok().flatten();

    match session {
        None => cx.err(&format!("No session for {hub} in the cache.\n"))?,
        Some(session) => {
            let revoked = async {
                let client = HubClient::new(&target)?;
                let endpoint = match session.revocation_endpoint.clone() {
                    Some(endpoint) => endpoint,
                    None => client.discover().await?.revocation_endpoint.ok_or(
                        crate::error::Error::BadResponse {
                            url: hub.clone(),
                            reason: "the hub has no revocation_endpoint".to_owned(),
                        },
                    )?,
                };
                client.revoke(&endpoint, &session.refresh_token).await
            }
            .await;
            match revoked {
                Ok(()) => cx.err(&format!("Ended your session at {hub}.\n"))?,
                Err(e) => cx.err(&format!(
                    "Could not end the session at the hub ({}); it may remain valid there until \
                     it expires.\n",
                    e.report()
                ))?,
            }
        }
    }
    store.wipe(lock)?;
    cx.err(&format!("Deleted the local session cache for {hub}.\n"))?;

    if let Some(path) = kubeconfig_path {
        if path.exists() {
            let removed = kubeconfig::update_file(&path, |config| {
                kubeconfig::remove_hub(config, &target.url)
            })?;
            cx.err(&format!(
                "Removed {} context(s) from {}{}\n",
                removed.len(),
                path.display(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", removed.join(", "))
                }
            ))?;
        } else {
            cx.err(&format!(
                "{} does not exist; nothing to remove.\n",
                path.display()
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
