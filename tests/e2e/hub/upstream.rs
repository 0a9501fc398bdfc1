//! The hub's upstream relying party (`tether_hub::upstream`) against the Okta-like IdP:
//! discovery, code flow with PKCE, thin id_token with groups at userinfo, re-validation by
//! refresh and by userinfo, group changes, locked accounts, `system:` groups.

use tether_e2e::{IdpClient, IdpOptions, TestDir, UpstreamIdp, form_login, free_port};
use tether_hub::upstream::{
    PendingLogin, Upstream, UpstreamConfig, UpstreamError, UpstreamGrant, UpstreamLogin,
};
use url::Url;

struct Fixture {
    idp: UpstreamIdp,
    upstream: Upstream,
    redirect: String,
    _dir: TestDir,
}

impl Fixture {
    async fn start(name: &str) -> Self {
        let dir = TestDir::new(name).expect("test dir");
        // Nothing listens on the redirect URI: form_login stops before requesting it.
        let port = free_port().expect("free port");
        let redirect = format!("http://127.0.0.1:{port}/callback");
        let idp = UpstreamIdp::start(
            &dir,
            IdpOptions::new().client(IdpClient::new("hub", "hub-secret", &[&redirect])),
        )
        .await
        .expect("idp");
        let secret_file = dir.path().join("upstream-client-secret");
        std::fs::write(&secret_file, "hub-secret\n").expect("write secret");
        let mut config = UpstreamConfig::new(Url::parse(idp.issuer()).expect("issuer URL"), "hub");
        config.client_secret_file = Some(secret_file);
        config.dangerous_allow_http_issuer = true;
        let upstream = Upstream::discover(&config, Url::parse(&redirect).expect("redirect"))
            .await
            .expect("discovery");
        Self {
            idp,
            upstream,
            redirect,
            _dir: dir,
        }
    }

