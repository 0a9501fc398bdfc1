use std::sync::Mutex;

use async_trait::async_trait;
use http::header::{ACCEPT, AUTHORIZATION};

use super::*;

/// Client headers of a test case.
type Headers = Vec<(&'static str, &'static str)>;

const ISSUER: &str = "https://hub.example";

fn alice() -> Identity {
    Identity {
        username: "alice".to_owned(),
        groups: vec!["dev".to_owned()],
        sid: Some("sess-1".to_owned()),
        issuer: ISSUER.to_owned(),
        subject: "upstream|123".to_owned(),
    }
}

/// Allows exactly the listed `(resource, name)` pairs, for alice only; records every call.
#[derive(Default)]
struct Fake {
    allow: Vec<(&'static str, &'static str)>,
    fail: bool,
    calls: Mutex<Vec<(String, String)>>,
}

impl Fake {
    fn allowing(allow: &[(&'static str, &'static str)]) -> Self {
        Self {
            allow: allow.to_vec(),
            ..Self::default()
        }
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ImpersonationCheck for Fake {
    async fn allowed(
        &self,
        who: &Identity,
        (resource, name): (&str, &str),
    ) -> Result<bool, ProxyError> {
        assert_eq!(
            who,
            &alice(),
            "the check is asked about the authenticated user"
        );
        self.calls
            .lock()
            .unwrap()
            .push((resource.to_owned(), name.to_owned()));
        if self.fail {
            return Err(ProxyError::ServiceUnavailable("sar down".to_owned()));
        }
        Ok(self.allow.iter().any(|&(r, n)| r == resource && n == name))
    }
}

/// A request from kubectl with alice's token and `extra` client headers.
fn request(extra: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Bearer alice.token.sig"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    for (name, value) in extra {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

/// Every header as sorted `(name, value)` pairs.
fn pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn expected(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = [("accept", "application/json")]
        .iter()
        .chain(extra)
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    pairs.sort();
    pairs
}

/// What the proxy sets for alice herself.
const ALICE: &[(&str, &str)] = &[
    ("impersonate-user", "alice"),
    ("impersonate-group", "dev"),
    ("impersonate-extra-tether.dev%2fsid", "sess-1"),
    ("impersonate-extra-tether.dev%2fissuer", ISSUER),
];

/// No client header starts with these after `apply_identity`, whatever the outcome.
fn assert_no_client_identity(headers: &HeaderMap, case: &str) {
    assert!(
        !headers.contains_key(AUTHORIZATION),
        "{case}: Authorization left"
    );
    for (name, value) in headers {
        let name = name.as_str();
        assert!(!name.starts_with("x-remote-"), "{case}: {name} left");
        if name.starts_with("impersonate-") {
            let set_by_proxy = ALICE
                .iter()
                .any(|(n, v)| *n == name && v.as_bytes() == value.as_bytes());
            assert!(set_by_proxy, "{case}: {name}: {value:?} left");
        }
    }
}

#[tokio::test]
async fn smuggled_headers_never_change_the_identity() {
    type Outcome = Result<(), fn(&ProxyError) -> bool>;
    let forbidden: fn(&ProxyError) -> bool = |e| matches!(e, ProxyError::Forbidden(_));
    let bad_request: fn(&ProxyError) -> bool = |e| matches!(e, ProxyError::BadRequest(_));
    let cases: Vec<(&str, Headers, Outcome)> = vec![
        ("nothing", vec![], Ok(())),
        (
            "Impersonate-User",
            vec![("Impersonate-User", "admin")],
            Err(forbidden),
        ),
        (
            "lowercase impersonate-group",
            vec![("impersonate-group", "system:masters")],
            Err(forbidden),
        ),
        (
            "IMPERSONATE-GROUP upper case",
            vec![("IMPERSONATE-GROUP", "admins")],
            Err(forbidden),
        ),
        (
            "extra in capitals",
            vec![("IMPERSONATE-EXTRA-scopes", "admin")],
            Ok(()),
        ),
        (
            "percent-encoded reserved extra",
            vec![("Impersonate-Extra-tether.dev%2Fsid", "sess-other")],
            Ok(()),
        ),
        (
            "percent-encoded impersonated-by",
            vec![("impersonate-extra-tether.dev%2fimpersonated-by", "root")],
            Ok(()),
        ),
        (
            "badly encoded extra",
            vec![("impersonate-extra-a%zz", "x")],
            Err(bad_request),
        ),
        ("Impersonate-Uid", vec![("Impersonate-Uid", "0")], Ok(())),
        (
            "duplicate Impersonate-User",
            vec![("Impersonate-User", "alice"), ("impersonate-user", "admin")],
            Err(bad_request),
        ),
        (
            "duplicate Impersonate-Group",
            vec![("Impersonate-Group", "dev"), ("impersonate-group", "dev")],
            Err(forbidden),
        ),
        (
            "unknown Impersonate-*",
            vec![("Impersonate-Anything", "x")],
            Ok(()),
        ),
        (
            "empty Impersonate-User",
            vec![("Impersonate-User", "")],
            Err(bad_request),
        ),
        (
            "front-proxy headers",
            vec![
                ("X-Remote-User", "admin"),
                ("x-remote-group", "system:masters"),
                ("X-Remote-Extra-Scopes", "x"),
            ],
            Ok(()),
        ),
        (
            "second Authorization",
            vec![("Authorization", "Bearer admin.token.sig")],
            Ok(()),
        ),
        (
            "everything at once",
            vec![
                ("Impersonate-Extra-Scopes", "a"),
                ("impersonate-extra-scopes", "b"),
                ("Impersonate-Uid", "0"),
                ("x-remote-user", "admin"),
                ("authorization", "Basic YWRtaW46YWRtaW4="),
            ],
            Ok(()),
        ),
    ];
    for (case, extra, outcome) in cases {
        let deny_all = Fake::default();
        let mut headers = request(&extra);
        let got = apply_identity(&mut headers, &alice(), &deny_all).await;
        assert_no_client_identity(&headers, case);
        match outcome {
            Ok(()) => {
                assert_eq!(got, Ok(alice()), "{case}");
                assert_eq!(pairs(&headers), expected(ALICE), "{case}");
            }
            Err(is) => assert!(got.as_ref().is_err_and(is), "{case}: {got:?}"),
        }
    }
}

#[tokio::test]
async fn system_identities_in_tokens_are_refused() {
    let cases = [
        Identity {
            username: "system:admin".to_owned(),
            ..alice()
        },
        Identity {
            username: "system:serviceaccount:kube-system:default".to_owned(),
            ..alice()
        },
        Identity {
            groups: vec!["dev".to_owned(), "system:masters".to_owned()],
            ..alice()
        },
        Identity {
            username: String::new(),
            ..alice()
        },
    ];
    for identity in cases {
        let allow_all = Fake::allowing(&[]);
        let mut headers = request(&[]);
        let got = apply_identity(&mut headers, &identity, &allow_all).await;
        assert!(
            matches!(got, Err(ProxyError::Forbidden(_))),
            "{identity:?}: {got:?}"
        );
        assert!(
            headers
                .keys()
                .all(|n| !n.as_str().starts_with("impersonate-"))
        );
        assert!(!headers.contains_key(AUTHORIZATION));
    }
}

#[tokio::test]
async fn no_sid_sets_no_sid_extra() {
    let identity = Identity {
        sid: None,
        groups: vec![],
        ..alice()
    };
    let mut headers = request(&[]);
    let got = apply_identity(&mut headers, &identity, &Fake::default()).await;
    assert_eq!(got, Ok(identity));
    assert_eq!(
        pairs(&headers),
        expected(&[
            ("impersonate-user", "alice"),
            ("impersonate-extra-tether.dev%2fissuer", ISSUER),
        ])
    );
}

#[tokio::test]
async fn as_user_and_groups_allowed() {
    let check = Fake::allowing(&[("users", "bob"), ("groups", "ops"), ("groups", "audit")]);
    let mut headers = request(&[
        ("Impersonate-User", "bob"),
        ("Impersonate-Group", "ops"),
        ("Impersonate-Group", "audit"),
    ]);
    let effective = apply_identity(&mut headers, &alice(), &check)
        .await
        .unwrap();
    assert_eq!(
        effective,
        Identity {
            username: "bob".to_owned(),
            groups: vec!["ops".to_owned(), "audit".to_owned()],
            ..alice()
        }
    );
    assert_eq!(
        impersonated_by(&alice(), &effective).as_deref(),
        Some("alice")
    );
    assert_eq!(
        pairs(&headers),
        expected(&[
            ("impersonate-user", "bob"),
            ("impersonate-group", "ops"),
            ("impersonate-group", "audit"),
            ("impersonate-extra-tether.dev%2fimpersonated-by", "alice"),
            ("impersonate-extra-tether.dev%2fsid", "sess-1"),
            ("impersonate-extra-tether.dev%2fissuer", ISSUER),
        ])
    );
    assert_eq!(
        check.calls(),
        [("users", "bob"), ("groups", "ops"), ("groups", "audit")]
            .map(|(r, n)| (r.to_owned(), n.to_owned()))
    );
}

#[tokio::test]
async fn as_user_without_groups_has_no_groups() {
    let check = Fake::allowing(&[("users", "bob")]);
    let mut headers = request(&[("Impersonate-User", "bob")]);
    let effective = apply_identity(&mut headers, &alice(), &check)
        .await
        .unwrap();
    assert_eq!(effective.username, "bob");
    assert!(effective.groups.is_empty());
    assert!(!headers.contains_key(IMPERSONATE_GROUP));
}

#[tokio::test]
async fn as_group_alone_keeps_the_user() {
    let check = Fake::allowing(&[("groups", "ops")]);
    let mut headers = request(&[("Impersonate-Group", "ops")]);
    let effective = apply_identity(&mut headers, &alice(), &check)
        .await
        .unwrap();
    assert_eq!(
        effective,
        Identity {
            groups: vec!["ops".to_owned()],
            ..alice()
        }
    );
    assert_eq!(
        impersonated_by(&alice(), &effective).as_deref(),
        Some("alice")
    );
    assert_eq!(
        headers
            .get_all(IMPERSONATE_GROUP)
            .iter()
            .collect::<Vec<_>>(),
        ["ops"]
    );
    assert_eq!(headers[IMPERSONATE_USER], "alice");
}

#[tokio::test]
async fn refusals_name_what_was_refused() {
    let cases: Vec<(&str, Headers, Headers, &str)> = vec![
        (
            "user denied",
            vec![],
            vec![("Impersonate-User", "bob")],
            "users \"bob\"",
        ),
        (
            "one group of a list denied",
            vec![("users", "bob"), ("groups", "ops")],
            vec![
                ("Impersonate-User", "bob"),
                ("Impersonate-Group", "ops"),
                ("Impersonate-Group", "admins"),
            ],
            "groups \"admins\"",
        ),
        (
            "uid denied",
            vec![("users", "bob")],
            vec![("Impersonate-User", "bob"), ("Impersonate-Uid", "1234")],
            "uids \"1234\"",
        ),
        (
            "extra denied",
            vec![("users", "bob")],
            vec![
                ("Impersonate-User", "bob"),
                ("Impersonate-Extra-Scopes", "view"),
            ],
            "userextras/scopes \"view\"",
        ),
        (
            "reserved extra",
            vec![("users", "bob"), ("userextras/tether.dev/sid", "x")],
            vec![
                ("Impersonate-User", "bob"),
                ("Impersonate-Extra-tether.dev%2Fsid", "x"),
            ],
            "set by the tether proxy",
        ),
        (
            "service account denied",
            vec![("users", "system:serviceaccount:ns:sa")],
            vec![("Impersonate-User", "system:serviceaccount:ns:sa")],
            "serviceaccounts \"ns/sa\"",
        ),
    ];
    for (case, allow, extra, needle) in cases {
        let check = Fake::allowing(&allow);
        let mut headers = request(&extra);
        match apply_identity(&mut headers, &alice(), &check).await {
            Err(ProxyError::Forbidden(message)) => {
                assert!(message.contains(needle), "{case}: {message}");
                assert!(
                    message.contains("User \"alice\"") || needle.contains("tether"),
                    "{case}: {message}"
                );
            }
            other => panic!("{case}: {other:?}"),
        }
        assert!(
            headers
                .keys()
                .all(|n| !n.as_str().starts_with("impersonate-")),
            "{case}: nothing is set on refusal"
        );
    }
}

#[tokio::test]
async fn uid_extras_and_service_accounts_when_allowed() {
    let check = Fake::allowing(&[
        ("serviceaccounts", "ns/sa"),
        ("uids", "1234"),
        ("userextras/scopes", "view"),
        ("userextras/example.com/team", "a b"),
    ]);
    let mut headers = request(&[
        ("Impersonate-User", "system:serviceaccount:ns:sa"),
        ("Impersonate-Uid", "1234"),
        ("Impersonate-Extra-Scopes", "view"),
        ("Impersonate-Extra-example.com%2fteam", "a b"),
    ]);
    let effective = apply_identity(&mut headers, &alice(), &check)
        .await
        .unwrap();
    assert_eq!(effective.username, "system:serviceaccount:ns:sa");
    assert_eq!(
        pairs(&headers),
        expected(&[
            ("impersonate-user", "system:serviceaccount:ns:sa"),
            ("impersonate-uid", "1234"),
            ("impersonate-extra-scopes", "view"),
            ("impersonate-extra-example.com%2fteam", "a b"),
            ("impersonate-extra-tether.dev%2fimpersonated-by", "alice"),
            ("impersonate-extra-tether.dev%2fsid", "sess-1"),
            ("impersonate-extra-tether.dev%2fissuer", ISSUER),
        ])
    );
}

#[tokio::test]
async fn check_failure_refuses() {
    let check = Fake {
        fail: true,
        ..Fake::default()
    };
    let mut headers = request(&[("Impersonate-User", "bob")]);
    let got = apply_identity(&mut headers, &alice(), &check).await;
    assert!(
        matches!(got, Err(ProxyError::ServiceUnavailable(_))),
        "{got:?}"
    );
    assert!(!headers.contains_key(IMPERSONATE_USER));
}

#[test]
fn extra_keys_are_encoded_like_client_go() {
    let cases = [
        ("tether.dev/sid", "impersonate-extra-tether.dev%2fsid"),
        ("Scopes", "impersonate-extra-scopes"),
        ("a%b", "impersonate-extra-a%25b"),
        ("a b", "impersonate-extra-a%20b"),
        ("ü", "impersonate-extra-%c3%bc"),
        ("x_y-z.~", "impersonate-extra-x_y-z.~"),
    ];
    for (key, name) in cases {
        let encoded = extra_header_name(key).unwrap();
        assert_eq!(encoded.as_str(), name);
        let decoded = percent_decode(&name[IMPERSONATE_EXTRA_PREFIX.len()..]).unwrap();
        assert_eq!(decoded, key.to_lowercase());
    }
    assert_eq!(percent_decode("%zz"), None);
    assert_eq!(percent_decode("%2"), None);
    assert_eq!(percent_decode("%ff"), None, "not UTF-8");
}

#[test]
fn the_proxys_own_extra_headers_are_encoded_like_any_other() {
    for key in [EXTRA_SID, EXTRA_ISSUER, EXTRA_IMPERSONATED_BY] {
        assert_eq!(
            extra_header(key).unwrap(),
            extra_header_name(key).unwrap(),
            "{key}"
        );
    }
    assert_eq!(
        extra_header("Scopes").unwrap().as_str(),
        "impersonate-extra-scopes"
    );
}

#[test]
fn impersonated_by_is_none_for_oneself() {
    assert_eq!(impersonated_by(&alice(), &alice()), None);
}

#[tokio::test]
async fn websocket_bearer_subprotocols_are_removed() {
    let cases = [
        ("v5.channel.k8s.io", Some("v5.channel.k8s.io")),
        (
            "base64url.bearer.authorization.k8s.io.ZXlKaGJH, v5.channel.k8s.io, v4.channel.k8s.io",
            Some("v5.channel.k8s.io, v4.channel.k8s.io"),
        ),
        ("base64url.bearer.authorization.k8s.io.ZXlKaGJH", None),
    ];
    for (sent, kept) in cases {
        let mut headers = request(&[("Sec-WebSocket-Protocol", sent)]);
        apply_identity(&mut headers, &alice(), &Fake::default())
            .await
            .unwrap();
        let got = headers
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)
            .map(|v| v.to_str().unwrap());
        assert_eq!(got, kept, "{sent}");
    }
}
