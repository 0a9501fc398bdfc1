//! `tetherctl login`: log in to the hub (browser, or device code with `--no-browser`), keep
//! the session in the cache, and write a kubeconfig context for every cluster the hub
//! offers.
//!
//! - [`browser`]: authorization code + PKCE through a loopback redirect.
//! - [`device`]: the device authorization grant.
//! - [`pkce`]: PKCE and random values.

use std::path::PathBuf;
use std::time::Duration;

use tether_common::time::Clock;

use crate::cli::Context;
use crate::error::{Error, Result};
use crate::hub::{HubArgs, HubClient, HubTarget, OfferedCluster, TokenResponse};
use crate::kubeconfig::{self, MergeReport, Plugin};
use crate::session::{self, CachedToken, FORMAT_VERSION, LOCK_WAIT, Session, SessionStore};

pub mod browser;
pub mod device;
pub mod pkce;

/// Environment variable: the program that opens the login page (`$BROWSER <url>`).
pub const ENV_BROWSER: &str = "BROWSER";
/// Default limit on waiting for the browser (or the device code).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Assumed lifetime of a hub access token whose answer had no `expires_in`.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: u64 = 60;

/// `tetherctl login`
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The hub to log in to.
    #[command(flatten)]
    pub hub: HubArgs,

    /// Log in on another device: print a URL and a code instead of opening a browser
    #[arg(long)]
    pub no_browser: bool,

    /// The kubeconfig to write contexts into [default: first path of $KUBECONFIG, else
    /// ~/.kube/config]
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// How long to wait for the login to complete, e.g. 90s, 5m
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_timeout)]
    pub timeout: Duration,
}

/// Which way the user logs in; tests pass their own [`browser::Opener`].
#[derive(Clone, Copy)]
pub enum Method<'a> {
    /// A browser on this machine, started through the opener.
    Browser(&'a dyn browser::Opener),
    /// The device grant.
    Device,
}

impl std::fmt::Debug for Method<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Browser(_) => "Browser",
            Self::Device => "Device",
        })
    }
}

/// Runs `login` with the system browser.
pub async fn run(args: &LoginArgs, cx: &mut Context<'_>) -> Result<()> {
    let opener = browser::SystemOpener {
        browser: cx.env.var(ENV_BROWSER),
    };
    let method = if args.no_browser {
        Method::Device
    } else {
        Method::Browser(&opener)
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::Login(format!("cannot tell where this tetherctl is: {e}")))?;
    run_with(args, method, exe, cx).await
}

/// Runs `login`; `exe` is the `tetherctl` kubectl will run as the credential plugin.
pub async fn run_with(
    args: &LoginArgs,
    method: Method<'_>,
    exe: PathBuf,
    cx: &mut Context<'_>,
) -> Result<()> {
    let target = HubTarget::resolve(&args.hub, cx.env)?;
    let kubeconfig_path = kubeconfig::path(args.kubeconfig.as_deref(), cx.env)?;
    let store = SessionStore::new(&session::cache_root(cx.env)?, &target.url);
    let client = HubClient::new(&target)?;
    let discovery = client.discover().await?;

    let tokens = {
        let stderr = &mut *cx.stderr;
        let mut say = |text: &str| -> Result<()> {
            stderr
                .write_all(text.as_bytes())
                .and_then(|()| stderr.flush())
                .map_err(Error::Output)
        };
        match method {
            Method::Browser(opener) => {
                browser::login(&client, &discovery, opener, &mut say, args.timeout).await?
            }
            Method::Device => {
                let device =
                    device::login(&client, &discovery, args.timeout, cx.clock, &mut say, |d| {
                        tokio::time::sleep(d)
                    });
                // The device grant stops itself at `timeout` by the clock; this bounds it in
                // real time too.
                match tokio::time::timeout(args.timeout + Duration::from_secs(30), device).await {
                    Ok(tokens) => tokens?,
                    Err(_) => return Err(Error::LoginTimeout(args.timeout)),
                }
            }
        }
    };

    let session = new_session(&client, &discovery, tokens, cx.clock)?;
    let previous = {
        let lock = store.lock(LOCK_WAIT).await?;
        // An unreadable old session is simply replaced.
        let previous = store.load(&lock).ok().flatten();
        store.save(&lock, &session)?;
        previous
    };
    // The old session is of no use any more: end it at the hub (best effort).
    if let (Some(previous), Some(endpoint)) = (previous, &discovery.revocation_endpoint) {
        let _ = client.revoke(endpoint, &previous.refresh_token).await;
    }

    let access = session
        .access_token
        .as_ref()
        .map(|t| t.token.clone())
        .ok_or_else(|| Error::BadResponse {
            url: discovery.token_endpoint.clone(),
            reason: "no access token".to_owned(),
        })?;
    let clusters = client.clusters(&access).await?;
    let plugin = Plugin::new(exe, target.url.clone(), target.ca.clone(), cx.env);
    let report = kubeconfig::update_file(&kubeconfig_path, |config| {
        kubeconfig::merge(config, &plugin, &clusters)
    })?;
    cx.err(&summary(
        &target.url.to_string(),
        &clusters,
        &report,
        &kubeconfig_path,
    ))
}

/// The session a successful login starts.
fn new_session(
    client: &HubClient,
    discovery: &crate::hub::Discovery,
    tokens: TokenResponse,
    clock: &dyn Clock,
) -> Result<Session> {
    let refresh_token = tokens.refresh_token.ok_or_else(|| Error::BadResponse {
        url: discovery.token_endpoint.clone(),
        reason: "no refresh_token (the hub must grant offline_access to tetherctl)".to_owned(),
    })?;
    let now = clock.now();
    Ok(Session {
        version: FORMAT_VERSION,
        hub: client.hub().to_string(),
        token_endpoint: discovery.token_endpoint.clone(),
        revocation_endpoint: discovery.revocation_endpoint.clone(),
        refresh_token,
        access_token: Some(CachedToken::new(
            tokens.access_token,
            now,
            tokens.expires_in.unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME),
        )),
        clusters: Default::default(),
    })
}

/// What `login` tells the user on stderr.
pub fn summary(
    hub: &str,
    offered: &[OfferedCluster],
    report: &MergeReport,
    kubeconfig: &std::path::Path,
) -> String {
    let mut out = format!("Logged in to {hub}.\n");
    if offered.is_empty() {
        out.push_str(
            "The hub offers you no clusters yet; run `tetherctl login` again once it does.\n",
        );
    }
    if !report.written.is_empty() {
        out.push_str(&format!(
            "Wrote {} context(s) to {}:\n",
            report.written.len(),
            kubeconfig.display()
        ));
        for name in &report.written {
            out.push_str(&format!("  {name}\n"));
        }
    }
    if !report.removed.is_empty() {
        out.push_str("Removed context(s) of clusters the hub no longer offers:\n");
        for name in &report.removed {
            out.push_str(&format!("  {name}\n"));
        }
    }
    for (cluster, reason) in &report.skipped {
        out.push_str(&format!("Skipped cluster {cluster}: {reason}\n"));
    }
    if let Some(first) = report.written.first() {
        match &report.current_context {
            Some(current) => out.push_str(&format!(
                "Current context set to {current}. Try: kubectl get namespaces\n"
            )),
            None => out.push_str(&format!(
                "Use one with: kubectl --context {first} get namespaces  (or: kubectl config \
                 use-context {first})\n"
            )),
        }
    }
    out
}

fn parse_timeout(text: &str) -> std::result::Result<Duration, String> {
    let d =
        humantime::parse_duration(text).map_err(|e| format!("{e} (write it like 90s or 5m)"))?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests;
