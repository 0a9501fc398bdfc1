//! The entry point every benchmark binary shares (included with `#[path]`, like
//! `procstat.rs`): a multi-threaded runtime, SIGINT/SIGTERM turned into an error so every
//! fixture guard still drops (and stops its process), and `NAME: FAILED: ...` on failure.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};

/// Runs `bench` to completion or until a signal; `name` prefixes the failure message.
pub fn main_with<Fut>(name: &str, bench: Fut) -> ExitCode
where
    Fut: Future<Output = Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(until_signal(bench));
    // Streams still in flight on error must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `bench`, or an error when SIGINT or SIGTERM arrives first.
async fn until_signal<Fut>(bench: Fut) -> Result<()>
where
    Fut: Future<Output = Result<()>>,
{
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = bench => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (SIGINT)")),
        _ = term.recv() => Err(anyhow!("terminated (SIGTERM)")),
    }
}
