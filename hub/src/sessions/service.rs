//! [`Sessions`]: the session service the OAuth endpoints call.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_common::secret::Secret;
use tether_common::time::UnixTime;
use zeroize::Zeroizing;

use super::secrets::{
    SESSION_ID_BYTES, pkce_s256_matches, random_b64, random_token, token_hash,
    valid_code_challenge, valid_code_verifier,
};
use super::{
    CodeGrant, METRIC_REFRESH, REASON_CODE_REUSE, REASON_REFRESH_TOKEN_REUSE, REASON_TOKEN_REVOKED,
    Session, SessionError, SessionId, SessionIdentity, SessionsConfig, UPSTREAM_GRANT_PURPOSE,
    audit_kind,
};
use crate::keys::Kek;
use crate::store::{
    AuditOutcome, AuditRecord, AuthCodeRow, CodeUse, PendingLoginRow, PurgeCounts, RefreshTokenRow,
    SessionRow, Store,
};

/// How long dead sessions are kept before [`Sessions::purge_expired`] deletes them, so a
/// revoked `sid` stays known while tokens that carry it may still be alive.
pub const PURGE_GRACE: Duration = Duration::from_secs(3600);

/// The session service: cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    kek: Kek,
    config: SessionsConfig,
    rng: SystemRandom,
}

/// What the pending-login row stores.
#[derive(Serialize, serde::Deserialize)]
struct StoredLogin<R, P> {
    request: R,
    pending: P,
}

