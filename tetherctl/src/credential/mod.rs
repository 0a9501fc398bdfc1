//! `tetherctl credential`: the kubectl (and ArgoCD) exec plugin. Prints an `ExecCredential`
//! with a short-lived token for one cluster.
//!
//! User mode (`--hub --cluster`): under the session lock, a cached cluster token with at
//! least [`MIN_REMAINING`] left is printed as is; otherwise the hub access token is
//! exchanged for one (after a refresh if the access token is about to expire — the rotated
//! refresh token is saved before anything else can fail). An `invalid_grant` on an exchange
//! with a cached access token is retried once after a refresh, since the hub says the same
//! for an expired access token as for an ended session.
//!
//! Machine mode (`--token-file`): the workload's own token (a projected ServiceAccount
//! token, re-read on every call) is exchanged; nothing is cached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tether_common::kube::exec_credential::EXEC_INFO_ENV;
use tether_common::kube::{ExecCredential, ExecInfo};
use tether_common::secret::Secret;
use tether_common::time::UnixTime;

use crate::admin::cluster::ClusterName;
use crate::cli::Context;
use crate::error::{Error, Result};
use crate::hub::client::error_code;
use crate::hub::{CLIENT_ID, HubArgs, HubClient, HubTarget, grant_type, token_type};
use crate::session::{self, CachedToken, LOCK_WAIT, Session, SessionLock, SessionStore};

/// A cached token is used only with at least this much lifetime left.
pub const MIN_REMAINING: Duration = Duration::from_secs(15);
/// Assumed lifetime of a token whose answer had no `expires_in`.
const DEFAULT_LIFETIME: u64 = 60;

/// `tetherctl credential`
#[derive(Debug, clap::Args)]
pub struct CredentialArgs {
    /// The hub that issues the token.
    #[command(flatten)]
    pub hub: HubArgs,

    /// The cluster to get a token for
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<ClusterName>,

