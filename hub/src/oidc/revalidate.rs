//! Re-validation of hub sessions at the upstream IdP: one code path
//! ([`revalidate_if_due`]) for the refresh grant ([`super::refresh`]) and for the
//! background sweeper ([`spawn`]), so a locked account loses its session within about
//! `upstream.recheck_interval` even when its client never refreshes (kubectl holding a
//! cluster token). Revoking the session feeds the revocation push to agents, so spokes
//! refuse its cluster tokens at once.
//!
//! **One check at a time.** A check is claimed first, by a compare-and-set on
//! `upstream_checked_at` ([`Store::claim_upstream_check`]): of racing requests and replicas
//! exactly one calls the IdP (which may rotate its refresh token: two refreshes with the
//! same one would look like a replay). The claim moves `upstream_checked_at` to
//! `now - recheck_interval + lease`, so the session is not due again for the lease
//! ([`CLAIM_LEASE`], at most the interval) while its claimer works; a confirmed check then
//! sets it to `now`, and a check that could not reach the IdP leaves it due again once the
//! lease has passed (a retry, not a hammering of a down IdP). The IdP call is bounded by a
//! timeout shorter than the lease.
//!
//! **Outcomes.** The IdP vouches for the user: the identity (username, groups) is updated.
//! The IdP refuses (`invalid_grant`: locked account, revoked grant; or another subject):
//! the session is revoked and audited (`session.upstream_rejected`). The IdP is unreachable:
//! the session is kept and a warning logged. Each check increments
//! `tether_hub_session_revalidations_total{outcome}`.
//!
//! **The sweeper** runs every [`sweep_period`] (a quarter of the interval, between 1 s and
//! 15 s), lists at most [`SWEEP_BATCH`] live sessions whose check is due (oldest first)
//! and checks them [`SWEEP_CONCURRENCY`] at a time.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tether_common::time::UnixTime;
use tokio::task::JoinHandle;

use super::audit_kind;
use super::provider::Provider;
use crate::sessions::{
    REASON_UPSTREAM_REJECTED, Session, SessionError, SessionId, SessionIdentity,
};
use crate::store::sessions::DueSession;
use crate::store::{AuditOutcome, AuditRecord, Store, StoreError};
use crate::upstream::{UpstreamError, UpstreamGrant};

/// Counter of upstream re-validations, labelled `outcome` (`confirmed`, `unreachable`,
/// `rejected`, `error`).
pub const METRIC_REVALIDATIONS: &str = "tether_hub_session_revalidations_total";

/// How long a claimed check keeps other requests and replicas away (capped at the
/// interval); a check that could not reach the IdP is retried after it.
pub const CLAIM_LEASE: Duration = Duration::from_secs(30);
/// At most this many sessions are checked per sweep.
pub const SWEEP_BATCH: u32 = 64;
/// At most this many checks of one sweep run at once.
pub const SWEEP_CONCURRENCY: usize = 8;
/// The longest time between two sweeps.
pub const MAX_SWEEP_PERIOD: Duration = Duration::from_secs(15);
/// The shortest time between two sweeps.
pub const MIN_SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// What started a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A client refreshed its tokens.
    Refresh,
    /// The background sweeper.
    Sweep,
}

impl Trigger {
    /// The name in logs and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::Sweep => "sweep",
        }
    }
}

/// What [`revalidate_if_due`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revalidated {
    /// Nothing: login is disabled, the check is not due, or another request or replica
    /// holds it. The session as it was.
    Skipped(Session),
    /// The IdP vouched for the user: the session with its (possibly changed) identity.
    Confirmed(Session),
    /// The IdP could not be reached: the session as it was (checked again after the lease).
    Unreachable(Session),
    /// The IdP no longer accepts the user: the session is revoked.
    Rejected,
}

impl Revalidated {
    /// The session, unless it was revoked.
    pub fn into_session(self) -> Option<Session> {
        match self {
            Self::Skipped(session) | Self::Confirmed(session) | Self::Unreachable(session) => {
                Some(session)
            }
            Self::Rejected => None,
        }
    }
}

