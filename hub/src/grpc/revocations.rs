//! One revocation feed for every control stream: a single task reads the revoked sessions
//! that still matter every [`REVOCATION_POLL`] and publishes them on a watch channel; each
//! stream sends its agent what it has not sent yet. The store is asked once per period,
//! whatever the number of connected agents (it used to be once per agent).

use std::sync::Arc;

use tether_common::time::{Clock, UnixTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::REVOCATION_POLL;
use crate::store::{RevokedSession, Store};

/// The revoked sessions that still matter, as last read from the store.
pub type RevokedSet = Arc<Vec<RevokedSession>>;

/// Starts the feed: reads once now (so a stream opened at once gets the full list), then
/// every [`REVOCATION_POLL`]. The task ends when every receiver is gone.
pub async fn spawn(
    store: Store,
    clock: Arc<dyn Clock>,
) -> (watch::Receiver<RevokedSet>, JoinHandle<()>) {
    let initial = read(&store, clock.now()).await.unwrap_or_default();
    let (tx, rx) = watch::channel(Arc::new(initial));
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(REVOCATION_POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = tx.closed() => break,
                _ = ticks.tick() => {}
            }
            let Some(list) = read(&store, clock.now()).await else {
                continue;
            };
            tx.send_if_modified(|current| {
                let changed = **current != list;
                if changed {
                    *current = Arc::new(list);
                }
                changed
            });
        }
    });
    (rx, task)
}

async fn read(store: &Store, now: UnixTime) -> Option<Vec<RevokedSession>> {
    match store.revoked_sessions(UnixTime::EPOCH, now).await {
        Ok(list) => Some(list),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read revoked sessions; agents keep the last list");
            None
        }
    }
}
