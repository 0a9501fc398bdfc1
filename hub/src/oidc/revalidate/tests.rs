//! Upstream re-validation: the sweeper ends a locked user's session without any client
//! activity, updates groups, keeps sessions while the IdP is down (retrying after the
//! lease), checks each session once however many callers race, and stays bounded.

use std::time::Duration;

use axum::http::StatusCode;
use tether_common::secret::Secret;
use tether_common::time::UnixTime;

use super::{
    CLAIM_LEASE, Revalidated, SWEEP_BATCH, Trigger, revalidate_if_due, run, sweep, sweep_period,
};
use crate::http::test_support::expect_json;
use crate::oidc::test_support::{CLI, CLI_REDIRECT, Hub, Revalidation, payload};
use crate::sessions::{SessionError, SessionId, SessionIdentity};
use crate::upstream::UpstreamGrant;

const RECHECK: Duration = Duration::from_secs(300);

fn revalidations(hub: &Hub) -> u32 {
    *hub.upstream.as_ref().unwrap().revalidations.lock().unwrap()
}

fn answer(hub: &Hub, answer: Revalidation) {
    *hub.upstream.as_ref().unwrap().revalidation.lock().unwrap() = answer;
}

/// A login through the router; returns the session id and the hub access token.
async fn login(hub: &Hub) -> (SessionId, String) {
    let tokens = hub.tokens(CLI, CLI_REDIRECT).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let sid = SessionId::new(payload(&access)["sid"].as_str().unwrap());
    (sid, access)
}

#[tokio::test]
async fn sweeper_ends_a_locked_users_session() {
    let hub = Hub::new().await;
    let (sid, access) = login(&hub).await;

    // Checked at login: not due before the interval has passed.
    answer(&hub, Revalidation::Revoked);
    hub.advance(RECHECK - Duration::from_secs(1)).await;
    let report = sweep(&hub.provider).await.unwrap();
    assert_eq!(report.due, 0, "{report:?}");
    assert_eq!(revalidations(&hub), 0);

    // Due: the IdP says the account is locked; no client did anything.
    hub.advance(Duration::from_secs(1)).await;
    let report = sweep(&hub.provider).await.unwrap();
    assert_eq!((report.due, report.rejected), (1, 1), "{report:?}");
    assert_eq!(revalidations(&hub), 1);
    let now = hub.provider.now();
    assert!(matches!(
        hub.provider.sessions().session(&sid, now).await,
        Err(SessionError::Revoked)
    ));
    let row = hub.store.session_row(sid.as_str()).await.unwrap().unwrap();
    assert_eq!(row.revoked_reason.as_deref(), Some("upstream_rejected"));
    let audit = hub.audit("session.upstream_rejected").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].record.subject.as_deref(), Some(sid.as_str()));
    assert_eq!(
        audit[0].record.reason.as_deref(),
        Some("upstream_account_revoked")
    );
    assert_eq!(audit[0].record.details["trigger"], "sweep");

    // What agents are pushed: the session is in the revoked list.
    let revoked = hub
        .store
        .revoked_sessions(UnixTime::EPOCH, now)
        .await
        .unwrap();
    assert!(revoked.iter().any(|r| r.sid == sid.as_str()));
    // The hub refuses the session's access token for cluster tokens at once.
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", access.as_str()),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("audience", "dev-1"),
        ("client_id", CLI),
    ];
    let body = expect_json(
        hub.post_form("/token", &form, None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");

    // Nothing is due any more.
    hub.advance(RECHECK).await;
    assert_eq!(sweep(&hub.provider).await.unwrap().due, 0);
    assert_eq!(revalidations(&hub), 1);
}

#[tokio::test]
async fn sweeper_updates_groups_and_waits_a_full_interval() {
    let hub = Hub::new().await;
    let (sid, _) = login(&hub).await;
    answer(&hub, Revalidation::Groups(vec!["dev".into(), "ops".into()]));
    hub.advance(RECHECK).await;
    let report = sweep(&hub.provider).await.unwrap();
    assert_eq!((report.due, report.confirmed), (1, 1), "{report:?}");
    let now = hub.provider.now();
    let session = hub.provider.sessions().session(&sid, now).await.unwrap();
    assert_eq!(session.groups, vec!["dev".to_owned(), "ops".to_owned()]);
    assert_eq!(session.upstream_checked_at, now);

    hub.advance(RECHECK - Duration::from_secs(1)).await;
    assert_eq!(sweep(&hub.provider).await.unwrap().due, 0);
    assert_eq!(revalidations(&hub), 1);
}

#[tokio::test]
async fn unreachable_idp_keeps_the_session_and_retries_after_the_lease() {
    let hub = Hub::new().await;
    let (sid, _) = login(&hub).await;
    answer(&hub, Revalidation::Unreachable);
    hub.advance(RECHECK).await;
    let report = sweep(&hub.provider).await.unwrap();
    assert_eq!((report.due, report.unreachable), (1, 1), "{report:?}");
    let now = hub.provider.now();
    let session = hub.provider.sessions().session(&sid, now).await.unwrap();
    assert_eq!(session.groups, vec!["dev".to_owned()]);

    // Claimed for the lease: neither the sweeper nor a refresh checks meanwhile.
    hub.advance(CLAIM_LEASE - Duration::from_secs(1)).await;
    assert_eq!(sweep(&hub.provider).await.unwrap().due, 0);
    assert_eq!(revalidations(&hub), 1);

    // After the lease: checked again; the account is now locked.
    answer(&hub, Revalidation::Revoked);
    hub.advance(Duration::from_secs(1)).await;
    let report = sweep(&hub.provider).await.unwrap();
    assert_eq!(report.rejected, 1, "{report:?}");
    assert_eq!(revalidations(&hub), 2);
}

#[tokio::test]
async fn a_check_is_claimed_by_one_caller_only() {
    let hub = Hub::new().await;
    let (sid, _) = login(&hub).await;
    hub.advance(RECHECK).await;
    let now = hub.provider.now();
    // Two callers read the same due session (a refresh and a sweeper, or two replicas).
    let snapshot = hub.provider.sessions().session(&sid, now).await.unwrap();
    let first = revalidate_if_due(&hub.provider, snapshot.clone(), Trigger::Refresh, now)
        .await
        .unwrap();
    let second = revalidate_if_due(&hub.provider, snapshot.clone(), Trigger::Sweep, now)
        .await
        .unwrap();
    assert!(matches!(first, Revalidated::Confirmed(_)), "{first:?}");
    assert_eq!(second, Revalidated::Skipped(snapshot));
    assert_eq!(revalidations(&hub), 1);

    // Racing sweeps over several sessions: each session is checked once.
    for _ in 0..3 {
        login(&hub).await;
    }
    hub.advance(RECHECK).await;
    let (a, b) = tokio::join!(sweep(&hub.provider), sweep(&hub.provider));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.confirmed + b.confirmed, 4, "{a:?} {b:?}");
    assert_eq!(revalidations(&hub), 1 + 4);
}

