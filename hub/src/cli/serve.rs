//! `tether-hub serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args};

use super::EXIT_FAILURE;
use crate::app::{AppError, ConfigSource, Prepared};
use crate::config::{EXIT_CONFIG, Overrides, default_dev_data_dir};
use crate::telemetry::Telemetry;

/// `serve` flags.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["config", "dev"])))]
pub struct ServeArgs {
    /// The configuration file (see `tether-hub config example`).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run with no configuration file: SQLite, KEK and a self-signed CA in --data-dir,
    /// issuer https://127.0.0.1:PORT, upstream login disabled.
    #[arg(long)]
    pub dev: bool,
    /// Dev mode's data directory [default: $XDG_DATA_HOME/tether/hub-dev or
    /// ~/.local/share/tether/hub-dev].
    #[arg(long, value_name = "DIR", requires = "dev")]
    pub data_dir: Option<PathBuf>,
    /// Override the HTTPS listen address (dev default 127.0.0.1:8443).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Override the metrics listen address (dev default 127.0.0.1, an ephemeral port).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Override the gRPC listen address (spokes, Admin API; default 0.0.0.0:8444, dev
    /// default 127.0.0.1:8444).
    #[arg(long, value_name = "ADDR:PORT")]
    pub grpc_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// The configuration source these flags select.
    fn source(&self) -> Result<ConfigSource, String> {
        match (&self.config, self.dev) {
            (Some(path), false) => Ok(ConfigSource::File(path.clone())),
            (None, true) => {
                let data_dir = self
                    .data_dir
                    .clone()
                    .or_else(|| default_dev_data_dir(|name| std::env::var_os(name)))
                    .ok_or("--dev needs --data-dir (neither XDG_DATA_HOME nor HOME is set)")?;
                Ok(ConfigSource::Dev { data_dir })
            }
            _ => Err("pass exactly one of --config FILE and --dev".to_owned()),
        }
    }
}

/// Runs the hub until SIGTERM or SIGINT.
pub fn run(args: ServeArgs) -> ExitCode {
    let source = match args.source() {
        Ok(source) => source,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let overrides = Overrides {
        listen: args.listen,
        metrics_listen: args.metrics_listen,
        grpc_listen: args.grpc_listen,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(serve(&source, &overrides)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let code = if err.is_config() {
                EXIT_CONFIG
            } else {
                EXIT_FAILURE
            };
            ExitCode::from(code)
        }
    }
}

/// Prepares, installs telemetry, serves.
async fn serve(source: &ConfigSource, overrides: &Overrides) -> Result<(), AppError> {
    let prepared = Prepared::new(source, overrides).await?;
    let telemetry = Telemetry::init(&prepared.config.telemetry).map_err(|err| {
        AppError::Config(crate::config::ConfigError::invalid(
            "telemetry",
            err.to_string(),
        ))
    })?;
    let result = prepared
        .serve(telemetry.prometheus(), shutdown_signal())
        .await;
    if let Err(err) = &result {
        tracing::error!(error = %err, "hub failed");
    }
    telemetry.shutdown();
    result
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => Some(terminate),
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops the hub");
            None
        }
    };
    let sigterm = async {
        match terminate.as_mut() {
            Some(terminate) => {
                terminate.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = sigterm => tracing::info!("SIGTERM: shutting down"),
        result = tokio::signal::ctrl_c() => match result {
            Ok(()) => tracing::info!("SIGINT: shutting down"),
            Err(err) => tracing::warn!(error = %err, "cannot listen for SIGINT"),
        },
    }
}
