//! The key lifecycle as pure functions: given the key table and `now`, which steps are due.
//!
//! `next -> current -> previous -> retired`:
//! - bootstrap (no keys): a `current` and a `next`;
//! - scheduled rotation, when `current` has signed for `rotation_interval` AND `next` has
//!   been published for `publish_lead`: current -> previous (published until
//!   `now + retire_margin`), next -> current, a new next;
//! - a `previous` whose `retire_after` has passed -> retired;
//! - emergency: current -> retired at once, next -> current, a new next.
//!
//! [`super::KeyManager`] applies a [`Plan`] in one store transaction.

use std::time::Duration;

use tether_common::time::UnixTime;

use crate::store::{KeyRow, KeyStatus};

/// What the lifecycle needs to know about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    /// Key id.
    pub kid: String,
    /// State.
    pub status: KeyStatus,
    /// Generated (and published) at.
    pub created_at: UnixTime,
    /// Became `current` at.
    pub activated_at: Option<UnixTime>,
    /// Stopped signing at.
    pub deactivated_at: Option<UnixTime>,
    /// A `previous` key may be retired from then on.
    pub retire_after: Option<UnixTime>,
}

impl From<&KeyRow> for KeyMeta {
    fn from(row: &KeyRow) -> Self {
        Self {
            kid: row.kid.clone(),
            status: row.status,
            created_at: UnixTime::from_secs(row.created_at),
            activated_at: row.activated_at.map(UnixTime::from_secs),
            deactivated_at: row.deactivated_at.map(UnixTime::from_secs),
            retire_after: row.retire_after.map(UnixTime::from_secs),
        }
    }
}

/// The timing rules, derived from [`super::KeysConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a key signs.
    pub rotation_interval: Duration,
    /// How long a `next` key is published before it may sign.
    pub publish_lead: Duration,
    /// How long a key stays published after it stops signing.
    pub retire_margin: Duration,
}

/// One change to the key table, in the order it must be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Generate a new key and store it in this state (`current` only at bootstrap).
    Generate(KeyStatus),
    /// `next` -> `current`.
    Activate {
        /// The key.
        kid: String,
    },
    /// `current` -> `previous`, published until `retire_after`.
    Demote {
        /// The key.
        kid: String,
        /// When it may be retired.
        retire_after: UnixTime,
    },
    /// `from` -> `retired`, private key wiped.
    Retire {
        /// The key.
        kid: String,
        /// Its state now (`previous`, or `current` in an emergency).
        from: KeyStatus,
    },
}

/// Why a plan exists (one per audit record and metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The table was empty.
    Bootstrap,
    /// `current` served its `rotation_interval`.
    Scheduled {
        /// The key that stops signing.
        from: String,
        /// The key that starts signing.
        to: String,
    },
    /// An operator dropped a compromised key.
    Emergency {
        /// The dropped key.
        dropped: String,
        /// The `next` key that starts signing; `None` when there was none and a fresh
        /// `current` is generated instead.
        promoted: Option<String>,
    },
    /// A `previous` key outlived every token it signed.
    Retirement {
        /// The retired key.
        kid: String,
    },
    /// The table lacked a `current` or a `next` key (e.g. after manual edits).
    Repair {
        /// What was missing.
        missing: KeyStatus,
    },
}

/// The steps due at one instant, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps, in application order.
    pub steps: Vec<Step>,
    /// Reasons, for audit, metrics and logs.
    pub reasons: Vec<Reason>,
}

impl Plan {
    /// True if nothing is due.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Everything due at `now`: bootstrap or repair, retirements, a scheduled rotation.
pub fn plan_due(keys: &[KeyMeta], now: UnixTime, policy: &Policy) -> Plan {
    let mut plan = Plan::default();
    for key in keys.iter().filter(|k| k.status == KeyStatus::Previous) {
        // A previous key without retire_after (never written by the hub) keeps the margin
        // from when it stopped signing.
        let retire_after = key.retire_after.unwrap_or_else(|| {
            key.deactivated_at
                .unwrap_or(now)
                .saturating_add(policy.retire_margin)
        });
        if retire_after <= now {
            plan.steps.push(Step::Retire {
                kid: key.kid.clone(),
                from: KeyStatus::Previous,
            });
            plan.reasons.push(Reason::Retirement {
                kid: key.kid.clone(),
            });
        }
    }
    let current = find(keys, KeyStatus::Current);
    let next = find(keys, KeyStatus::Next);
    match (current, next) {
        (None, None) => {
            plan.steps.extend([
                Step::Generate(KeyStatus::Current),
                Step::Generate(KeyStatus::Next),
            ]);
            plan.reasons.push(Reason::Bootstrap);
        }
        (None, Some(next)) => {
            plan.steps.extend([
                Step::Activate {
                    kid: next.kid.clone(),
                },
                Step::Generate(KeyStatus::Next),
            ]);
            plan.reasons.push(Reason::Repair {
                missing: KeyStatus::Current,
            });
        }
        (Some(_), None) => {
            plan.steps.push(Step::Generate(KeyStatus::Next));
            plan.reasons.push(Reason::Repair {
                missing: KeyStatus::Next,
            });
        }
        (Some(current), Some(next)) => {
            if rotation_due(current, next, now, policy) {
                plan.steps.extend([
                    Step::Demote {
                        kid: current.kid.clone(),
                        retire_after: now.saturating_add(policy.retire_margin),
                    },
                    Step::Activate {
                        kid: next.kid.clone(),
                    },
                    Step::Generate(KeyStatus::Next),
                ]);
                plan.reasons.push(Reason::Scheduled {
                    from: current.kid.clone(),
                    to: next.kid.clone(),
                });
            }
        }
    }
    plan
}

/// True when `current` has signed for `rotation_interval` and `next` has been published for
/// `publish_lead`.
pub fn rotation_due(current: &KeyMeta, next: &KeyMeta, now: UnixTime, policy: &Policy) -> bool {
    let activated = current.activated_at.unwrap_or(current.created_at);
    activated.saturating_add(policy.rotation_interval) <= now
        && next.created_at.saturating_add(policy.publish_lead) <= now
}

/// Drops the `current` key at once: current -> retired, next -> current, a new next.
/// Returns `None` if there is no `current` key to drop.
pub fn plan_emergency(keys: &[KeyMeta]) -> Option<Plan> {
    let current = find(keys, KeyStatus::Current)?;
    let retire = Step::Retire {
        kid: current.kid.clone(),
        from: KeyStatus::Current,
    };
    let plan = match find(keys, KeyStatus::Next) {
        Some(next) => Plan {
            steps: vec![
                retire,
                Step::Activate {
                    kid: next.kid.clone(),
                },
                Step::Generate(KeyStatus::Next),
            ],
            reasons: vec![Reason::Emergency {
                dropped: current.kid.clone(),
                promoted: Some(next.kid.clone()),
            }],
        },
        // No next key to promote: a fresh current (unpublished until now; unavoidable).
        None => Plan {
            steps: vec![
                retire,
                Step::Generate(KeyStatus::Current),
                Step::Generate(KeyStatus::Next),
            ],
            reasons: vec![Reason::Emergency {
                dropped: current.kid.clone(),
                promoted: None,
            }],
        },
    };
    Some(plan)
}

/// The key in `status` (the schema allows at most one `current` and one `next`).
pub fn find(keys: &[KeyMeta], status: KeyStatus) -> Option<&KeyMeta> {
    keys.iter().find(|k| k.status == status)
}
