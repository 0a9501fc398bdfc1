//! [`KeyManager`]: applies the key lifecycle in the store and publishes [`KeyState`].
//!
//! Every change runs as ONE store transaction guarded by compare-and-set on the key epoch
//! ([`Store::apply_key_changes`]): when several hub replicas find the same rotation due,
//! exactly one performs it; the others see the epoch moved, reload and find nothing due.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tether_common::time::{Clock, UnixTime};
use tether_common::token::{Algorithm, KeyId, SigningKey};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::lifecycle::{self, KeyMeta, Plan, Policy, Reason, Step};
use super::{
    Kek, KeyError, KeyState, KeysConfig, METRIC_KEY_ROTATIONS, METRIC_KEYS_PUBLISHED,
    METRIC_TOKENS_MINTED, audit_kind,
};
use crate::store::{AuditOutcome, AuditRecord, KeyChange, KeyRow, KeySnapshot, KeyStatus, Store};

/// How many times a change is re-planned after losing a race before giving up.
const MAX_ATTEMPTS: u32 = 8;
/// The audit actor for transitions the hub performs on its own.
const SYSTEM_ACTOR: &str = "system";

/// Something this manager changed in the key table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    /// The first keys were created.
    Bootstrapped {
        /// The signing key.
        current: KeyId,
        /// The upcoming key.
        next: KeyId,
    },
    /// A scheduled rotation.
    Rotated {
        /// Now `previous`.
        from: KeyId,
        /// Now `current`.
        to: KeyId,
        /// The new `next`.
        next: KeyId,
    },
    /// An emergency rotation: `dropped` left the JWKS at once.
    EmergencyRotated {
        /// Now `retired`.
        dropped: KeyId,
        /// Now `current`.
        to: KeyId,
        /// The new `next`.
        next: KeyId,
    },
    /// A `previous` key left the JWKS.
    Retired {
        /// The key.
        kid: KeyId,
    },
    /// A missing `current` or `next` key was (re)created.
    Repaired {
        /// Which state was missing.
        missing: KeyStatus,
    },
}

/// Owns the signing keys of this hub process. Cheap to clone.
#[derive(Clone)]
pub struct KeyManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: KeysConfig,
    policy: Policy,
    kek: Kek,
    clock: Arc<dyn Clock>,
    state: watch::Sender<Arc<KeyState>>,
    /// Unix time of the last successful read of the key table (see [`KeyError::Stale`]).
    refreshed_at: AtomicI64,
    /// Serializes this process's writers; other processes are fenced by the key epoch.
    write: Mutex<()>,
}

impl KeyManager {
    /// Loads the KEK from `config.kek_file`, loads (or bootstraps) the keys, performs any due
    /// transition, and spawns the loop that repeats this every `refresh_interval`. The loop
    /// ends when the last `KeyManager` clone is dropped (or when the handle is aborted).
    pub async fn spawn(
        store: Store,
        config: KeysConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, JoinHandle<()>), KeyError> {
        let kek = Kek::load(&config.kek_file)?;
        Self::spawn_with_kek(store, config, kek, clock).await
    }

    /// [`KeyManager::spawn`] with a KEK already in hand.
    pub async fn spawn_with_kek(
        store: Store,
        config: KeysConfig,
        kek: Kek,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, JoinHandle<()>), KeyError> {
        let manager = Self::start(store, config, kek, clock).await?;
        let handle = tokio::spawn(refresh_loop(
            Arc::downgrade(&manager.inner),
            manager.inner.config.refresh_interval,
        ));
        Ok((manager, handle))
    }

