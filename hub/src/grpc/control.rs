//! `Control.Connect`: the stream between the hub and each joined agent.
//!
//! The agent authenticates with its client certificate (chained to the cluster CA by the
//! TLS layer; here: CN = a joined cluster whose current serial it carries). On connect the
//! hub sends the [`AgentConfig`], the current [`Jwks`] and the full [`Revocations`]; then it
//! forwards every change of the key manager's watch channel at once, and newly revoked
//! sessions as the shared [`super::revocations`] feed finds them. Heartbeats update the registry; a
//! [`RenewRequest`] gets a new certificate. [`Connections`] lets `RemoveCluster` close a
//! stream at once.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::Stream;
use tether_common::time::UnixTime;
use tether_proto::v1::control_server::Control;
use tether_proto::v1::{
    AgentConfig, AgentMessage, HubMessage, Jwks, RenewResponse, Revocations, RevokedSession,
    agent_message, hub_message,
};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status, Streaming};

use super::pki::peer_identity;
use super::revocations::RevokedSet;
use super::{GrpcError, GrpcState, METRIC_AGENTS_CONNECTED, METRIC_JWKS_PUSHES};
use crate::keys::KeyState;
use crate::registry::{AgentReport, ClusterName, ClusterState, audit_kind, cluster_audience};
use crate::store::{AuditOutcome, AuditRecord};

/// Messages buffered per stream before the sender waits.
const STREAM_BUFFER: usize = 32;

/// The live control streams, by cluster. A new stream of a cluster replaces (closes) the
/// previous one.
#[derive(Debug, Default)]
pub struct Connections {
    streams: Mutex<HashMap<ClusterName, (u64, oneshot::Sender<Status>)>>,
    next_id: AtomicU64,
}

impl Connections {
    /// Registers a stream of `name`; the receiver completes when it must close.
    fn register(&self, name: &ClusterName) -> (u64, oneshot::Receiver<Status>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let previous = self.lock().insert(name.clone(), (id, tx));
        if let Some((_, previous)) = previous {
            let _ = previous.send(Status::aborted(format!(
                "a newer control stream of cluster {name} replaced this one"
            )));
        }
        self.publish_gauge();
        (id, rx)
    }

    /// Forgets stream `id` of `name` (if it is still the registered one).
    fn unregister(&self, name: &ClusterName, id: u64) {
        let mut streams = self.lock();
        if streams.get(name).is_some_and(|(current, _)| *current == id) {
            streams.remove(name);
        }
        drop(streams);
        self.publish_gauge();
    }

    /// Closes the stream of `name`, if any; true if there was one.
    pub fn close(&self, name: &ClusterName) -> bool {
        let closed = self.lock().remove(name);
        self.publish_gauge();
        closed
            .map(|(_, tx)| {
                tx.send(Status::permission_denied(format!(
                    "cluster {name} was removed from the hub"
                )))
            })
            .is_some()
    }

    /// Closes every stream (shutdown: a graceful server stop waits for open streams).
    pub fn close_all(&self) {
        let streams = std::mem::take(&mut *self.lock());
        for (_, (_, tx)) in streams {
            let _ = tx.send(Status::unavailable("the hub is shutting down; reconnect"));
        }
        self.publish_gauge();
    }

    /// Whether `name` has a live stream.
    pub fn is_connected(&self, name: &ClusterName) -> bool {
        self.lock().contains_key(name)
    }

    /// How many streams are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no stream is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ClusterName, (u64, oneshot::Sender<Status>)>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_gauge(&self) {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!(METRIC_AGENTS_CONNECTED).set(self.len() as f64);
    }
}

/// The `Control` service.
#[derive(Debug, Clone)]
pub struct ControlService {
    state: GrpcState,
}

/// The stream of hub messages to one agent.
pub type HubStream = Pin<Box<dyn Stream<Item = Result<HubMessage, Status>> + Send>>;