#[tokio::test]
async fn sweeps_are_bounded_and_skip_dead_sessions() {
    let hub = Hub::new().await;
    let sessions = hub.provider.sessions();
    let identity = SessionIdentity {
        subject: "okta|alice".to_owned(),
        username: "alice@example.com".to_owned(),
        groups: vec!["dev".to_owned()],
    };
    let grant = UpstreamGrant {
        access_token: Secret::new("upstream-at"),
        refresh_token: Some(Secret::new("upstream-rt")),
        access_expires_at: None,
    }
    .to_bytes();
    let extra = 6;
    for _ in 0..SWEEP_BATCH + extra {
        sessions
            .create(&identity, &grant, CLI, hub.provider.now())
            .await
            .unwrap();
    }
    hub.advance(RECHECK).await;
    let first = sweep(&hub.provider).await.unwrap();
    assert_eq!(first.due, SWEEP_BATCH as usize, "{first:?}");
    assert_eq!(first.confirmed, SWEEP_BATCH as usize, "{first:?}");
    let second = sweep(&hub.provider).await.unwrap();
    assert_eq!(second.due, extra as usize, "{second:?}");
    assert_eq!(sweep(&hub.provider).await.unwrap().due, 0);

    // Past the idle timeout (15 min without use) sessions are dead: never checked.
    hub.advance(Duration::from_secs(15 * 60)).await;
    assert_eq!(sweep(&hub.provider).await.unwrap().due, 0);
    assert_eq!(revalidations(&hub), SWEEP_BATCH + extra);
}

#[tokio::test]
async fn without_an_upstream_nothing_runs() {
    let hub = Hub::without_upstream().await;
    assert!(super::spawn(std::sync::Arc::clone(&hub.provider)).is_none());
    assert_eq!(
        sweep(&hub.provider).await.unwrap(),
        super::SweepReport::default()
    );
}

#[tokio::test]
async fn the_loop_sweeps_on_its_own() {
    let hub = Hub::new().await;
    let (sid, _) = login(&hub).await;
    answer(&hub, Revalidation::Revoked);
    hub.advance(RECHECK).await;
    let task = tokio::spawn(run(
        std::sync::Arc::clone(&hub.provider),
        Duration::from_millis(20),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut revoked = false;
    while tokio::time::Instant::now() < deadline {
        let now = hub.provider.now();
        if matches!(
            hub.provider.sessions().session(&sid, now).await,
            Err(SessionError::Revoked)
        ) {
            revoked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert!(
        revoked,
        "the sweeper loop did not revoke the session in 10 s"
    );
}

#[tokio::test]
async fn revalidations_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let hub = Hub::new().await;
    login(&hub).await;
    login(&hub).await;
    answer(&hub, Revalidation::Revoked);
    hub.advance(RECHECK).await;
    {
        let _guard = metrics::set_default_local_recorder(&recorder);
        sweep(&hub.provider).await.unwrap();
    }
    let text = handle.render();
    assert!(
        text.contains(r#"tether_hub_session_revalidations_total{outcome="rejected"} 2"#),
        "{text}"
    );
}

#[test]
fn sweep_period_is_a_quarter_between_1s_and_15s() {
    assert_eq!(
        sweep_period(Duration::from_secs(300)),
        Duration::from_secs(15)
    );
    assert_eq!(
        sweep_period(Duration::from_secs(40)),
        Duration::from_secs(10)
    );
    assert_eq!(sweep_period(Duration::from_secs(2)), Duration::from_secs(1));
    assert_eq!(
        sweep_period(Duration::from_millis(100)),
        Duration::from_secs(1)
    );
}

#[test]
fn claims_always_move_the_value_and_expire_with_the_lease() {
    let now = UnixTime::from_secs(10_000);
    // Due again one lease after now.
    assert_eq!(
        super::claim_value(now, RECHECK, 9_000),
        10_000 - 300 + CLAIM_LEASE.as_secs() as i64
    );
    // A short interval caps the lease: due again one interval after now.
    assert_eq!(
        super::claim_value(now, Duration::from_secs(10), 9_000),
        10_000
    );
    // Never equal to what it replaces.
    assert_eq!(
        super::claim_value(now, Duration::from_millis(10), 10_000),
        10_001
    );
    assert!(super::check_timeout(RECHECK) < CLAIM_LEASE);
    assert!(super::check_timeout(Duration::from_secs(2)) >= Duration::from_secs(1));
}
