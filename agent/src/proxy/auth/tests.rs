use std::sync::OnceLock;
use std::time::Duration;

use http::HeaderValue;
use tether_common::time::{ManualClock, UnixTime};
use tether_common::token::{
    Algorithm, DEFAULT_CLUSTER_TOKEN_LIFETIME, KeySet, SigningKey, VerifyOptions,
};
use tether_proto::v1::{Revocations, RevokedSession};

use super::*;
use crate::proxy::metrics::tests::TestRecorder;

const ISSUER: &str = "https://hub.example";
const AUDIENCE: &str = "cluster-a";
const NOW: UnixTime = UnixTime::from_secs(1_700_000_000);

fn key(i: usize) -> &'static SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..3)
            .map(|_| SigningKey::generate(Algorithm::Es256).unwrap())
            .collect()
    })[i]
}

/// A verifier trusting keys `ids`.
fn verifier(ids: &[usize]) -> Arc<Verifier> {
    let jwks = ids.iter().map(|&i| key(i).public_jwk()).collect();
    Arc::new(Verifier::new(
        KeySet::from_jwks(&jwks),
        VerifyOptions::new(ISSUER, AUDIENCE),
    ))
}

fn claims(sid: &str) -> Claims {
    Claims::mint(
        ISSUER,
        AUDIENCE,
        "upstream|123",
        "alice",
        vec!["dev".to_owned()],
        Some(sid.to_owned()),
        NOW,
        DEFAULT_CLUSTER_TOKEN_LIFETIME,
    )
}

fn token(key_id: usize, edit: impl FnOnce(&mut Claims)) -> String {
    let mut c = claims("sess-1");
    edit(&mut c);
    key(key_id).sign(&c).unwrap()
}

struct Fixture {
    auth: Authenticator,
    verifier: watch::Sender<Option<Arc<Verifier>>>,
    revocations: watch::Sender<Arc<RevocationList>>,
    clock: Arc<ManualClock>,
}

/// An authenticator trusting keys 0 and 1 (key 2 is unknown).
fn fixture() -> Fixture {
    let (verifier, verifier_rx) = watch::channel(Some(verifier(&[0, 1])));
    let (revocations, revocations_rx) = watch::channel(Arc::new(RevocationList::default()));
    let clock = Arc::new(ManualClock::new(NOW));
    Fixture {
        auth: Authenticator::new(verifier_rx, revocations_rx, clock.clone()),
        verifier,
        revocations,
        clock,
    }
}

fn headers(authorization: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in authorization {
        headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    headers
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn revoke(f: &Fixture, sid: &str) {
    let mut list = RevocationList::default();
    list.apply(
        &Revocations {
            sessions: vec![RevokedSession {
                sid: sid.to_owned(),
                until: NOW.as_secs() + 3600,
            }],
            full: true,
        },
        NOW,
    );
    f.revocations.send_replace(Arc::new(list));
}

#[test]
fn refusals() {
    let good = token(0, |_| {});
    let expired = token(0, |c| {
        c.iat = NOW.saturating_sub(Duration::from_secs(3600));
        c.nbf = c.iat;
        c.exp = NOW.saturating_sub(Duration::from_secs(600));
    });
    let wrong_audience = token(0, |c| c.aud = "cluster-b".into());
    let wrong_issuer = token(0, |c| c.iss = "https://evil.example".to_owned());
    let unknown_kid = token(2, |_| {});
    let mut tampered = good.clone();
    tampered.push('A');
    let huge = format!("Bearer {}", "a".repeat(10_000));

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("no header", vec![], "missing bearer token"),
        (
            "basic scheme",
            vec![format!("Basic {good}")],
            "Authorization scheme must be Bearer",
        ),
        (
            "token without scheme",
            vec![good.clone()],
            "Authorization scheme must be Bearer",
        ),
        (
            "scheme only",
            vec!["Bearer".to_owned()],
            "Authorization scheme must be Bearer",
        ),
        (
            "empty token",
            vec!["Bearer ".to_owned()],
            "malformed Authorization header",
        ),
        (
            "two tokens",
            vec![format!("Bearer {good} {good}")],
            "malformed Authorization header",
        ),
        (
            "a tab inside the token",
            vec![format!("Bearer {good}\t{good}")],
            "malformed Authorization header",
        ),
        ("garbage", vec![bearer("not-a-jwt")], "invalid bearer token"),
        (
            "tampered signature",
            vec![bearer(&tampered)],
            "invalid bearer token",
        ),
        ("expired", vec![bearer(&expired)], "token expired"),
        (
            "wrong audience",
            vec![bearer(&wrong_audience)],
            "invalid bearer token",
        ),
        (
            "wrong issuer",
            vec![bearer(&wrong_issuer)],
            "invalid bearer token",
        ),
        (
            "unknown kid",
            vec![bearer(&unknown_kid)],
            "invalid bearer token",
        ),
        ("too large", vec![huge], "invalid bearer token"),
        (
            "two Authorization headers",
            vec![bearer(&good), bearer(&good)],
            "more than one Authorization header",
        ),
        (
            "valid then garbage Authorization",
            vec![bearer(&good), "Basic Zm9vOmJhcg==".to_owned()],
            "more than one Authorization header",
        ),
    ];
    let f = fixture();
    for (name, values, reason) in cases {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let got = f.auth.authenticate(&headers(&values));
        assert_eq!(got, Err(ProxyError::Unauthorized(reason)), "{name}");
    }
    assert_eq!(f.auth.cached_tokens(), 0, "refused tokens are not cached");
}

#[test]
fn error_messages_never_contain_the_token() {
    let f = fixture();
    let expired = token(0, |c| c.exp = NOW.saturating_sub(Duration::from_secs(600)));
    for value in [
        bearer(&expired),
        bearer("garbage.token.here"),
        format!("Basic {expired}"),
    ] {
        let err = f.auth.authenticate(&headers(&[&value])).unwrap_err();
        let body = String::from_utf8(err.body().to_vec()).unwrap();
        assert!(
            !body.contains(&expired) && !body.contains("garbage"),
            "{body}"
        );
    }
}

#[test]
fn accepts_a_valid_token_with_any_scheme_case() {
    let f = fixture();
    let t = token(1, |_| {});
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let identity = f
            .auth
            .authenticate(&headers(&[&format!("{scheme} {t}")]))
            .unwrap();
        assert_eq!(
            identity,
            Identity {
                username: "alice".to_owned(),
                groups: vec!["dev".to_owned()],
                sid: Some("sess-1".to_owned()),
                issuer: ISSUER.to_owned(),
                subject: "upstream|123".to_owned(),
            }
        );
    }
}