impl ControlService {
    /// The service over `state`.
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }

    /// The cluster and serial of the client certificate, if it names a joined cluster
    /// whose current certificate it is.
    async fn authenticate(
        &self,
        peer_certs: Option<&[rustls_pki_types::CertificateDer<'static>]>,
    ) -> Result<(ClusterName, String), GrpcError> {
        let leaf = peer_certs.and_then(<[_]>::first).ok_or_else(|| {
            GrpcError::Unauthenticated(
                "the control stream needs the agent's client certificate (run `tether-agent join` first)"
                    .to_owned(),
            )
        })?;
        let (name, serial) = peer_identity(leaf).ok_or_else(|| {
            GrpcError::Unauthenticated("the client certificate does not name a cluster".to_owned())
        })?;
        let record = self.state.store().cluster_record(&name).await?;
        match record {
            Some(r)
                if r.state == ClusterState::Joined
                    && r.cert_serial.as_deref() == Some(serial.as_str()) =>
            {
                Ok((name, serial))
            }
            Some(r) if r.state == ClusterState::Joined => {
                Err(GrpcError::PermissionDenied(format!(
                    "this certificate of cluster {name} was replaced by a newer one; use the current identity or join again"
                )))
            }
            _ => Err(GrpcError::PermissionDenied(format!(
                "cluster {name} is not joined (removed, or never joined): add it again with `tetherctl cluster add {name}` and re-run the join"
            ))),
        }
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    type ConnectStream = HubStream;

    async fn connect(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let certs = request.peer_certs();
        let (name, serial) = self
            .authenticate(certs.as_deref().map(Vec::as_slice))
            .await
            .inspect_err(|err| tracing::warn!(reason = %err, "control stream refused"))?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let now = self.state.clock().now();
        let mut session = Session {
            state: self.state.clone(),
            name: name.clone(),
            serial,
            tx,
            sent: HashMap::new(),
            reported: None,
        };
        let mut keys = self.state.keys().subscribe();
        let current = keys.borrow_and_update().clone();
        let mut revocations = self.state.revocations();
        let revoked = revocations.borrow_and_update().clone();
        let opening = async {
            session
                .send(hub_message::Kind::Config(session.config()))
                .await?;
            session.send_jwks(&current).await?;
            session.send_revocations(&revoked, now, true).await
        };
        opening.await.map_err(Status::from)?;
        let (id, close) = self.state.connections().register(&name);
        tracing::info!(cluster = %name, "agent connected");
        tokio::spawn(async move {
            session.run(inbound, keys, revocations, close).await;
            session.state.connections().unregister(&session.name, id);
            tracing::info!(cluster = %session.name, "agent disconnected");
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One agent's stream.
struct Session {
    state: GrpcState,
    name: ClusterName,
    serial: String,
    tx: mpsc::Sender<Result<HubMessage, Status>>,
    /// Revoked session ids already sent, with when they stop mattering.
    sent: HashMap<String, UnixTime>,
    /// The proxy URL and CA of the last heartbeat (a change pokes the ArgoCD reconciler).
    reported: Option<(String, String)>,
}

/// The agent went away (its receiver is closed).
#[derive(Debug)]
struct Gone;

impl From<Gone> for GrpcError {
    fn from(_: Gone) -> Self {
        Self::FailedPrecondition("the stream closed".to_owned())
    }
}

impl Session {
    async fn run(
        &mut self,
        mut inbound: Streaming<AgentMessage>,
        mut keys: tokio::sync::watch::Receiver<std::sync::Arc<KeyState>>,
        mut revocations: tokio::sync::watch::Receiver<RevokedSet>,
        mut close: oneshot::Receiver<Status>,
    ) {
        loop {
            let step: Result<bool, GrpcError> = tokio::select! {
                status = &mut close => {
                    if let Ok(status) = status {
                        let _ = self.tx.send(Err(status)).await;
                    }
                    Ok(false)
                }
                changed = keys.changed() => match changed {
                    Ok(()) => {
                        let current = keys.borrow_and_update().clone();
                        self.send_jwks(&current).await.map(|()| true)
                    }
                    Err(_) => Ok(false),
                },
                changed = revocations.changed() => match changed {
                    Ok(()) => {
                        let revoked = revocations.borrow_and_update().clone();
                        let now = self.state.clock().now();
                        self.send_revocations(&revoked, now, false).await.map(|()| true)
                    }
                    Err(_) => Ok(false),
                },
                message = inbound.message() => match message {
                    Ok(Some(message)) => self.handle(message).await.map(|()| true),
                    Ok(None) => Ok(false),
                    Err(status) => {
                        tracing::debug!(cluster = %self.name, %status, "agent stream ended");
                        Ok(false)
                    }
                },
                () = self.tx.closed() => Ok(false),
            };
            match step {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) => {
                    let _ = self.tx.send(Err(Status::from(err))).await;
                    break;
                }
            }
        }
    }

    fn config(&self) -> AgentConfig {
        AgentConfig {
            issuer: self.state.issuer().as_str().to_owned(),
            audience: cluster_audience(&self.name),
            // Agents tolerate the same clock skew as the hub's own verifiers (`keys.clock_skew`).
            leeway_seconds: i64::try_from(self.state.keys().config().clock_skew.as_secs())
                .unwrap_or(30)
                .max(1),
        }
    }

    async fn send(&self, kind: hub_message::Kind) -> Result<(), GrpcError> {
        self.tx
            .send(Ok(HubMessage { kind: Some(kind) }))
            .await
            .map_err(|_| Gone.into())
    }

    async fn send_jwks(&self, keys: &KeyState) -> Result<(), GrpcError> {
        let json = serde_json::to_vec(keys.jwks.as_ref())
            .map_err(|err| GrpcError::Pki(format!("cannot serialize the JWKS: {err}")))?;
        self.send(hub_message::Kind::Jwks(Jwks {
            generation: keys.generation,
            jwks_json: json,
        }))
        .await?;
        metrics::counter!(METRIC_JWKS_PUSHES).increment(1);
        Ok(())
    }

    /// Sends revocations from `revoked`: all that matter at `now` (`full`), or those not
    /// sent to this agent yet.
    async fn send_revocations(
        &mut self,
        revoked: &RevokedSet,
        now: UnixTime,
        full: bool,
    ) -> Result<(), GrpcError> {
        self.sent.retain(|_, until| *until > now);
        let mut fresh = Vec::new();
        for session in revoked.iter().filter(|s| s.until > now) {
            let new = self
                .sent
                .insert(session.sid.clone(), session.until)
                .is_none();
            if new || full {
                fresh.push(RevokedSession {
                    sid: session.sid.clone(),
                    until: session.until.as_secs(),
                });
            }
        }
        if full || !fresh.is_empty() {
            self.send(hub_message::Kind::Revocations(Revocations {
                sessions: fresh,
                full,
            }))
            .await?;
        }
        Ok(())
    }

    async fn handle(&mut self, message: AgentMessage) -> Result<(), GrpcError> {
        let now = self.state.clock().now();
        match message.kind {
            Some(agent_message::Kind::Heartbeat(beat)) => {
                let report = AgentReport {
                    agent_version: beat.agent_version.chars().take(64).collect(),
                    proxy_url: beat.proxy_url.chars().take(2048).collect(),
                    proxy_ca_pem: beat.proxy_ca_pem.chars().take(16 * 1024).collect(),
                };
                if !self
                    .state
                    .store()
                    .record_heartbeat(&self.name, &report, now)
                    .await?
                {
                    return Err(GrpcError::PermissionDenied(format!(
                        "cluster {} is no longer joined",
                        self.name
                    )));
                }
                let proxy = (report.proxy_url, report.proxy_ca_pem);
                if self.reported.as_ref() != Some(&proxy) {
                    self.reported = Some(proxy);
                    self.state.argocd().poke();
                }
                Ok(())
            }
            Some(agent_message::Kind::Renew(renew)) => {
                let issued = self.state.pki().sign_csr(&renew.csr_pem, &self.name, now)?;
                let renewed = self
                    .state
                    .store()
                    .renew_cluster_cert(
                        &self.name,
                        &self.serial,
                        &issued.serial,
                        issued.not_after,
                        now,
                    )
                    .await?;
                if !renewed {
                    return Err(GrpcError::PermissionDenied(format!(
                        "cluster {} is no longer joined with this certificate",
                        self.name
                    )));
                }
                let audit = AuditRecord::new(
                    now.as_secs(),
                    audit_kind::CLUSTER_RENEWED,
                    format!("cluster:{}", self.name),
                    AuditOutcome::Success,
                )
                .with_subject(self.name.to_string())
                .with_details(serde_json::json!({
                    "old_serial": self.serial,
                    "serial": issued.serial,
                    "not_after": issued.not_after.as_secs(),
                }));
                if let Err(err) = self.state.store().append_audit(&audit).await {
                    tracing::error!(error = %err, cluster = %self.name, "cannot audit a renewal");
                }
                self.serial = issued.serial;
                self.send(hub_message::Kind::Renewed(RenewResponse {
                    certificate_pem: issued.pem,
                    not_after: issued.not_after.as_secs(),
                }))
                .await
            }
            None => Ok(()),
        }
    }
}
