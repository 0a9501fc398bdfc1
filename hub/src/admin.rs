//! Break-glass operator actions that run against the store directly, without a running
//! hub: minting an admin token and rotating keys. Each is audited.
//!
//! A running hub notices what these change within `keys.refresh_interval`.

use std::sync::Arc;
use std::time::Duration;

use tether_common::time::{Clock, UnixTime};
use tether_common::token::Claims;

use crate::config::Config;
use crate::keys::{KeyError, KeyEvent, KeyInfo, KeyManager};
use crate::store::{AuditOutcome, AuditRecord, Store, StoreError};

/// The audience of admin tokens: the hub's Admin API, never a cluster.
pub const ADMIN_AUDIENCE: &str = "tether:admin";
/// The group every admin token carries.
pub const ADMIN_GROUP: &str = "tether:admins";
/// Audit kind of a minted admin token.
pub const AUDIT_ADMIN_TOKEN: &str = "admin_token.issued";
/// Longest admin token `admin-token` mints.
pub const MAX_ADMIN_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store could not be opened or written.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// The keys could not be loaded, rotated or used.
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    /// The request itself is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// The store and key manager an offline command works with.
#[derive(Debug)]
pub struct Offline {
    store: Store,
    keys: KeyManager,
    issuer: String,
    clock: Arc<dyn Clock>,
}

impl Offline {
    /// Opens the store of `config` and loads its keys (bootstrapping them, or performing a
    /// due rotation, exactly as a hub replica would).
    pub async fn open(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, AdminError> {
        let store = Store::connect(&config.storage).await?;
        let kek = crate::keys::Kek::load(&config.keys.kek_file)?;
        let keys =
            KeyManager::start(store.clone(), config.keys.clone(), kek, Arc::clone(&clock)).await?;
        Ok(Self {
            store,
            keys,
            issuer: config.issuer.as_str().to_owned(),
            clock,
        })
    }

    /// Mints an admin token for `name` valid for `ttl`, and audits it (never the token).
    pub async fn admin_token(
        &self,
        name: &str,
        operator: &str,
        ttl: Duration,
    ) -> Result<String, AdminError> {
        validate_name(name)?;
        if ttl.is_zero() || ttl > MAX_ADMIN_TOKEN_TTL {
            return Err(AdminError::Invalid(format!(
                "--ttl must be between 1s and {}",
                humantime::format_duration(MAX_ADMIN_TOKEN_TTL)
            )));
        }
        let now = self.clock.now();
        let claims = Claims::mint(
            self.issuer.clone(),
            ADMIN_AUDIENCE,
            format!("admin:{name}"),
            name,
            vec![ADMIN_GROUP.to_owned()],
            None,
            now,
            ttl,
        );
        let token = self.keys.sign(&claims, "admin")?;
        let record = AuditRecord::new(
            now.as_secs(),
            AUDIT_ADMIN_TOKEN,
            format!("operator:{operator}"),
            AuditOutcome::Success,
        )
        .with_subject(format!("admin:{name}"))
        .with_details(serde_json::json!({
            "jti": claims.jti,
            "exp": claims.exp.as_secs(),
            "kid": self.keys.current().signer.kid().as_str(),
        }));
        self.store.append_audit(&record).await?;
        tracing::info!(subject = %format!("admin:{name}"), jti = %claims.jti, "admin token issued");
        Ok(token)
    }

    /// The published keys (metadata only).
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.keys.current().keys.to_vec()
    }

    /// Performs a due scheduled rotation, if any.
    pub async fn rotate_if_due(&self) -> Result<Vec<KeyEvent>, AdminError> {
        Ok(self.keys.rotate_scheduled_if_due(self.clock.now()).await?)
    }

    /// Emergency rotation: drops the current key now, promotes next.
    pub async fn rotate_emergency(&self, operator: &str) -> Result<Vec<KeyEvent>, AdminError> {
        let actor = format!("operator:{operator}");
        Ok(self.keys.rotate_emergency(self.clock.now(), &actor).await?)
    }

    /// Closes the store.
    pub async fn close(self) {
        self.store.close().await;
    }

    /// The time now, by this command's clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }
}

/// An admin name: 1–64 of `[A-Za-z0-9._@-]`, never `system:`-anything.
fn validate_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::Invalid(format!(
            "--name {name:?}: use 1-64 letters, digits, '.', '_', '@' or '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("alice@example.com").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("system:admin").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
    }
}