    /// Machine mode: exchange the workload token in this file (e.g. a projected
    /// ServiceAccount token), re-read on every call, instead of a login session
    // The id `token_file` is shared with the admin commands' global `--token-file`.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

/// Runs `credential`: prints the `ExecCredential` on stdout.
pub async fn run(args: &CredentialArgs, cx: &mut Context<'_>) -> Result<()> {
    // Check what kubectl asked for before any network call.
    let info = ExecInfo::from_env_value(cx.env.var(EXEC_INFO_ENV).as_deref())
        .map_err(|e| Error::invalid(EXEC_INFO_ENV, "(from kubectl)", e.to_string()))?;
    let cluster = args
        .cluster
        .as_ref()
        .ok_or(Error::Missing("the cluster is needed: pass --cluster NAME"))?;
    let target = HubTarget::resolve(&args.hub, cx.env)?;
    let token = match &args.token_file {
        Some(path) => machine_token(&target, cluster, path, cx).await?,
        None => user_token(&target, cluster, cx).await?,
    };
    let credential = ExecCredential::new(info.api_version, token.token, token.expires_at);
    cx.out(&credential.to_json())
}

/// A cluster token from the user's session (see the module docs).
pub async fn user_token(
    target: &HubTarget,
    cluster: &ClusterName,
    cx: &mut Context<'_>,
) -> Result<CachedToken> {
    let hub = target.url.to_string();
    let store = SessionStore::new(&session::cache_root(cx.env)?, &target.url);
    let lock = store.lock(LOCK_WAIT).await?;
    let mut session = store
        .load(&lock)?
        .ok_or_else(|| Error::NotLoggedIn { hub: hub.clone() })?;
    let now = cx.clock.now();
    if let Some(cached) = session.clusters.get(cluster.as_str())
        && cached.valid_for(now, MIN_REMAINING)
    {
        return Ok(cached.clone());
    }

    let client = HubClient::new(target)?;
    let mut refreshed = false;
    let access = match &session.access_token {
        Some(access) if access.valid_for(now, MIN_REMAINING) => access.token.clone(),
        _ => {
            refreshed = true;
            refresh(&client, &store, &lock, &mut session, now).await?
        }
    };
    let token = match exchange(&client, &session, &access, cluster, now).await {
        Err(Error::OAuth { code, .. }) if code == error_code::INVALID_GRANT && !refreshed => {
            let access = refresh(&client, &store, &lock, &mut session, now).await?;
            exchange(&client, &session, &access, cluster, now).await
        }
        other => other,
    };
    let token = match token {
        Ok(token) => token,
        Err(Error::OAuth {
            code, description, ..
        }) if code == error_code::INVALID_GRANT => {
            store.forget(&lock)?;
            return Err(Error::SessionEnded {
                hub,
                reason: description.unwrap_or_else(|| "the hub refused the session".to_owned()),
            });
        }
        Err(Error::OAuth {
            code, description, ..
        }) if code == error_code::INVALID_TARGET => {
            return Err(Error::ClusterRefused {
                hub,
                cluster: cluster.to_string(),
                reason: description.unwrap_or_else(|| "unknown or not allowed".to_owned()),
            });
        }
        Err(other) => return Err(other),
    };
    session.prune(now);
    session.clusters.insert(cluster.to_string(), token.clone());
    store.save(&lock, &session)?;
    Ok(token)
}

/// Refreshes the session, saves the rotated refresh token at once, and returns the new
/// access token. `invalid_grant` ends the session.
async fn refresh(
    client: &HubClient,
    store: &SessionStore,
    lock: &SessionLock,
    session: &mut Session,
    now: UnixTime,
) -> Result<Secret> {
    let form = [
        ("grant_type", grant_type::REFRESH_TOKEN),
        ("refresh_token", session.refresh_token.expose()),
        ("client_id", CLIENT_ID),
    ];
    let tokens = match client.token(&session.token_endpoint, &form).await {
        Ok(tokens) => tokens,
        Err(Error::OAuth {
            code, description, ..
        }) if code == error_code::INVALID_GRANT => {
            store.forget(lock)?;
            return Err(Error::SessionEnded {
                hub: client.hub().to_string(),
                reason: description.unwrap_or_else(|| "the refresh token was refused".to_owned()),
            });
        }
        Err(other) => return Err(other),
    };
    if let Some(rotated) = tokens.refresh_token {
        session.refresh_token = rotated;
    }
    let access = CachedToken::new(
        tokens.access_token,
        now,
        tokens.expires_in.unwrap_or(DEFAULT_LIFETIME),
    );
    let token = access.token.clone();
    session.access_token = Some(access);
    // Cluster tokens of the old access token stay valid until they expire.
    store.save(lock, session)?;
    Ok(token)
}

/// RFC 8693: the hub access token for a token for `cluster`.
async fn exchange(
    client: &HubClient,
    session: &Session,
    access: &Secret,
    cluster: &ClusterName,
    now: UnixTime,
) -> Result<CachedToken> {
    let form = [
        ("grant_type", grant_type::TOKEN_EXCHANGE),
        ("subject_token", access.expose()),
        ("subject_token_type", token_type::ACCESS_TOKEN),
        ("audience", cluster.as_str()),
        ("client_id", CLIENT_ID),
    ];
    let tokens = client.token(&session.token_endpoint, &form).await?;
    Ok(CachedToken::new(
        tokens.access_token,
        now,
        tokens.expires_in.unwrap_or(DEFAULT_LIFETIME),
    ))
}

/// Machine mode: the workload token in `path` for a token for `cluster`.
pub async fn machine_token(
    target: &HubTarget,
    cluster: &ClusterName,
    path: &Path,
    cx: &mut Context<'_>,
) -> Result<CachedToken> {
    let subject = read_token_file(path)?;
    let client = HubClient::new(target)?;
    let discovery = client.discover().await?;
    let form = [
        ("grant_type", grant_type::TOKEN_EXCHANGE),
        ("subject_token", subject.expose()),
        ("subject_token_type", token_type::JWT),
        ("audience", cluster.as_str()),
        ("client_id", CLIENT_ID),
    ];
    let now = cx.clock.now();
    match client.token(&discovery.token_endpoint, &form).await {
        Ok(tokens) => Ok(CachedToken::new(
            tokens.access_token,
            now,
            tokens.expires_in.unwrap_or(DEFAULT_LIFETIME),
        )),
        Err(Error::OAuth {
            code, description, ..
        }) if code == error_code::INVALID_GRANT => Err(Error::WorkloadTokenRefused {
            hub: target.url.to_string(),
            path: path.to_owned(),
            reason: description.unwrap_or_else(|| "invalid_grant".to_owned()),
        }),
        Err(Error::OAuth {
            code, description, ..
        }) if code == error_code::INVALID_TARGET => Err(Error::ClusterRefused {
            hub: target.url.to_string(),
            cluster: cluster.to_string(),
            reason: description.unwrap_or_else(|| "unknown or not allowed".to_owned()),
        }),
        Err(other) => Err(other),
    }
}

fn read_token_file(path: &Path) -> Result<Secret> {
    const WHAT: &str = "--token-file";
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        what: WHAT,
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::BadFile {
            what: WHAT,
            path: path.to_owned(),
            reason: "it is empty".to_owned(),
        });
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::BadFile {
            what: WHAT,
            path: path.to_owned(),
            reason: "it holds more than one token (spaces or non-ASCII characters)".to_owned(),
        });
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
mod tests;
