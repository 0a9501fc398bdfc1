//! Operator commands that work on the store directly (break-glass, audited):
//! `admin-token` and `keys list|rotate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use tether_common::time::SystemClock;

use super::EXIT_FAILURE;
use crate::admin::{AdminError, Offline};
use crate::config::{Config, DEV_CONFIG_FILE, EXIT_CONFIG, default_dev_data_dir};
use crate::keys::KeyEvent;

/// Which hub: its configuration file, or a dev data directory.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["config", "dev"])))]
pub struct HubArgs {
    /// The hub's configuration file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A hub run with `serve --dev` (its data directory holds the effective configuration).
    #[arg(long)]
    pub dev: bool,
    /// Dev mode's data directory [default: as for `serve --dev`].
    #[arg(long, value_name = "DIR", requires = "dev")]
    pub data_dir: Option<PathBuf>,
}

impl HubArgs {
    fn load(&self) -> Result<Config, String> {
        let path = match (&self.config, self.dev) {
            (Some(path), _) => path.clone(),
            (None, _) => {
                let dir = self
                    .data_dir
                    .clone()
                    .or_else(|| default_dev_data_dir(|name| std::env::var_os(name)))
                    .ok_or("--dev needs --data-dir (neither XDG_DATA_HOME nor HOME is set)")?;
                let file = dir.join(DEV_CONFIG_FILE);
                if !file.is_file() {
                    return Err(format!(
                        "{} does not exist: start `tether-hub serve --dev --data-dir {}` once first",
                        file.display(),
                        dir.display()
                    ));
                }
                file
            }
        };
        Config::load(&path).map_err(|err| format!("{}: {err}", path.display()))
    }
}

/// `admin-token` flags.
#[derive(Debug, Args)]
pub struct AdminTokenArgs {
    #[command(flatten)]
    hub: HubArgs,
    /// Who the token is for (its `username`; `sub` is `admin:NAME`).
    #[arg(long, default_value = "break-glass")]
    name: String,
    /// Lifetime, e.g. 10m (at most 1h).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

/// The `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the published signing keys (metadata only; never key material).
    List(HubArgs),
    /// Rotate now: `--emergency` drops the current key at once (tokens it signed stop
    /// verifying) and promotes next; without it, perform a scheduled rotation if one is due.
    Rotate {
        #[command(flatten)]
        hub: HubArgs,
        /// Drop the current key now (it is compromised).
        #[arg(long)]
        emergency: bool,
    },
}

/// Runs `admin-token`: prints the token on stdout, nothing else.
pub fn admin_token(args: AdminTokenArgs) -> ExitCode {
    run(&args.hub, |offline, operator| async move {
        let token = offline.admin_token(&args.name, &operator, args.ttl).await;
        offline.close().await;
        println!("{}", token?);
        Ok(())
    })
}

/// Runs a `keys` subcommand.
pub fn keys(command: KeysCommand) -> ExitCode {
    match command {
        KeysCommand::List(hub) => run(&hub, |offline, _| async move {
            let now = offline.now();
            println!(
                "{:<24} {:<6} {:<9} {:>10} {:>12}",
                "KID", "ALG", "STATE", "AGE", "LEAVES JWKS"
            );
            for key in offline.keys() {
                let age = now.as_secs().saturating_sub(key.created_at.as_secs());
                let leaves = key
                    .retire_after
                    .map(|t| format!("in {}s", t.as_secs().saturating_sub(now.as_secs())))
                    .unwrap_or_else(|| "-".to_owned());
                println!(
                    "{:<24} {:<6} {:<9} {:>9}s {:>12}",
                    key.kid.as_str(),
                    key.alg.as_str(),
                    key.status.as_str(),
                    age,
                    leaves
                );
            }
            offline.close().await;
            Ok(())
        }),
        KeysCommand::Rotate { hub, emergency } => run(&hub, |offline, operator| async move {
            let events = if emergency {
                offline.rotate_emergency(&operator).await
            } else {
                offline.rotate_if_due().await
            };
            offline.close().await;
            let events = events?;
            if events.is_empty() {
                println!("nothing to do (no rotation due, or another replica did it)");
            }
            for event in events {
                println!("{}", describe(&event));
            }
            Ok(())
        }),
    }
}

fn describe(event: &KeyEvent) -> String {
    match event {
        KeyEvent::Bootstrapped { current, next } => {
            format!("bootstrapped: current {current}, next {next}")
        }
        KeyEvent::Rotated { from, to, next } => {
            format!("rotated: {from} is previous, {to} signs, {next} is next")
        }
        KeyEvent::EmergencyRotated { dropped, to, next } => format!(
            "emergency rotation: {dropped} dropped from the JWKS, {to} signs, {next} is next \
             (running hubs follow within keys.refresh_interval)"
        ),
        KeyEvent::Retired { kid } => format!("retired: {kid} left the JWKS"),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// Loads the configuration, opens the store and keys, runs `action`.
fn run<F, Fut>(hub: &HubArgs, action: F) -> ExitCode
where
    F: FnOnce(Offline, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), AdminError>>,
{
    let config = match hub.load() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let operator = operator();
    let result = runtime.block_on(async {
        let offline = Offline::open(&config, Arc::new(SystemClock)).await?;
        action(offline, operator).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let code = if matches!(err, AdminError::Invalid(_)) {
                EXIT_CONFIG
            } else {
                EXIT_FAILURE
            };
            ExitCode::from(code)
        }
    }
}

/// The local OS user running the command, for the audit record.
fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid:{}", process_uid()))
}

/// The uid owning this process (from `/proc/self`, no `unsafe` call needed).
fn process_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(u32::MAX)
}