    /// Loads (or bootstraps) the keys and performs due transitions, without a refresh loop.
    /// Tests drive it with [`KeyManager::rotate_scheduled_if_due`].
    pub async fn start(
        store: Store,
        config: KeysConfig,
        kek: Kek,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, KeyError> {
        config.validate()?;
        let policy = Policy {
            rotation_interval: config.rotation_interval,
            publish_lead: config.publish_lead,
            retire_margin: config.retire_margin(),
        };
        let now = clock.now();
        let (events, snapshot) =
            reconcile(&store, &kek, config.algorithm, &policy, now, Mode::Due).await?;
        let state = Arc::new(KeyState::build(&snapshot, &kek, None)?);
        let inner = Inner {
            store,
            config,
            policy,
            kek,
            clock,
            state: watch::Sender::new(Arc::clone(&state)),
            refreshed_at: AtomicI64::new(now.as_secs()),
            write: Mutex::new(()),
        };
        record_events(&events);
        metrics::gauge!(METRIC_KEYS_PUBLISHED).set(state.jwks.keys.len() as f64);
        tracing::info!(generation = state.generation, current = %state.signer.kid(), published = state.jwks.keys.len(), "signing keys loaded");
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// A receiver of every published [`KeyState`] (for the JWKS endpoint and agent push).
    pub fn subscribe(&self) -> watch::Receiver<Arc<KeyState>> {
        self.inner.state.subscribe()
    }

    /// The state published now.
    pub fn current(&self) -> Arc<KeyState> {
        Arc::clone(&self.inner.state.borrow())
    }

    /// The settings this manager runs with.
    pub fn config(&self) -> &KeysConfig {
        &self.inner.config
    }

    /// Signs `claims` with the current key and counts it under `kind`.
    ///
    /// `claims` must serialize to a JSON object with an integer `exp` no later than
    /// `now + max_token_lifetime`: keys stay published for exactly that long after they
    /// stop signing, so a longer-lived token would outlive its key. Refuses to sign when this
    /// replica's keys are older than [`KeysConfig::max_staleness`] ([`KeyError::Stale`]).
    pub fn sign<C: Serialize>(&self, claims: &C, kind: &'static str) -> Result<String, KeyError> {
        let now = self.inner.clock.now();
        let refreshed_at = self.inner.refreshed_at.load(Ordering::Acquire);
        if UnixTime::from_secs(refreshed_at).saturating_add(self.inner.config.max_staleness()) < now
        {
            return Err(KeyError::Stale { refreshed_at });
        }
        let value = serde_json::to_value(claims)
            .map_err(|e| KeyError::Sign(tether_common::token::KeyError::Serialize(e)))?;
        let exp = value
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .ok_or(KeyError::MissingExpiry)?;
        let limit = now
            .saturating_add(self.inner.config.max_token_lifetime)
            .as_secs();
        if exp > limit {
            return Err(KeyError::LifetimeTooLong { exp, limit });
        }
        let state = self.current();
        let token = state.signer.sign(&value).map_err(KeyError::Sign)?;
        metrics::counter!(METRIC_TOKENS_MINTED, "kind" => kind).increment(1);
        Ok(token)
    }

    /// Re-reads the key table and publishes it if it changed (no transitions).
    pub async fn refresh(&self) -> Result<Arc<KeyState>, KeyError> {
        let _writer = self.inner.write.lock().await;
        let now = self.inner.clock.now();
        let snapshot = self.inner.store.load_keys().await?;
        let state = self.publish(&snapshot)?;
        self.mark_refreshed(now);
        Ok(state)
    }

    /// Performs whatever is due at `now` (a scheduled rotation, retirements, bootstrap or
    /// repair) and publishes the result. Returns what THIS call changed: empty if nothing
    /// was due or another replica did it first.
    pub async fn rotate_scheduled_if_due(&self, now: UnixTime) -> Result<Vec<KeyEvent>, KeyError> {
        let inner = &self.inner;
        let _writer = inner.write.lock().await;
        let span = tracing::debug_span!("key_reconcile", now = now.as_secs());
        let (events, snapshot) = reconcile(
            &inner.store,
            &inner.kek,
            inner.config.algorithm,
            &inner.policy,
            now,
            Mode::Due,
        )
        .instrument(span)
        .await?;
        record_events(&events);
        self.publish(&snapshot)?;
        self.mark_refreshed(now);
        Ok(events)
    }

    /// Drops the `current` key at once (it leaves the JWKS now; tokens it signed stop
    /// verifying), promotes `next` and creates a new `next`. Audited with `actor`.
    ///
    /// If another replica already dropped the key that was current when this call started,
    /// nothing more is dropped and the result is empty.
    pub async fn rotate_emergency(
        &self,
        now: UnixTime,
        actor: &str,
    ) -> Result<Vec<KeyEvent>, KeyError> {
        let inner = &self.inner;
        let _writer = inner.write.lock().await;
        let span = tracing::warn_span!("key_emergency_rotation", actor);
        let (events, snapshot) = reconcile(
            &inner.store,
            &inner.kek,
            inner.config.algorithm,
            &inner.policy,
            now,
            Mode::Emergency {
                actor: actor.to_owned(),
                target: None,
            },
        )
        .instrument(span)
        .await?;
        record_events(&events);
        self.publish(&snapshot)?;
        self.mark_refreshed(now);
        Ok(events)
    }

    /// Records a successful read of the key table at `now` (never moves backwards).
    fn mark_refreshed(&self, now: UnixTime) {
        self.inner
            .refreshed_at
            .fetch_max(now.as_secs(), Ordering::AcqRel);
    }

    /// Publishes `snapshot` unless the published state is as new or newer.
    fn publish(&self, snapshot: &KeySnapshot) -> Result<Arc<KeyState>, KeyError> {
        let published = self.current();
        if snapshot.generation <= published.generation {
            return Ok(published);
        }
        let state = Arc::new(KeyState::build(
            snapshot,
            &self.inner.kek,
            Some(&published),
        )?);
        let fresh = Arc::clone(&state);
        self.inner.state.send_if_modified(move |slot| {
            if fresh.generation > slot.generation {
                *slot = fresh;
                true
            } else {
                false
            }
        });
        metrics::gauge!(METRIC_KEYS_PUBLISHED).set(state.jwks.keys.len() as f64);
        tracing::info!(generation = state.generation, current = %state.signer.kid(), published = state.jwks.keys.len(), "signing keys published");
        Ok(state)
    }
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.current();
        f.debug_struct("KeyManager")
            .field("generation", &state.generation)
            .field("current", state.signer.kid())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

async fn refresh_loop(inner: std::sync::Weak<Inner>, period: Duration) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let manager = KeyManager { inner };
        let now = manager.inner.clock.now();
        if let Err(error) = manager.rotate_scheduled_if_due(now).await {
            tracing::warn!(error = %error_chain(&error), "signing key refresh failed; keeping the published keys");
        }
    }
}

enum Mode {
    /// Whatever [`lifecycle::plan_due`] finds.
    Due,
    /// Drop the current key; `target` pins it after the first attempt.
    Emergency {
        actor: String,
        target: Option<String>,
    },
}

/// Plans against the store, applies under compare-and-set, re-plans on a lost race.
/// Returns what was applied and the snapshot after it.
async fn reconcile(
    store: &Store,
    kek: &Kek,
    alg: Algorithm,
    policy: &Policy,
    now: UnixTime,
    mut mode: Mode,
) -> Result<(Vec<KeyEvent>, KeySnapshot), KeyError> {
    for attempt in 1..=MAX_ATTEMPTS {
        let snapshot = store.load_keys().await?;
        let metas: Vec<KeyMeta> = snapshot.keys.iter().map(KeyMeta::from).collect();
        let (plan, actor) = match &mut mode {
            Mode::Due => (
                lifecycle::plan_due(&metas, now, policy),
                SYSTEM_ACTOR.to_owned(),
            ),
            Mode::Emergency { actor, target } => {
                let current =
                    lifecycle::find(&metas, KeyStatus::Current).ok_or(KeyError::NoCurrentKey)?;
                match target {
                    // Someone else already dropped the key we were asked to drop.
                    Some(kid) if *kid != current.kid => return Ok((Vec::new(), snapshot)),
                    _ => *target = Some(current.kid.clone()),
                }
                (
                    lifecycle::plan_emergency(&metas).ok_or(KeyError::NoCurrentKey)?,
                    actor.clone(),
                )
            }
        };
        if plan.is_empty() {
            return Ok((Vec::new(), snapshot));
        }
        let (changes, events) = materialize(&plan, kek, alg, now).await?;
        let audit: Vec<AuditRecord> = events
            .iter()
            .map(|e| audit_record(e, now, &actor, snapshot.generation + 1))
            .collect();
        match store
            .apply_key_changes(snapshot.generation, &changes, &audit)
            .await?
        {
            Some(generation) => {
                tracing::info!(generation, events = ?events, "signing keys changed");
                let after = store.load_keys().await?;
                return Ok((events, after));
            }
            None => tracing::debug!(
                attempt,
                seen = snapshot.generation,
                "another writer changed the signing keys first; re-planning"
            ),
        }
    }
    Err(KeyError::Contention {
        attempts: MAX_ATTEMPTS,
    })
}

/// Generates and encrypts the keys a plan needs; turns steps into store changes and
/// reasons into events naming real key ids.
async fn materialize(
    plan: &Plan,
    kek: &Kek,
    alg: Algorithm,
    now: UnixTime,
) -> Result<(Vec<KeyChange>, Vec<KeyEvent>), KeyError> {
    let at = now.as_secs();
    let mut changes = Vec::with_capacity(plan.steps.len());
    let (mut new_current, mut new_next) = (None, None);
    for step in &plan.steps {
        changes.push(match step {
            Step::Generate(status) => {
                let key = tokio::task::spawn_blocking(move || SigningKey::generate(alg))
                    .await
                    .map_err(KeyError::Task)?
                    .map_err(KeyError::Generate)?;
                let row = new_row(&key, *status, now, kek)?;
                match status {
                    KeyStatus::Current => new_current = Some(key.kid().clone()),
                    _ => new_next = Some(key.kid().clone()),
                }
                KeyChange::Insert(row)
            }
            Step::Activate { kid } => KeyChange::Activate {
                kid: kid.clone(),
                at,
            },
            Step::Demote { kid, retire_after } => KeyChange::Demote {
                kid: kid.clone(),
                at,
                retire_after: retire_after.as_secs(),
            },
            Step::Retire { kid, from } => KeyChange::Retire {
                kid: kid.clone(),
                from: *from,
                at,
            },
        });
    }
    let next = || new_next.clone().unwrap_or_else(|| KeyId::new(""));
    let events = plan
        .reasons
        .iter()
        .map(|reason| match reason {
            Reason::Bootstrap => KeyEvent::Bootstrapped {
                current: new_current.clone().unwrap_or_else(|| KeyId::new("")),
                next: next(),
            },
            Reason::Scheduled { from, to } => KeyEvent::Rotated {
                from: KeyId::new(from.clone()),
                to: KeyId::new(to.clone()),
                next: next(),
            },
            Reason::Emergency { dropped, promoted } => KeyEvent::EmergencyRotated {
                dropped: KeyId::new(dropped.clone()),
                to: promoted
                    .clone()
                    .map(KeyId::new)
                    .or_else(|| new_current.clone())
                    .unwrap_or_else(|| KeyId::new("")),
                next: next(),
            },
            Reason::Retirement { kid } => KeyEvent::Retired {
                kid: KeyId::new(kid.clone()),
            },
            Reason::Repair { missing } => KeyEvent::Repaired { missing: *missing },
        })
        .collect();
    Ok((changes, events))
}

fn new_row(
    key: &SigningKey,
    status: KeyStatus,
    now: UnixTime,
    kek: &Kek,
) -> Result<KeyRow, KeyError> {
    let kid = key.kid().as_str().to_owned();
    let alg = key.alg().as_str().to_owned();
    let public_jwk = serde_json::to_string(&key.public_jwk())
        .map_err(|e| KeyError::Generate(tether_common::token::KeyError::Serialize(e)))?;
    let (private_key_ciphertext, nonce) = kek.seal(&kid, &alg, key.dangerous_pkcs8_der())?;
    Ok(KeyRow {
        kid,
        alg,
        status,
        created_at: now.as_secs(),
        activated_at: (status == KeyStatus::Current).then_some(now.as_secs()),
        deactivated_at: None,
        retire_after: None,
        public_jwk,
        private_key_ciphertext,
        nonce,
    })
}

fn audit_record(event: &KeyEvent, now: UnixTime, actor: &str, generation: i64) -> AuditRecord {
    let (kind, subject, details) = match event {
        KeyEvent::Bootstrapped { current, next } => (
            audit_kind::BOOTSTRAP,
            current,
            serde_json::json!({"current": current, "next": next}),
        ),
        KeyEvent::Rotated { from, to, next } => (
            audit_kind::ROTATION,
            from,
            serde_json::json!({"from": from, "to": to, "next": next}),
        ),
        KeyEvent::EmergencyRotated { dropped, to, next } => (
            audit_kind::EMERGENCY_ROTATION,
            dropped,
            serde_json::json!({"dropped": dropped, "to": to, "next": next}),
        ),
        KeyEvent::Retired { kid } => (audit_kind::RETIREMENT, kid, serde_json::json!({})),
        KeyEvent::Repaired { missing } => {
            return AuditRecord::new(
                now.as_secs(),
                audit_kind::REPAIR,
                actor,
                AuditOutcome::Success,
            )
            .with_reason(format!("no {missing} key"))
            .with_details(serde_json::json!({"generation": generation}));
        }
    };
    let mut details = details;
    if let Some(map) = details.as_object_mut() {
        map.insert("generation".to_owned(), generation.into());
    }
    AuditRecord::new(now.as_secs(), kind, actor, AuditOutcome::Success)
        .with_subject(subject.as_str())
        .with_details(details)
}

fn record_events(events: &[KeyEvent]) {
    for event in events {
        match event {
            KeyEvent::Rotated { from, to, .. } => {
                metrics::counter!(METRIC_KEY_ROTATIONS, "kind" => "scheduled").increment(1);
                tracing::info!(from = %from, to = %to, "scheduled signing key rotation");
            }
            KeyEvent::EmergencyRotated { dropped, to, .. } => {
                metrics::counter!(METRIC_KEY_ROTATIONS, "kind" => "emergency").increment(1);
                tracing::warn!(dropped = %dropped, to = %to, "emergency signing key rotation");
            }
            KeyEvent::Bootstrapped { current, next } => {
                tracing::info!(current = %current, next = %next, "signing keys bootstrapped")
            }
            KeyEvent::Retired { kid } => tracing::info!(kid = %kid, "signing key retired"),
            KeyEvent::Repaired { missing } => {
                tracing::warn!(missing = %missing, "signing key table repaired")
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