/// Re-validates `session` at the upstream IdP if `upstream.recheck_interval` has passed
/// since its last check and this caller wins the claim; see the module documentation.
#[tracing::instrument(
    name = "session.revalidate",
    skip_all,
    fields(sid = %session.id, trigger = trigger.as_str(), outcome = tracing::field::Empty)
)]
pub async fn revalidate_if_due(
    provider: &Provider,
    session: Session,
    trigger: Trigger,
    now: UnixTime,
) -> Result<Revalidated, SessionError> {
    let Some(upstream) = provider.upstream() else {
        return Ok(Revalidated::Skipped(session));
    };
    let interval = upstream.recheck_interval();
    if !provider
        .sessions()
        .needs_upstream_check(&session, interval, now)
    {
        return Ok(Revalidated::Skipped(session));
    }
    let expected = session.upstream_checked_at.as_secs();
    let claimed = provider
        .store()
        .claim_upstream_check(
            session.id.as_str(),
            expected,
            claim_value(now, interval, expected),
        )
        .await?;
    if !claimed {
        tracing::debug!("another request or replica is checking this session");
        return Ok(Revalidated::Skipped(session));
    }
    let result = check(provider, session, trigger, interval, now).await;
    let outcome = match &result {
        Ok(Revalidated::Confirmed(_)) => "confirmed",
        Ok(Revalidated::Unreachable(_)) => "unreachable",
        Ok(Revalidated::Rejected) => "rejected",
        Ok(Revalidated::Skipped(_)) => "skipped",
        Err(_) => "error",
    };
    tracing::Span::current().record("outcome", outcome);
    metrics::counter!(METRIC_REVALIDATIONS, "outcome" => outcome).increment(1);
    result
}

/// The claimed check itself: ask the IdP, then update, keep or revoke.
async fn check(
    provider: &Provider,
    session: Session,
    trigger: Trigger,
    interval: Duration,
    now: UnixTime,
) -> Result<Revalidated, SessionError> {
    let Some(upstream) = provider.upstream() else {
        return Ok(Revalidated::Skipped(session));
    };
    let bytes = provider.sessions().upstream_grant(&session).await?;
    let result = match UpstreamGrant::from_bytes(&bytes) {
        Ok(grant) => {
            match tokio::time::timeout(check_timeout(interval), upstream.revalidate(&grant)).await {
                Ok(result) => result,
                Err(_) => Err(UpstreamError::Http(
                    "the IdP did not answer in time".to_owned(),
                )),
            }
        }
        Err(err) => Err(err),
    }
    // The IdP must still be talking about the same account (a recycled or re-bound grant
    // naming someone else ends the session).
    .and_then(|login| {
        if login.identity.subject == session.subject {
            Ok(login)
        } else {
            Err(UpstreamError::SubjectMismatch)
        }
    });
    match result {
        Ok(login) => {
            let identity = SessionIdentity {
                subject: login.identity.subject,
                username: login.identity.username,
                groups: login.identity.groups,
            };
            let grant = zeroize::Zeroizing::new(login.grant.to_bytes());
            let session = provider
                .sessions()
                .update_identity(&session.id, &identity, &grant, now)
                .await?;
            Ok(Revalidated::Confirmed(session))
        }
        Err(err) if err.is_transient() => {
            tracing::warn!(sid = %session.id, error = %err, trigger = trigger.as_str(), "upstream IdP unreachable; keeping the session's identity until the next check");
            Ok(Revalidated::Unreachable(session))
        }
        Err(err) => {
            let reason = match &err {
                UpstreamError::AccountRevoked => "upstream_account_revoked".to_owned(),
                other => format!("upstream_{}", other.outcome()),
            };
            tracing::warn!(sid = %session.id, error = %err, trigger = trigger.as_str(), "upstream IdP no longer accepts the user: ending the session");
            provider
                .sessions()
                .revoke(&session.id, REASON_UPSTREAM_REJECTED, now)
                .await?;
            provider
                .audit(
                    AuditRecord::new(
                        now.as_secs(),
                        audit_kind::SESSION_UPSTREAM_REJECTED,
                        session.subject.as_str(),
                        AuditOutcome::Denied,
                    )
                    .with_subject(session.id.as_str())
                    .with_reason(reason)
                    .with_details(serde_json::json!({
                        "username": session.username,
                        "trigger": trigger.as_str(),
                    })),
                )
                .await;
            Ok(Revalidated::Rejected)
        }
    }
}

/// The lease of a claim: [`CLAIM_LEASE`], at most `interval`.
fn lease(interval: Duration) -> Duration {
    CLAIM_LEASE.min(interval)
}

/// How long the IdP may take: five sixths of the lease, so the claim outlives the call.
fn check_timeout(interval: Duration) -> Duration {
    let lease = lease(interval);
    (lease - lease / 6).max(MIN_SWEEP_PERIOD)
}

/// The `upstream_checked_at` a claim writes: due again one lease after `now`, and always
/// different from `expected` (so the compare-and-set is a real change).
fn claim_value(now: UnixTime, interval: Duration, expected: i64) -> i64 {
    let due_again = now
        .saturating_sub(interval)
        .saturating_add(lease(interval))
        .as_secs();
    due_again.max(expected.saturating_add(1))
}