    /// Drives the IdP's form; returns the callback's `code` and what `begin` kept.
    async fn authorize(&self, user: &str, password: &str) -> (String, PendingLogin) {
        let (auth_url, pending) = self.upstream.begin();
        let query: Vec<(String, String)> = auth_url.query_pairs().into_owned().collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
        assert_eq!(param("response_type").as_deref(), Some("code"));
        assert_eq!(param("nonce").as_deref(), Some(pending.nonce.as_str()));
        assert_eq!(
            param("redirect_uri").as_deref(),
            Some(self.redirect.as_str())
        );
        let scope = param("scope").expect("scope");
        assert!(
            scope.contains("openid") && scope.contains("offline_access"),
            "{scope}"
        );
        assert!(!auth_url.as_str().contains(&pending.pkce_verifier));

        let callback = form_login(auth_url.as_str(), user, password, &self.redirect)
            .await
            .expect("form login");
        let get = |name: &str| {
            callback
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let state = get("state").expect("state in callback");
        assert!(pending.state_matches(&state), "state comes back unchanged");
        (get("code").expect("code in callback"), pending)
    }

    async fn login(&self, user: &str, password: &str) -> UpstreamLogin {
        let (code, pending) = self.authorize(user, password).await;
        self.upstream
            .complete(&code, &pending)
            .await
            .expect("complete")
    }
}

/// The same grant without its refresh token: re-validation goes through userinfo.
fn without_refresh(grant: &UpstreamGrant) -> UpstreamGrant {
    UpstreamGrant {
        refresh_token: None,
        ..grant.clone()
    }
}

#[tokio::test]
async fn login_revalidate_groups_and_lock() {
    let f = Fixture::start("hub-upstream").await;

    let alice = f.login("alice", "alice-pass").await;
    assert_eq!(alice.identity.username, "alice@example.com");
    assert_eq!(
        alice.identity.groups,
        ["k8s-admins"],
        "groups from userinfo"
    );
    assert!(!alice.identity.subject.is_empty());
    assert!(alice.grant.refresh_token.is_some(), "offline_access");
    assert!(alice.grant.access_expires_at.is_some());
    // The grant survives its storage form.
    let stored = UpstreamGrant::from_bytes(&alice.grant.to_bytes()).expect("grant bytes");

    // Re-validation by refresh: same person, possibly a rotated refresh token.
    let again = f.upstream.revalidate(&stored).await.expect("revalidate");
    assert_eq!(again.identity, alice.identity);
    assert!(again.grant.refresh_token.is_some());
    // Re-validation by userinfo only.
    let by_userinfo = f
        .upstream
        .revalidate(&without_refresh(&again.grant))
        .await
        .expect("revalidate by userinfo");
    assert_eq!(by_userinfo.identity, alice.identity);

    // Group changes at the IdP show on the next re-validation.
    let bob = f.login("bob", "bob-pass").await;
    assert_eq!(bob.identity.username, "bob@example.com");
    assert_eq!(bob.identity.groups, ["k8s-viewers"]);
    f.idp
        .set_groups("bob", &["k8s-viewers", "k8s-admins", "k8s-viewers"])
        .await
        .expect("set groups");
    let bob2 = f
        .upstream
        .revalidate(&bob.grant)
        .await
        .expect("bob revalidates");
    assert_eq!(bob2.identity.groups, ["k8s-admins", "k8s-viewers"]);
    assert_eq!(bob2.identity.subject, bob.identity.subject);

    // A `system:` group configured at the IdP never comes through.
    f.idp
        .set_groups("bob", &["system:masters", "dev"])
        .await
        .expect("set groups");
    let bob3 = f
        .upstream
        .revalidate(&bob2.grant)
        .await
        .expect("bob revalidates");
    assert_eq!(bob3.identity.groups, ["dev"]);
    let bob_fresh = f.login("bob", "bob-pass").await;
    assert_eq!(bob_fresh.identity.groups, ["dev"]);
    let bob_userinfo = f
        .upstream
        .revalidate(&without_refresh(&bob3.grant))
        .await
        .expect("bob by userinfo");
    assert_eq!(bob_userinfo.identity.groups, ["dev"]);

    // Carol has no groups at all.
    let carol = f.login("carol", "carol-pass").await;
    assert!(carol.identity.groups.is_empty(), "{:?}", carol.identity);

    // Locked at the IdP: refresh and userinfo both say the account is gone.
    f.idp.lock("alice").await.expect("lock alice");
    let err = f
        .upstream
        .revalidate(&by_userinfo.grant)
        .await
        .expect_err("locked alice refreshes");
    assert!(matches!(err, UpstreamError::AccountRevoked), "{err:?}");
    let err = f
        .upstream
        .revalidate(&without_refresh(&by_userinfo.grant))
        .await
        .expect_err("locked alice at userinfo");
    assert!(matches!(err, UpstreamError::AccountRevoked), "{err:?}");
    // Bob is unaffected.
    f.upstream
        .revalidate(&bob_fresh.grant)
        .await
        .expect("bob still fine");
}

#[tokio::test]
async fn callback_tampering_is_refused() {
    let f = Fixture::start("hub-upstream-tamper").await;

    // Another login's nonce: the id_token does not match.
    let (code, pending) = f.authorize("alice", "alice-pass").await;
    let (_, other) = f.upstream.begin();
    let forged = PendingLogin {
        nonce: other.nonce,
        ..pending.clone()
    };
    let err = f
        .upstream
        .complete(&code, &forged)
        .await
        .expect_err("wrong nonce");
    assert!(matches!(err, UpstreamError::IdToken(_)), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("nonce"), "{err}");

    // Another login's PKCE verifier: the IdP refuses the code.
    let (code, pending) = f.authorize("alice", "alice-pass").await;
    let (_, other) = f.upstream.begin();
    let forged = PendingLogin {
        pkce_verifier: other.pkce_verifier,
        ..pending.clone()
    };
    let err = f
        .upstream
        .complete(&code, &forged)
        .await
        .expect_err("wrong verifier");
    assert!(matches!(err, UpstreamError::Exchange(_)), "{err:?}");
    // A made-up code is refused too.
    let err = f
        .upstream
        .complete("not-a-code", &pending)
        .await
        .expect_err("made-up code");
    assert!(matches!(err, UpstreamError::Exchange(_)), "{err:?}");
    // No token in any message.
    assert!(!err.to_string().contains(&pending.pkce_verifier));
}

#[tokio::test]
async fn groups_in_id_token_with_filter_prefix_and_expiry() {
    use std::sync::Arc;

    use tether_common::time::{ManualClock, UnixTime};

    let dir = TestDir::new("hub-upstream-idtoken").expect("test dir");
    let port = free_port().expect("free port");
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let idp = UpstreamIdp::start(
        &dir,
        IdpOptions::new()
            .client(IdpClient::new("hub", "hub-secret", &[&redirect]))
            .groups_in_id_token(),
    )
    .await
    .expect("idp");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "  hub-secret  \n").expect("write secret");
    let mut config = UpstreamConfig::new(Url::parse(idp.issuer()).expect("issuer"), "hub");
    config.client_secret_file = Some(secret_file);
    config.dangerous_allow_http_issuer = true;
    config.username_claim = "email".into();
    config.username_prefix = Some("okta:".into());
    config.groups_prefix = Some("okta:".into());
    config.groups_filter = vec!["k8s-*".into()];
    let clock = Arc::new(ManualClock::new(UnixTime::from_secs(1_000_000)));
    let upstream = Upstream::discover(&config, Url::parse(&redirect).expect("redirect"))
        .await
        .expect("discovery")
        .with_clock(clock.clone());
    let f = Fixture {
        idp,
        upstream,
        redirect,
        _dir: dir,
    };

    f.idp
        .set_groups("alice", &["k8s-admins", "hr", "system:masters", "k8s-dev"])
        .await
        .expect("set groups");
    let alice = f.login("alice", "alice-pass").await;
    assert_eq!(alice.identity.username, "okta:alice@example.com");
    assert_eq!(alice.identity.groups, ["okta:k8s-admins", "okta:k8s-dev"]);
    let expires = alice.grant.access_expires_at.expect("expires_in");
    assert!(
        expires > UnixTime::from_secs(1_000_000),
        "from the injected clock"
    );

    let again = f.upstream.revalidate(&alice.grant).await.expect("refresh");
    assert_eq!(again.identity, alice.identity);

    // Past the access token's lifetime, without a refresh token: log in again.
    clock.set(UnixTime::from_secs(expires.as_secs() + 1));
    let err = f
        .upstream
        .revalidate(&without_refresh(&alice.grant))
        .await
        .expect_err("expired access token");
    assert!(matches!(err, UpstreamError::GrantExpired), "{err:?}");
}