impl Sessions {
    /// A service over `store`, encrypting upstream grants with `kek`.
    pub fn new(store: Store, kek: Kek, config: SessionsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                kek,
                config,
                rng: SystemRandom::new(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionsConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    // ----- pending logins -----

    /// Remembers a login in progress (the client's authorize `request` and the upstream
    /// `pending` state) for `sessions.login_timeout`; returns the login id to set as a
    /// cookie. Only its hash is stored.
    pub async fn start_login<R: Serialize, P: Serialize>(
        &self,
        request: &R,
        pending: &P,
        now: UnixTime,
    ) -> Result<Secret, SessionError> {
        let id = random_token(&self.inner.rng)?;
        let json = serde_json::to_string(&StoredLogin { request, pending })
            .map_err(SessionError::Encoding)?;
        let expires_at = now.saturating_add(self.inner.config.login_timeout.as_duration());
        self.inner
            .store
            .insert_pending_login(&PendingLoginRow {
                id_hash: token_hash(&id),
                created_at: now.as_secs(),
                expires_at: expires_at.as_secs(),
                request: json,
            })
            .await?;
        Ok(id)
    }

    /// Takes (deletes and returns) the login `login_id`: exactly one caller gets it.
    /// [`SessionError::NotFound`] if unknown or already taken, [`SessionError::Expired`]
    /// if older than `sessions.login_timeout`.
    pub async fn take_login<R: DeserializeOwned, P: DeserializeOwned>(
        &self,
        login_id: &Secret,
        now: UnixTime,
    ) -> Result<(R, P), SessionError> {
        let row = self
            .inner
            .store
            .take_pending_login(&token_hash(login_id))
            .await?
            .ok_or(SessionError::NotFound)?;
        if now.as_secs() >= row.expires_at {
            return Err(SessionError::Expired);
        }
        let stored: StoredLogin<R, P> =
            serde_json::from_str(&row.request).map_err(SessionError::Encoding)?;
        Ok((stored.request, stored.pending))
    }

    // ----- sessions -----

    /// Creates a session for `identity` logged in to `client_id`; `upstream_grant` (the
    /// serialized upstream tokens) is stored encrypted, bound to the new session id.
    pub async fn create(
        &self,
        identity: &SessionIdentity,
        upstream_grant: &[u8],
        client_id: &str,
        now: UnixTime,
    ) -> Result<Session, SessionError> {
        let id = random_b64(&self.inner.rng, SESSION_ID_BYTES)?;
        let (ciphertext, nonce) = self.seal_grant(&id, upstream_grant)?;
        let absolute = now.saturating_add(self.inner.config.absolute_lifetime.as_duration());
        let row = SessionRow {
            id: id.clone(),
            subject: identity.subject.clone(),
            username: identity.username.clone(),
            groups: identity.groups.clone(),
            client_id: client_id.to_owned(),
            created_at: now.as_secs(),
            last_used_at: now.as_secs(),
            absolute_expires_at: absolute.as_secs(),
            upstream_grant_ciphertext: ciphertext,
            upstream_grant_nonce: nonce,
            upstream_checked_at: now.as_secs(),
            revoked_at: None,
            revoked_reason: None,
        };
        self.inner.store.insert_session(&row).await?;
        self.audit(
            AuditRecord::new(
                now.as_secs(),
                audit_kind::SESSION_CREATED,
                identity.subject.as_str(),
                AuditOutcome::Success,
            )
            .with_subject(id.as_str())
            .with_details(serde_json::json!({
                "client_id": client_id,
                "username": identity.username,
            })),
        )
        .await?;
        Ok(session_from_row(&row))
    }

    /// The live session `sid`: [`SessionError::NotFound`], [`SessionError::Revoked`] or
    /// [`SessionError::Expired`] (idle timeout or absolute lifetime) otherwise.
    pub async fn session(&self, sid: &SessionId, now: UnixTime) -> Result<Session, SessionError> {
        let row = self
            .inner
            .store
            .session_row(sid.as_str())
            .await?
            .ok_or(SessionError::NotFound)?;
        self.check_active(&row, now)?;
        Ok(session_from_row(&row))
    }

    /// Records activity on a live session (moves `last_used_at` to `now`).
    pub async fn touch(&self, sid: &SessionId, now: UnixTime) -> Result<(), SessionError> {
        self.session(sid, now).await?;
        self.inner
            .store
            .touch_session(sid.as_str(), now.as_secs())
            .await?;
        Ok(())
    }

    /// Revokes `sid` for `reason` (e.g. [`super::REASON_LOGOUT`]); false if it was already
    /// revoked or does not exist.
    pub async fn revoke(
        &self,
        sid: &SessionId,
        reason: &str,
        now: UnixTime,
    ) -> Result<bool, SessionError> {
        let revoked = self
            .inner
            .store
            .revoke_session(sid.as_str(), reason, now.as_secs())
            .await?;
        if revoked {
            tracing::info!(sid = %sid, reason, "session revoked");
            self.audit(
                AuditRecord::new(
                    now.as_secs(),
                    audit_kind::SESSION_REVOKED,
                    "system",
                    AuditOutcome::Success,
                )
                .with_subject(sid.as_str())
                .with_reason(reason),
            )
            .await?;
        }
        Ok(revoked)
    }

    /// RFC 7009 revocation of a refresh token presented by `client_id`: revokes its whole
    /// session. An unknown token, or one issued to another client, is not an error and
    /// changes nothing (returns false), so the endpoint answers 200 either way.
    pub async fn revoke_by_refresh_token(
        &self,
        token: &Secret,
        client_id: &str,
        now: UnixTime,
    ) -> Result<bool, SessionError> {
        let Some(row) = self.inner.store.refresh_token(&token_hash(token)).await? else {
            return Ok(false);
        };
        if row.client_id != client_id {
            return Ok(false);
        }
        self.revoke(&SessionId::new(row.session_id), REASON_TOKEN_REVOKED, now)
            .await
    }

    /// Replaces the identity and upstream grant of a live session after the upstream IdP
    /// re-validated the user; sets `upstream_checked_at` to `now`.
    pub async fn update_identity(
        &self,
        sid: &SessionId,
        identity: &SessionIdentity,
        upstream_grant: &[u8],
        now: UnixTime,
    ) -> Result<Session, SessionError> {
        self.session(sid, now).await?;
        let (ciphertext, nonce) = self.seal_grant(sid.as_str(), upstream_grant)?;
        let updated = self
            .inner
            .store
            .update_session_identity(
                sid.as_str(),
                &identity.subject,
                &identity.username,
                &identity.groups,
                &ciphertext,
                &nonce,
                now.as_secs(),
            )
            .await?;
        if !updated {
            return Err(SessionError::Revoked);
        }
        self.audit(
            AuditRecord::new(
                now.as_secs(),
                audit_kind::SESSION_IDENTITY_UPDATED,
                identity.subject.as_str(),
                AuditOutcome::Success,
            )
            .with_subject(sid.as_str())
            .with_details(serde_json::json!({
                "username": identity.username,
                "groups": identity.groups.len(),
            })),
        )
        .await?;
        self.session(sid, now).await
    }

    /// The decrypted upstream grant of `session`.
    pub async fn upstream_grant(
        &self,
        session: &Session,
    ) -> Result<Zeroizing<Vec<u8>>, SessionError> {
        let row = self
            .inner
            .store
            .session_row(session.id.as_str())
            .await?
            .ok_or(SessionError::NotFound)?;
        self.inner
            .kek
            .open_bound(
                UPSTREAM_GRANT_PURPOSE,
                &row.id,
                &row.upstream_grant_ciphertext,
                &row.upstream_grant_nonce,
            )
            .map_err(SessionError::Crypto)
    }

    /// True if the upstream grant was last validated `interval` or longer ago.
    pub fn needs_upstream_check(
        &self,
        session: &Session,
        interval: Duration,
        now: UnixTime,
    ) -> bool {
        now >= session.upstream_checked_at.saturating_add(interval)
    }

    /// Deletes expired codes, logins and device codes (RFC 8628), and sessions dead (idle or
    /// past their absolute lifetime) for longer than [`PURGE_GRACE`], with their codes and
    /// refresh tokens.
    pub async fn purge_expired(&self, now: UnixTime) -> Result<PurgeCounts, SessionError> {
        let config = &self.inner.config;
        let absolute_before = now.saturating_sub(PURGE_GRACE);
        let idle_before = absolute_before.saturating_sub(config.idle_timeout.as_duration());
        let counts = self
            .inner
            .store
            .purge_sessions(
                now.as_secs(),
                absolute_before.as_secs(),
                idle_before.as_secs(),
            )
            .await?;
        let device_codes = self.inner.store.purge_device_codes(now.as_secs()).await?;
        if device_codes > 0 {
            tracing::debug!(device_codes, "expired device codes purged");
        }
        Ok(counts)
    }

    // ----- authorization codes -----

    /// Issues a single-use authorization code for `session`, valid `sessions.code_lifetime`.
    /// `code_challenge` must be an S256 challenge (43 base64url characters).
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_code(
        &self,
        session: &Session,
        client_id: &str,
        redirect_uri: &str,
        code_challenge: &str,
        nonce: Option<&str>,
        scope: &str,
        now: UnixTime,
    ) -> Result<Secret, SessionError> {
        if !valid_code_challenge(code_challenge) {
            return Err(SessionError::InvalidRequest(
                "code_challenge must be an S256 challenge (43 base64url characters)",
            ));
        }
        let code = random_token(&self.inner.rng)?;
        let expires_at = now.saturating_add(self.inner.config.code_lifetime.as_duration());
        self.inner
            .store
            .insert_auth_code(&AuthCodeRow {
                code_hash: token_hash(&code),
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                code_challenge: code_challenge.to_owned(),
                nonce: nonce.map(str::to_owned),
                scope: scope.to_owned(),
                session_id: session.id.as_str().to_owned(),
                created_at: now.as_secs(),
                expires_at: expires_at.as_secs(),
                used_at: None,
            })
            .await?;
        Ok(code)
    }

    /// Redeems `code` (once). Any failure is [`SessionError::InvalidGrant`]; a code presented
    /// a second time also revokes the session it created (RFC 6749 §4.1.2). The code is
    /// spent by the first attempt, even a failed one.
    pub async fn redeem_code(
        &self,
        code: &Secret,
        client_id: &str,
        redirect_uri: &str,
        code_verifier: &str,
        now: UnixTime,
    ) -> Result<(Session, CodeGrant), SessionError> {
        let found = self
            .inner
            .store
            .consume_auth_code(&token_hash(code), now.as_secs())
            .await?;
        let row = match found {
            None => {
                self.deny(
                    now,
                    audit_kind::CODE_REDEEMED,
                    client_id,
                    None,
                    "unknown code",
                )
                .await;
                return Err(SessionError::InvalidGrant("unknown authorization code"));
            }
            Some(CodeUse::Reused(row)) => {
                let sid = SessionId::new(row.session_id.clone());
                tracing::warn!(sid = %sid, client_id, "authorization code reused: revoking its session");
                self.deny(
                    now,
                    audit_kind::CODE_REUSE,
                    client_id,
                    Some(&sid),
                    "code reuse",
                )
                .await;
                self.revoke(&sid, REASON_CODE_REUSE, now).await?;
                return Err(SessionError::InvalidGrant(
                    "authorization code was already used",
                ));
            }
            Some(CodeUse::First(row)) => row,
        };
        let sid = SessionId::new(row.session_id.clone());
        let refusal = if now.as_secs() >= row.expires_at {
            Some("authorization code expired")
        } else if row.client_id != client_id {
            Some("authorization code was issued to another client")
        } else if row.redirect_uri != redirect_uri {
            Some("redirect_uri does not match the authorization request")
        } else if !valid_code_verifier(code_verifier) {
            Some("code_verifier must be 43-128 unreserved characters (RFC 7636)")
        } else if !pkce_s256_matches(code_verifier, &row.code_challenge) {
            Some("code_verifier does not match the code_challenge")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.deny(
                now,
                audit_kind::CODE_REDEEMED,
                client_id,
                Some(&sid),
                reason,
            )
            .await;
            return Err(SessionError::InvalidGrant(reason));
        }
        let session = match self.session(&sid, now).await {
            Ok(session) => session,
            Err(err) => return Err(session_to_grant_error(err)),
        };
        self.inner
            .store
            .touch_session(sid.as_str(), now.as_secs())
            .await?;
        self.audit(
            AuditRecord::new(
                now.as_secs(),
                audit_kind::CODE_REDEEMED,
                client_id,
                AuditOutcome::Success,
            )
            .with_subject(sid.as_str()),
        )
        .await?;
        let session = Session {
            last_used_at: now.max(session.last_used_at),
            ..session
        };
        Ok((
            session,
            CodeGrant {
                nonce: row.nonce,
                scope: row.scope,
                redirect_uri: row.redirect_uri,
            },
        ))
    }

    // ----- refresh tokens -----

    /// Issues a refresh token for `session` to `client_id` (after a code redemption).
    pub async fn issue_refresh(
        &self,
        session: &Session,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Secret, SessionError> {
        let token = random_token(&self.inner.rng)?;
        self.inner
            .store
            .insert_refresh_token(&RefreshTokenRow {
                token_hash: token_hash(&token),
                session_id: session.id.as_str().to_owned(),
                client_id: client_id.to_owned(),
                created_at: now.as_secs(),
                used_at: None,
            })
            .await?;
        Ok(token)
    }

    /// Exchanges `token` for a new one (rotation on every use) and returns the session.
    ///
    /// [`SessionError::InvalidGrant`] for an unknown token, another client's token, or an
    /// expired or revoked session. A token that was already spent — including by a
    /// concurrent request that won the race — revokes the whole session
    /// ([`REASON_REFRESH_TOKEN_REUSE`]).
    pub async fn refresh(
        &self,
        token: &Secret,
        client_id: &str,
        now: UnixTime,
    ) -> Result<(Session, Secret), SessionError> {
        let result = self.refresh_inner(token, client_id, now).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(SessionError::InvalidGrant(reason)) if *reason == REUSE_REASON => "reuse",
            Err(SessionError::InvalidGrant(reason)) if *reason == EXPIRED_REASON => "expired",
            Err(SessionError::InvalidGrant(reason)) if *reason == REVOKED_REASON => "revoked",
            Err(err) if err.is_client_error() => "invalid",
            Err(_) => "error",
        };
        metrics::counter!(METRIC_REFRESH, "outcome" => outcome).increment(1);
        result
    }

    async fn refresh_inner(
        &self,
        token: &Secret,
        client_id: &str,
        now: UnixTime,
    ) -> Result<(Session, Secret), SessionError> {
        let old_hash = token_hash(token);
        let Some(row) = self.inner.store.refresh_token(&old_hash).await? else {
            self.deny(
                now,
                audit_kind::REFRESH_DENIED,
                client_id,
                None,
                "unknown token",
            )
            .await;
            return Err(SessionError::InvalidGrant("unknown refresh token"));
        };
        let sid = SessionId::new(row.session_id.clone());
        if row.client_id != client_id {
            self.deny(
                now,
                audit_kind::REFRESH_DENIED,
                client_id,
                Some(&sid),
                "wrong client",
            )
            .await;
            return Err(SessionError::InvalidGrant(
                "refresh token was issued to another client",
            ));
        }
        if row.used_at.is_some() {
            return Err(self.refresh_reuse(&sid, client_id, now).await);
        }
        let session = match self.session(&sid, now).await {
            Ok(session) => session,
            Err(err) => {
                let err = session_to_grant_error(err);
                if let SessionError::InvalidGrant(reason) = &err {
                    self.deny(
                        now,
                        audit_kind::REFRESH_DENIED,
                        client_id,
                        Some(&sid),
                        reason,
                    )
                    .await;
                }
                return Err(err);
            }
        };
        let new_token = random_token(&self.inner.rng)?;
        let rotated = self
            .inner
            .store
            .rotate_refresh_token(
                &old_hash,
                &RefreshTokenRow {
                    token_hash: token_hash(&new_token),
                    session_id: sid.as_str().to_owned(),
                    client_id: client_id.to_owned(),
                    created_at: now.as_secs(),
                    used_at: None,
                },
                now.as_secs(),
            )
            .await?;
        if !rotated {
            // Another request spent the token between our read and our write.
            return Err(self.refresh_reuse(&sid, client_id, now).await);
        }
        self.audit(
            AuditRecord::new(
                now.as_secs(),
                audit_kind::SESSION_REFRESHED,
                session.subject.as_str(),
                AuditOutcome::Success,
            )
            .with_subject(sid.as_str())
            .with_details(serde_json::json!({ "client_id": client_id })),
        )
        .await?;
        let session = Session {
            last_used_at: now.max(session.last_used_at),
            ..session
        };
        Ok((session, new_token))
    }

    /// A spent refresh token came back: revoke the session, audit, refuse.
    async fn refresh_reuse(&self, sid: &SessionId, client_id: &str, now: UnixTime) -> SessionError {
        tracing::warn!(sid = %sid, client_id, "refresh token reused: revoking the session");
        self.deny(
            now,
            audit_kind::REFRESH_REUSE,
            client_id,
            Some(sid),
            REASON_REFRESH_TOKEN_REUSE,
        )
        .await;
        if let Err(err) = self.revoke(sid, REASON_REFRESH_TOKEN_REUSE, now).await {
            return err;
        }
        SessionError::InvalidGrant(REUSE_REASON)
    }

    // ----- helpers -----

    fn check_active(&self, row: &SessionRow, now: UnixTime) -> Result<(), SessionError> {
        if row.revoked_at.is_some() {
            return Err(SessionError::Revoked);
        }
        let now = now.as_secs();
        let idle = UnixTime::from_secs(row.last_used_at)
            .saturating_add(self.inner.config.idle_timeout.as_duration())
            .as_secs();
        if now >= row.absolute_expires_at || now >= idle {
            return Err(SessionError::Expired);
        }
        Ok(())
    }

    fn seal_grant(&self, sid: &str, grant: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SessionError> {
        self.inner
            .kek
            .seal_bound(UPSTREAM_GRANT_PURPOSE, sid, grant)
            .map_err(SessionError::Crypto)
    }

    async fn audit(&self, record: AuditRecord) -> Result<(), SessionError> {
        self.inner.store.append_audit(&record).await?;
        Ok(())
    }

    /// Audits a refusal; a failure to write it is logged, the refusal stands.
    async fn deny(
        &self,
        now: UnixTime,
        kind: &str,
        client_id: &str,
        sid: Option<&SessionId>,
        reason: &str,
    ) {
        let mut record = AuditRecord::new(now.as_secs(), kind, client_id, AuditOutcome::Denied)
            .with_reason(reason);
        if let Some(sid) = sid {
            record = record.with_subject(sid.as_str());
        }
        if let Err(err) = self.inner.store.append_audit(&record).await {
            tracing::error!(error = %err, kind, "cannot write an audit record");
        }
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

const REUSE_REASON: &str = "refresh token was already used; the session is revoked";
const EXPIRED_REASON: &str = "the session has expired";
const REVOKED_REASON: &str = "the session was revoked";

/// Maps a session lookup failure during a grant to `invalid_grant`.
fn session_to_grant_error(err: SessionError) -> SessionError {
    match err {
        SessionError::Expired => SessionError::InvalidGrant(EXPIRED_REASON),
        SessionError::Revoked => SessionError::InvalidGrant(REVOKED_REASON),
        SessionError::NotFound => SessionError::InvalidGrant("unknown session"),
        other => other,
    }
}

fn session_from_row(row: &SessionRow) -> Session {
    Session {
        id: SessionId::new(row.id.clone()),
        subject: row.subject.clone(),
        username: row.username.clone(),
        groups: row.groups.clone(),
        client_id: row.client_id.clone(),
        created_at: UnixTime::from_secs(row.created_at),
        last_used_at: UnixTime::from_secs(row.last_used_at),
        absolute_expires_at: UnixTime::from_secs(row.absolute_expires_at),
        upstream_checked_at: UnixTime::from_secs(row.upstream_checked_at),
    }
}