// ----- the sweeper -----

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions listed as due.
    pub due: usize,
    /// The IdP vouched for the user.
    pub confirmed: usize,
    /// The IdP could not be reached (session kept).
    pub unreachable: usize,
    /// The IdP refused the user (session revoked).
    pub rejected: usize,
    /// Ended meanwhile, or checked by another request or replica.
    pub skipped: usize,
    /// The check failed on the hub's side (store, KEK); logged.
    pub failed: usize,
}

/// The time between two sweeps: a quarter of `recheck_interval`, between
/// [`MIN_SWEEP_PERIOD`] and [`MAX_SWEEP_PERIOD`].
pub fn sweep_period(recheck_interval: Duration) -> Duration {
    (recheck_interval / 4).clamp(MIN_SWEEP_PERIOD, MAX_SWEEP_PERIOD)
}

/// Starts the sweeper over `provider`; `None` when login is disabled (no upstream IdP).
/// The task runs until aborted.
pub fn spawn(provider: Arc<Provider>) -> Option<JoinHandle<()>> {
    let period = sweep_period(provider.upstream()?.recheck_interval());
    tracing::info!(period = ?period, "upstream re-validation sweeper started");
    Some(tokio::spawn(run(provider, period)))
}

async fn run(provider: Arc<Provider>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match sweep(&provider).await {
            Ok(report) if report.due > 0 => {
                tracing::debug!(?report, "upstream re-validation sweep");
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "cannot list the sessions due for an upstream check");
            }
        }
    }
}

/// One sweep: checks up to [`SWEEP_BATCH`] live sessions whose upstream check is due,
/// [`SWEEP_CONCURRENCY`] at a time. Fails only if the due sessions cannot be listed.
#[tracing::instrument(
    name = "session.revalidation_sweep",
    skip_all,
    fields(due = tracing::field::Empty, rejected = tracing::field::Empty)
)]
pub async fn sweep(provider: &Provider) -> Result<SweepReport, StoreError> {
    let Some(upstream) = provider.upstream() else {
        return Ok(SweepReport::default());
    };
    let now = provider.now();
    let due = due_sessions(
        provider.store(),
        upstream.recheck_interval(),
        provider.sessions().config().idle_timeout.as_duration(),
        now,
    )
    .await?;
    let mut report = SweepReport {
        due: due.len(),
        ..SweepReport::default()
    };
    let outcomes: Vec<_> = futures_util::stream::iter(due)
        .map(|due| check_one(provider, due))
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    for outcome in outcomes {
        match outcome {
            SweepOutcome::Done(Revalidated::Confirmed(_)) => report.confirmed += 1,
            SweepOutcome::Done(Revalidated::Unreachable(_)) => report.unreachable += 1,
            SweepOutcome::Done(Revalidated::Rejected) => report.rejected += 1,
            SweepOutcome::Done(Revalidated::Skipped(_)) | SweepOutcome::Ended => {
                report.skipped += 1;
            }
            SweepOutcome::Failed => report.failed += 1,
        }
    }
    let span = tracing::Span::current();
    span.record("due", report.due);
    span.record("rejected", report.rejected);
    Ok(report)
}

/// Live sessions whose last upstream check is `interval` or more before `now`.
async fn due_sessions(
    store: &Store,
    interval: Duration,
    idle_timeout: Duration,
    now: UnixTime,
) -> Result<Vec<DueSession>, StoreError> {
    store
        .sessions_due_for_upstream_check(
            now.saturating_sub(interval).as_secs(),
            now.as_secs(),
            now.saturating_sub(idle_timeout).as_secs(),
            SWEEP_BATCH,
        )
        .await
}

/// What became of one due session.
enum SweepOutcome {
    /// Checked (or skipped by [`revalidate_if_due`]).
    Done(Revalidated),
    /// It ended between the listing and the check.
    Ended,
    /// The check failed on the hub's side (logged).
    Failed,
}

/// Checks one due session.
async fn check_one(provider: &Provider, due: DueSession) -> SweepOutcome {
    let now = provider.now();
    let sid = SessionId::new(due.id);
    let session = match provider.sessions().session(&sid, now).await {
        Ok(session) => session,
        Err(err) if err.is_client_error() => return SweepOutcome::Ended,
        Err(err) => {
            tracing::warn!(sid = %sid, error = %err, "cannot read a session due for an upstream check");
            return SweepOutcome::Failed;
        }
    };
    match revalidate_if_due(provider, session, Trigger::Sweep, now).await {
        Ok(revalidated) => SweepOutcome::Done(revalidated),
        Err(err) => {
            tracing::warn!(sid = %sid, error = %err, "upstream re-validation failed on the hub's side");
            SweepOutcome::Failed
        }
    }
}

#[cfg(test)]
mod tests;