#[test]
fn no_verifier_yet_is_unavailable() {
    let f = fixture();
    f.verifier.send_replace(None);
    let got = f.auth.authenticate(&headers(&[&bearer(&token(0, |_| {}))]));
    assert!(
        matches!(got, Err(ProxyError::ServiceUnavailable(_))),
        "{got:?}"
    );
    // A request without a token is still a 401.
    assert_eq!(
        f.auth.authenticate(&HeaderMap::new()),
        Err(ProxyError::Unauthorized("missing bearer token"))
    );
}

#[test]
fn second_request_is_a_cache_hit() {
    let f = fixture();
    let recorder = TestRecorder::default();
    let h = headers(&[&bearer(&token(0, |_| {}))]);
    ::metrics::with_local_recorder(&recorder, || {
        f.auth.authenticate(&h).unwrap();
        f.auth.authenticate(&h).unwrap();
        f.auth.authenticate(&h).unwrap();
    });
    assert_eq!(f.auth.cached_tokens(), 1);
    assert_eq!(
        recorder.value(super::metrics::TOKEN_CACHE_MISSES_TOTAL),
        1.0
    );
    assert_eq!(recorder.value(super::metrics::TOKEN_CACHE_HITS_TOTAL), 2.0);
}

#[test]
fn cached_token_expires() {
    let f = fixture();
    let h = headers(&[&bearer(&token(0, |_| {}))]);
    f.auth.authenticate(&h).unwrap();
    f.clock
        .advance(DEFAULT_CLUSTER_TOKEN_LIFETIME + Duration::from_secs(60));
    assert_eq!(
        f.auth.authenticate(&h),
        Err(ProxyError::Unauthorized("token expired"))
    );
}

#[test]
fn dropped_key_is_refused_even_if_cached() {
    let f = fixture();
    let by_dropped = headers(&[&bearer(&token(1, |_| {}))]);
    let by_kept = headers(&[&bearer(&token(0, |_| {}))]);
    f.auth.authenticate(&by_dropped).unwrap();
    f.auth.authenticate(&by_kept).unwrap();
    assert_eq!(f.auth.cached_tokens(), 2);

    f.verifier.send_replace(Some(verifier(&[0])));
    assert_eq!(
        f.auth.authenticate(&by_dropped),
        Err(ProxyError::Unauthorized("invalid bearer token"))
    );
    f.auth.authenticate(&by_kept).unwrap();
    assert_eq!(
        f.auth.cached_tokens(),
        1,
        "the cache was rebuilt for the new keys"
    );
}

#[test]
fn republishing_the_same_verifier_keeps_the_cache() {
    let f = fixture();
    let h = headers(&[&bearer(&token(0, |_| {}))]);
    f.auth.authenticate(&h).unwrap();
    f.verifier.send_modify(|_| {});
    f.auth.authenticate(&h).unwrap();
    assert_eq!(f.auth.cached_tokens(), 1);
}

#[test]
fn revoked_session_is_refused_although_cached() {
    let f = fixture();
    let revoked = headers(&[&bearer(&token(0, |_| {}))]);
    let other = headers(&[&bearer(&token(0, |c| c.sid = Some("sess-2".to_owned())))]);
    let machine = headers(&[&bearer(&token(0, |c| c.sid = None))]);
    f.auth.authenticate(&revoked).unwrap();
    assert_eq!(f.auth.cached_tokens(), 1);

    revoke(&f, "sess-1");
    assert_eq!(
        f.auth.authenticate(&revoked),
        Err(ProxyError::Unauthorized(SESSION_ENDED))
    );
    f.auth.authenticate(&other).unwrap();
    f.auth.authenticate(&machine).unwrap();

    // A revoked session's fresh token (not cached yet) is refused too.
    let fresh = headers(&[&bearer(&token(1, |_| {}))]);
    assert_eq!(
        f.auth.authenticate(&fresh),
        Err(ProxyError::Unauthorized(SESSION_ENDED))
    );
}
