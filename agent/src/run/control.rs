//! One agent: its identity, state, and the loop that keeps a `Control.Connect` stream up.

use std::sync::Arc;
use std::time::Duration;

use tether_common::time::Clock;
use tether_common::token::{Jwks, KeySet, Verifier, VerifyOptions};
use tether_proto::v1::control_client::ControlClient;
use tether_proto::v1::{
    AgentConfig, AgentMessage, Heartbeat, HubMessage, RenewRequest, RenewResponse, agent_message,
    hub_message,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::backoff::{Backoff, random_jitter};
use super::jwks_store::{StateDir, Status, StoredJwks};
use super::{HEARTBEAT_INTERVAL, Published, RevocationList};
use crate::error::{Error, Result};
use crate::identity::{Identity, IdentityStore};
use crate::join::csr;
use crate::tls::{self, HubAddr};

/// A session that lasted this long resets the backoff even if it ended in an error.
const STABLE_SESSION: Duration = Duration::from_secs(30);

/// The control-loop agent.
#[derive(Debug)]
pub struct Agent {
    store: IdentityStore,
    identity: Identity,
    state: StateDir,
    clock: Arc<dyn Clock>,
    heartbeat: Duration,
    stored: Option<StoredJwks>,
    config: Option<AgentConfig>,
    revocations: RevocationList,
    status: Status,
    pending_key: Option<String>,
    tx_verifier: watch::Sender<Option<Arc<Verifier>>>,
    tx_revocations: watch::Sender<Arc<RevocationList>>,
    tx_status: watch::Sender<Status>,
    proxy_url: String,
    proxy_ca_pem: String,
}

impl Agent {
    /// Loads the identity from `store` and the last JWKS from `state`, and publishes it.
    pub async fn new(
        store: IdentityStore,
        state: StateDir,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, Published)> {
        let identity = store.load().await?;
        HubAddr::parse(&identity.hub_url)?;
        let (tx_verifier, verifier) = watch::channel(None);
        let (tx_revocations, revocations) = watch::channel(Arc::new(RevocationList::default()));
        let (tx_status, status) = watch::channel(Status::default());
        let stored = match state.load_jwks() {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the stored JWKS");
                None
            }
        };
        let mut agent = Self {
            store,
            identity,
            state,
            clock,
            heartbeat: HEARTBEAT_INTERVAL,
            stored,
            config: None,
            revocations: RevocationList::default(),
            status: Status::default(),
            pending_key: None,
            tx_verifier,
            tx_revocations,
            tx_status,
            proxy_url: String::new(),
            proxy_ca_pem: String::new(),
        };
        if let Some(s) = &agent.stored {
            tracing::info!(generation = s.generation, "loaded the stored JWKS");
        }
        agent.publish_verifier();
        agent.publish_status();
        Ok((
            agent,
            Published {
                verifier,
                revocations,
                status,
            },
        ))
    }

    /// Changes the heartbeat interval (tests).
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Sets what heartbeats report about the proxy: its URL and the CA (PEM) that signed
    /// its certificate, for the hub to list.
    pub fn with_proxy(mut self, url: impl Into<String>, ca_pem: impl Into<String>) -> Self {
        self.proxy_url = url.into();
        self.proxy_ca_pem = ca_pem.into();
        self
    }

    /// The current identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Keeps a control stream up until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Backoff::default();
        loop {
            let started = tokio::time::Instant::now();
            let result = tokio::select! {
                r = self.session() => r,
                () = &mut shutdown => return,
            };
            let was_connected = self.status.connected;
            self.set_connected(false);
            self.pending_key = None;
            match result {
                Ok(()) => tracing::info!("hub closed the control stream"),
                Err(e) => tracing::warn!(error = %e, "control stream failed"),
            }
            if was_connected || started.elapsed() >= STABLE_SESSION {
                backoff.reset();
            }
            let delay = backoff.next_delay(random_jitter());
            tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// One connection: returns when the stream ends.
    async fn session(&mut self) -> Result<()> {
        let hub = HubAddr::parse(&self.identity.hub_url)?;
        let config = tls::mtls_config(
            &self.identity.hub_ca_pem,
            &self.identity.cert_pem,
            &self.identity.key_pem,
        )?;
        let mut client = ControlClient::new(hub.channel(config)?);
        let (tx, rx) = mpsc::channel::<AgentMessage>(16);
        tx.send(self.heartbeat_message())
            .await
            .map_err(|_| closed())?;
        let mut inbound = client.connect(ReceiverStream::new(rx)).await?.into_inner();
        tracing::info!(hub = hub.url(), cluster = %self.identity.cluster, "connected to the hub");
        self.set_connected(true);

        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let renew_in = self.renew_in();
            tokio::select! {
                _ = tick.tick() => {
                    tx.send(self.heartbeat_message()).await.map_err(|_| closed())?;
                }
                () = tokio::time::sleep(renew_in), if self.pending_key.is_none() => {
                    let request = self.start_renewal()?;
                    tx.send(request).await.map_err(|_| closed())?;
                }
                message = inbound.message() => match message? {
                    Some(message) => self.handle(message).await?,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Applies one message from the hub.
    pub async fn handle(&mut self, message: HubMessage) -> Result<()> {
        let now = self.clock.now();
        match message.kind {
            Some(hub_message::Kind::Jwks(jwks)) => {
                let parsed: Jwks = serde_json::from_slice(&jwks.jwks_json)?;
                let (issuer, audience, leeway) = self.verify_settings();
                let stored = StoredJwks {
                    generation: jwks.generation,
                    jwks: parsed,
                    issuer,
                    audience,
                    leeway_seconds: leeway,
                };
                if let Err(e) = self.state.save_jwks(&stored) {
                    tracing::warn!(error = %e, "could not store the JWKS");
                }
                self.stored = Some(stored);
                self.publish_verifier();
            }
            Some(hub_message::Kind::Revocations(push)) => {
                self.revocations.apply(&push, now);
                tracing::info!(
                    full = push.full,
                    count = push.sessions.len(),
                    in_force = self.revocations.sids().len(),
                    "revocations updated"
                );
                self.tx_revocations
                    .send_replace(Arc::new(self.revocations.clone()));
            }
            Some(hub_message::Kind::Config(config)) => {
                tracing::info!(issuer = %config.issuer, audience = %config.audience, "configuration received");
                self.config = Some(config);
                let (issuer, audience, leeway) = self.verify_settings();
                if let Some(stored) = &mut self.stored {
                    stored.issuer = issuer;
                    stored.audience = audience;
                    stored.leeway_seconds = leeway;
                    if let Err(e) = self.state.save_jwks(stored) {
                        tracing::warn!(error = %e, "could not store the JWKS");
                    }
                }
                self.publish_verifier();
            }
            Some(hub_message::Kind::Renewed(renewed)) => self.finish_renewal(renewed).await?,
            None => {}
        }
        self.publish_status();
        Ok(())
    }

    /// Issuer, audience and leeway: the hub's config, else what `join` stored, else the
    /// stored JWKS's.
    fn verify_settings(&self) -> (String, String, i64) {
        let stored = self.stored.as_ref();
        let pick = |a: Option<&str>, b: &str, c: Option<&str>| {
            a.filter(|s| !s.is_empty())
                .or(Some(b).filter(|s| !s.is_empty()))
                .or(c)
                .unwrap_or_default()
                .to_owned()
        };
        let issuer = pick(
            self.config.as_ref().map(|c| c.issuer.as_str()),
            &self.identity.issuer,
            stored.map(|s| s.issuer.as_str()),
        );
        let audience = pick(
            self.config.as_ref().map(|c| c.audience.as_str()),
            &self.identity.audience,
            stored.map(|s| s.audience.as_str()),
        );
        let leeway = self
            .config
            .as_ref()
            .map(|c| c.leeway_seconds)
            .filter(|l| *l > 0)
            .or(stored.map(|s| s.leeway_seconds).filter(|l| *l > 0))
            .unwrap_or(30);
        (issuer, audience, leeway)
    }

    fn publish_verifier(&mut self) {
        let Some(stored) = &self.stored else {
            return;
        };
        let (issuer, audience, leeway) = self.verify_settings();
        let keys = KeySet::from_jwks(&stored.jwks);
        for rejected in keys.rejected() {
            tracing::warn!(kid = ?rejected.kid, reason = %rejected.reason, "JWK left out");
        }
        let mut kids: Vec<String> = keys.kids().map(|k| k.as_str().to_owned()).collect();
        kids.sort();
        tracing::info!(generation = stored.generation, ?kids, "JWKS in use");
        self.status.jwks_generation = stored.generation;
        self.status.kids = kids;
        if issuer.is_empty() || audience.is_empty() {
            tracing::warn!(
                "issuer or audience not known yet: no token verifies until the hub sends its configuration"
            );
            self.tx_verifier.send_replace(None);
            return;
        }
        let mut opts = VerifyOptions::new(issuer, audience);
        opts.leeway = Duration::from_secs(u64::try_from(leeway).unwrap_or(30));
        self.tx_verifier
            .send_replace(Some(Arc::new(Verifier::new(keys, opts))));
    }

    fn publish_status(&mut self) {
        self.revocations.prune(self.clock.now());
        self.status.revoked_sids = self.revocations.sids();
        if *self.tx_status.borrow() != self.status {
            if let Err(e) = self.state.save_status(&self.status) {
                tracing::warn!(error = %e, "could not write status.json");
            }
            self.tx_status.send_replace(self.status.clone());
        } else if !self
            .state
            .path()
            .join(super::jwks_store::STATUS_FILE)
            .exists()
        {
            let _ = self.state.save_status(&self.status);
        }
    }

    fn set_connected(&mut self, connected: bool) {
        if self.status.connected != connected {
            if !connected {
                tracing::info!("disconnected from the hub");
            }
            self.status.connected = connected;
            self.publish_status();
        }
    }

    fn heartbeat_message(&self) -> AgentMessage {
        AgentMessage {
            kind: Some(agent_message::Kind::Heartbeat(Heartbeat {
                agent_version: crate::VERSION.to_owned(),
                health: "ok".to_owned(),
                proxy_url: self.proxy_url.clone(),
                proxy_ca_pem: self.proxy_ca_pem.clone(),
                jwks_generation: self.status.jwks_generation,
            })),
        }
    }

    /// Time until the certificate should be renewed (zero when due or unreadable).
    fn renew_in(&self) -> Duration {
        match tls::validity(&self.identity.cert_pem) {
            Ok((not_before, not_after)) => {
                let at = renew_at(not_before, not_after);
                let now = self.clock.now().as_secs();
                Duration::from_secs(u64::try_from(at - now).unwrap_or(0))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the agent certificate; renewing");
                Duration::ZERO
            }
        }
    }

    fn start_renewal(&mut self) -> Result<AgentMessage> {
        let fresh = csr::generate(&self.identity.cluster)?;
        tracing::info!("renewing the agent certificate");
        self.pending_key = Some(fresh.key_pem);
        Ok(AgentMessage {
            kind: Some(agent_message::Kind::Renew(RenewRequest {
                csr_pem: fresh.csr_pem,
            })),
        })
    }

    async fn finish_renewal(&mut self, renewed: RenewResponse) -> Result<()> {
        let Some(key_pem) = self.pending_key.take() else {
            tracing::warn!("ignoring a certificate the agent did not ask for");
            return Ok(());
        };
        let mut next = self.identity.clone();
        next.cert_pem = renewed.certificate_pem;
        next.key_pem = key_pem;
        // Refuse a certificate that does not fit the key or the hub CA config.
        tls::mtls_config(&next.hub_ca_pem, &next.cert_pem, &next.key_pem)?;
        self.store.save(&next).await?;
        self.identity = next;
        tracing::info!(not_after = renewed.not_after, "agent certificate renewed");
        Ok(())
    }
}

/// 2/3 of the way from `not_before` to `not_after`.
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    not_before + (not_after - not_before).max(0) * 2 / 3
}

fn closed() -> Error {
    Error::Control("the hub closed the control stream".to_owned())
}
