//! Unit tests: no network.

use std::time::Duration;

use serde_json::{Map, Value, json};
use tether_common::secret::Secret;
use tether_common::time::UnixTime;
use url::Url;

use super::mapping::{glob_match, map_groups, map_identity, map_username};
use super::*;

fn config() -> UpstreamConfig {
    UpstreamConfig::new(Url::parse("https://idp.example.com").unwrap(), "hub")
}

fn claims(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn parse(yaml: &str) -> Result<UpstreamConfig, String> {
    let config: UpstreamConfig = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

mod mapping_rules {
    use super::*;

    #[test]
    fn username_claim_then_email_then_sub() {
        let cases: &[(&str, Value, Result<&str, &str>)] = &[
            (
                "preferred_username",
                json!({"sub": "s1", "preferred_username": "alice@example.com", "email": "a@x"}),
                Ok("alice@example.com"),
            ),
            (
                "preferred_username",
                json!({"sub": "s1", "email": "a@x"}),
                Ok("a@x"),
            ),
            (
                "preferred_username",
                json!({"sub": "s1", "email": "a@x", "email_verified": true}),
                Ok("a@x"),
            ),
            (
                "preferred_username",
                json!({"sub": "s1", "email": "a@x", "email_verified": false}),
                Ok("s1"),
            ),
            (
                "preferred_username",
                json!({"sub": "s1", "preferred_username": "", "email": "a@x"}),
                Ok("a@x"),
            ),
            (
                "preferred_username",
                json!({"sub": "s1", "preferred_username": 42}),
                Ok("s1"),
            ),
            ("upn", json!({"sub": "s1", "upn": "alice"}), Ok("alice")),
            (
                "preferred_username",
                json!({"preferred_username": "alice"}),
                Err("sub"),
            ),
            (
                "preferred_username",
                json!({"sub": "system:admin"}),
                Err("system:"),
            ),
            (
                "preferred_username",
                json!({"sub": "s1", "preferred_username": "system:anonymous"}),
                Err("system:"),
            ),
        ];
        for (claim, input, expected) in cases {
            let mut config = config();
            config.username_claim = (*claim).to_owned();
            let result = map_identity(&claims(input.clone()), &config);
            match (expected, result) {
                (Ok(name), Ok(identity)) => assert_eq!(identity.username, *name, "{input}"),
                (Err(text), Err(err)) => assert!(err.to_string().contains(text), "{input}: {err}"),
                (expected, got) => panic!("{input}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn subject_is_kept_unprefixed() {
        let mut config = config();
        config.username_prefix = Some("okta:".into());
        let identity = map_identity(
            &claims(json!({"sub": "00u1", "preferred_username": "a@x"})),
            &config,
        )
        .unwrap();
        assert_eq!(identity.subject, "00u1");
        assert_eq!(identity.username, "okta:a@x");
    }

    #[test]
    fn username_prefix_and_system() {
        let cases: &[(&str, Option<&str>, Result<&str, ()>)] = &[
            ("alice", None, Ok("alice")),
            ("alice", Some("okta:"), Ok("okta:alice")),
            ("system:admin", None, Err(())),
            ("system:admin", Some("okta:"), Err(())),
            // Prefixing that produces `system:` (config validation forbids such prefixes too).
            ("admin", Some("system:"), Err(())),
            ("masters", Some("sys"), Ok("sysmasters")),
        ];
        for (raw, prefix, expected) in cases {
            let got = map_username(raw, *prefix);
            match (expected, got) {
                (Ok(want), Ok(got)) => assert_eq!(&got, want),
                (Err(()), Err(UpstreamError::SystemIdentity(_))) => {}
                (expected, got) => panic!("{raw} {prefix:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn groups_table() {
        struct Case {
            claim: Value,
            filter: &'static [&'static str],
            prefix: Option<&'static str>,
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                claim: json!(["b", "a", "b"]),
                filter: &[],
                prefix: None,
                want: &["a", "b"],
            },
            Case {
                claim: json!("solo"),
                filter: &[],
                prefix: None,
                want: &["solo"],
            },
            Case {
                claim: json!(["x", 1, null, "", {"a": 1}]),
                filter: &[],
                prefix: None,
                want: &["x"],
            },
            Case {
                claim: json!(null),
                filter: &[],
                prefix: None,
                want: &[],
            },
            Case {
                claim: json!(42),
                filter: &[],
                prefix: None,
                want: &[],
            },
            Case {
                claim: json!(["k8s-admins", "k8s-viewers", "hr"]),
                filter: &["k8s-*"],
                prefix: None,
                want: &["k8s-admins", "k8s-viewers"],
            },
            Case {
                claim: json!(["k8s-admins", "hr", "eng"]),
                filter: &["k8s-*", "eng"],
                prefix: Some("okta:"),
                want: &["okta:eng", "okta:k8s-admins"],
            },
            // Filters apply before prefixing.
            Case {
                claim: json!(["dev"]),
                filter: &["okta:*"],
                prefix: Some("okta:"),
                want: &[],
            },
            Case {
                claim: json!(["system:masters", "dev"]),
                filter: &[],
                prefix: None,
                want: &["dev"],
            },
            Case {
                claim: json!(["system:masters", "dev"]),
                filter: &[],
                prefix: Some("okta:"),
                want: &["okta:dev"],
            },
            Case {
                claim: json!(["masters"]),
                filter: &[],
                prefix: Some("system:"),
                want: &[],
            },
            Case {
                claim: json!(["system:masters"]),
                filter: &["*"],
                prefix: None,
                want: &[],
            },
        ];
        for case in cases {
            let mut config = config();
            config.groups_filter = case.filter.iter().map(|s| (*s).to_owned()).collect();
            config.groups_prefix = case.prefix.map(str::to_owned);
            let input = claims(json!({"sub": "s", "groups": case.claim}));
            let identity = map_identity(&input, &config).unwrap();
            assert_eq!(identity.groups, case.want, "{input:?} {:?}", case.filter);
        }
    }

    #[test]
    fn groups_from_another_claim() {
        let mut config = config();
        config.groups_claim = "roles".into();
        let input = claims(json!({"sub": "s", "groups": ["ignored"], "roles": ["r"]}));
        assert_eq!(map_identity(&input, &config).unwrap().groups, ["r"]);
    }

    #[test]
    fn map_groups_is_sorted_and_deduplicated() {
        let got = map_groups(["c", "a", "c", "b", "a"], &[], Some("p:"));
        assert_eq!(got, ["p:a", "p:b", "p:c"]);
    }

    #[test]
    fn glob_table() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("k8s-*", "k8s-admins", true),
            ("k8s-*", "k8s-", true),
            ("k8s-*", "xk8s-admins", false),
            ("*-admins", "k8s-admins", true),
            ("*-admins", "k8s-admins-x", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a**c", "abc", true),
            ("*a*", "bab", true),
            ("a*a", "a", false),
            ("a?c", "abc", false),
            ("a.c", "abc", false),
            ("é*", "école", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_match(pattern, text), want, "{pattern:?} ~ {text:?}");
        }
    }
}

mod config_parsing {
    use super::*;

    #[test]
    fn defaults() {
        let config = parse("issuer: https://idp.example.com\nclient_id: hub\n").unwrap();
        assert_eq!(
            config.scopes,
            ["openid", "profile", "email", "groups", "offline_access"]
        );
        assert_eq!(config.username_claim, "preferred_username");
        assert_eq!(config.groups_claim, "groups");
        assert!(config.groups_filter.is_empty());
        assert_eq!(config.username_prefix, None);
        assert_eq!(config.groups_prefix, None);
        assert_eq!(config.recheck_interval, Duration::from_secs(300));
        assert!(!config.dangerous_allow_http_issuer);
        assert_eq!(config.client_secret_file, None);
    }

    #[test]
    fn every_field() {
        let config = parse(
            "issuer: https://example.okta.com/oauth2/default\nclient_id: hub\n\
             client_secret_file: /s\nscopes: [openid, email]\nusername_claim: email\n\
             groups_claim: roles\ngroups_filter: ['k8s-*']\nusername_prefix: 'okta:'\n\
             groups_prefix: 'okta:'\nrecheck_interval: 90s\n",
        )
        .unwrap();
        assert_eq!(config.issuer.path(), "/oauth2/default");
        assert_eq!(config.recheck_interval, Duration::from_secs(90));
        assert_eq!(config.groups_prefix.as_deref(), Some("okta:"));
        assert_eq!(config.groups_filter, ["k8s-*"]);
    }

    #[test]
    fn refusals() {
        let base = "client_id: hub\n";
        let cases = [
            (
                "issuer: https://idp\nclient_id: hub\nclient_secret: x\n",
                "client_secret",
            ),
            (
                "issuer: https://idp\nclient_id: hub\nrecheck_interval: 5\n",
                "duration",
            ),
            (
                "issuer: https://idp\nclient_id: hub\nrecheck_interval: 5 parsecs\n",
                "parsecs",
            ),
            (
                "issuer: https://idp\nclient_id: hub\nrecheck_interval: 0s\n",
                "recheck_interval",
            ),
            (
                "issuer: http://127.0.0.1:9000\nclient_id: hub\n",
                "dangerous_allow_http_issuer",
            ),
            ("issuer: ftp://idp\nclient_id: hub\n", "scheme"),
            ("issuer: https://u:p@idp\nclient_id: hub\n", "credentials"),
            ("issuer: https://idp/?a=b\nclient_id: hub\n", "query"),
            ("issuer: https://idp\nclient_id: ' '\n", "client_id"),
            (
                "issuer: https://idp\nclient_id: hub\nscopes: [email]\n",
                "openid",
            ),
            (
                "issuer: https://idp\nclient_id: hub\nscopes: [openid, 'a b']\n",
                "scope",
            ),
            (
                "issuer: https://idp\nclient_id: hub\ngroups_claim: ''\n",
                "groups_claim",
            ),
            (
                "issuer: https://idp\nclient_id: hub\ngroups_filter: ['']\n",
                "groups_filter",
            ),
            (
                "issuer: https://idp\nclient_id: hub\nusername_prefix: 'system:'\n",
                "username_prefix",
            ),
            (
                "issuer: https://idp\nclient_id: hub\ngroups_prefix: 'system:x'\n",
                "groups_prefix",
            ),
            (
                "issuer: https://idp\nclient_id: hub\ngroups_prefix: ''\n",
                "groups_prefix",
            ),
            ("issuer: https://idp\n", "client_id"),
            (base, "issuer"),
        ];
        for (yaml, needle) in cases {
            match parse(yaml) {
                Ok(config) => panic!("{yaml:?} parsed: {config:?}"),
                Err(err) => assert!(err.contains(needle), "{yaml:?}: {err}"),
            }
        }
    }

    #[test]
    fn http_issuer_with_the_dangerous_switch() {
        let config = parse(
            "issuer: http://127.0.0.1:9000\nclient_id: hub\ndangerous_allow_http_issuer: true\n",
        )
        .unwrap();
        assert_eq!(config.issuer.scheme(), "http");
    }

    #[test]
    fn recheck_due() {
        let config = config();
        let last = UnixTime::from_secs(1_000);
        assert!(!config.recheck_due(last, last));
        assert!(!config.recheck_due(last, UnixTime::from_secs(1_299)));
        assert!(config.recheck_due(last, UnixTime::from_secs(1_300)));
        assert!(config.recheck_due(UnixTime::from_secs(i64::MIN), last));
        assert!(!config.recheck_due(UnixTime::from_secs(i64::MAX), last));
    }
}

mod values {
    use super::*;

    #[test]
    fn pending_login_is_random_and_redacted() {
        let (a, challenge) = PendingLogin::generate();
        let (b, _) = PendingLogin::generate();
        for value in [&a.state, &a.nonce, &a.pkce_verifier] {
            // 32 bytes, base64url without padding.
            assert_eq!(value.len(), 43, "{}", value.len());
            assert!(
                value
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            );
        }
        assert_ne!(a.state, b.state);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.pkce_verifier, b.pkce_verifier);
        assert_ne!(a.state, a.nonce);
        assert_eq!(challenge.method().as_str(), "S256");
        assert_ne!(challenge.as_str(), a.pkce_verifier);

        let debug = format!("{a:?}");
        for secret in [&a.state, &a.nonce, &a.pkce_verifier] {
            assert!(!debug.contains(secret.as_str()), "{debug}");
        }
        let json = serde_json::to_string(&a).unwrap();
        let back: PendingLogin = serde_json::from_str(&json).unwrap();
        assert_eq!(back.state, a.state);
        assert_eq!(back.nonce, a.nonce);
        assert_eq!(back.pkce_verifier, a.pkce_verifier);
    }

    #[test]
    fn state_is_compared_whole() {
        let (pending, _) = PendingLogin::generate();
        assert!(pending.state_matches(&pending.state.clone()));
        assert!(!pending.state_matches(&pending.state[..42]));
        assert!(!pending.state_matches(""));
        assert!(!pending.state_matches(&pending.nonce));
    }

    #[test]
    fn grant_round_trip_and_redaction() {
        let grant = UpstreamGrant {
            access_token: Secret::new("at-SECRET"),
            refresh_token: Some(Secret::new("rt-SECRET")),
            access_expires_at: Some(UnixTime::from_secs(1_700_000_000)),
        };
        let back = UpstreamGrant::from_bytes(&grant.to_bytes()).unwrap();
        assert_eq!(back.access_token.expose(), "at-SECRET");
        assert_eq!(back.refresh_token.unwrap().expose(), "rt-SECRET");
        assert_eq!(back.access_expires_at, grant.access_expires_at);

        let debug = format!("{grant:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("1700000000"), "{debug}");

        let bare = UpstreamGrant {
            access_token: Secret::new("a\"b\\c"),
            refresh_token: None,
            access_expires_at: None,
        };
        let back = UpstreamGrant::from_bytes(&bare.to_bytes()).unwrap();
        assert_eq!(back.access_token.expose(), "a\"b\\c");
        assert!(back.refresh_token.is_none());
        assert!(back.access_expires_at.is_none());
    }

    #[test]
    fn grant_garbage_is_an_error_without_content() {
        for bytes in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"refresh_token\":\"rt-SECRET\"}",
            b"{\"access_token\":\"a\",\"x\":1}",
        ] {
            let err = UpstreamGrant::from_bytes(bytes).unwrap_err();
            assert!(matches!(err, UpstreamError::GrantFormat(_)), "{err:?}");
            assert!(!err.to_string().contains("rt-SECRET"), "{err}");
        }
    }

    #[test]
    fn identity_serde() {
        let identity = Identity {
            subject: "s".into(),
            username: "u".into(),
            groups: vec!["g".into()],
        };
        let json = serde_json::to_value(&identity).unwrap();
        assert_eq!(
            json,
            json!({"subject": "s", "username": "u", "groups": ["g"]})
        );
        assert_eq!(serde_json::from_value::<Identity>(json).unwrap(), identity);
    }
}

mod client_parts {
    use openidconnect::core::CoreJwsSigningAlgorithm as Alg;

    use super::client::{asymmetric_algs, read_secret_file};
    use super::*;

    #[test]
    fn hmac_and_none_are_never_accepted() {
        let got = asymmetric_algs(&[
            Alg::HmacSha256,
            Alg::RsaSsaPkcs1V15Sha256,
            Alg::None,
            Alg::EcdsaP256Sha256,
        ]);
        assert_eq!(got, [Alg::RsaSsaPkcs1V15Sha256, Alg::EcdsaP256Sha256]);
        assert_eq!(
            asymmetric_algs(&[Alg::HmacSha512]),
            [Alg::RsaSsaPkcs1V15Sha256]
        );
        assert_eq!(asymmetric_algs(&[]), [Alg::RsaSsaPkcs1V15Sha256]);
    }

    #[test]
    fn token_errors() {
        use openidconnect::core::CoreErrorResponseType as Code;
        use openidconnect::{RequestTokenError, StandardErrorResponse};

        use super::client::{TokenOp, token_error};

        let server = |code: Code| {
            RequestTokenError::ServerResponse(StandardErrorResponse::new(
                code,
                Some("the description".into()),
                None,
            ))
        };
        let err = token_error(server(Code::InvalidGrant), TokenOp::Refresh);
        assert!(matches!(err, UpstreamError::AccountRevoked), "{err:?}");
        // A bad code or PKCE verifier is not a revoked account.
        let err = token_error(server(Code::InvalidGrant), TokenOp::Exchange);
        assert!(
            matches!(&err, UpstreamError::Exchange(m) if m == "invalid_grant: the description"),
            "{err:?}"
        );
        let err = token_error(server(Code::InvalidClient), TokenOp::Refresh);
        assert!(
            matches!(&err, UpstreamError::Refresh(m) if m.starts_with("invalid_client")),
            "{err:?}"
        );
        let err = token_error(RequestTokenError::Other("odd".into()), TokenOp::Exchange);
        assert!(matches!(err, UpstreamError::Exchange(_)), "{err:?}");
    }

    #[test]
    fn userinfo_errors() {
        use openidconnect::UserInfoError;

        use super::client::userinfo_error;

        let response = |status: u16| {
            UserInfoError::Response(
                ::http::StatusCode::from_u16(status).unwrap(),
                b"{\"error\":\"invalid_token\"}".to_vec(),
                "unexpected HTTP status code".into(),
            )
        };
        assert!(matches!(
            userinfo_error(response(401)),
            UpstreamError::AccountRevoked
        ));
        let err = userinfo_error(response(503));
        assert!(
            matches!(&err, UpstreamError::Userinfo(m) if m.contains("503")),
            "{err:?}"
        );
        assert!(!err.is_transient());
        assert_eq!(err.outcome(), "error");
        assert_eq!(UpstreamError::AccountRevoked.outcome(), "revoked");
        assert!(UpstreamError::Http("timeout".into()).is_transient());
    }

    #[test]
    fn secret_file_is_trimmed_and_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  s3cr3t-value \n").unwrap();
        assert_eq!(read_secret_file(&path).unwrap().expose(), "s3cr3t-value");

        std::fs::write(&path, " \n").unwrap();
        let err = read_secret_file(&path).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(err.to_string().contains("secret"), "{err}");

        let missing = dir.path().join("missing");
        let err = read_secret_file(&missing).unwrap_err();
        assert!(matches!(err, UpstreamError::SecretFile { .. }), "{err:?}");
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[tokio::test]
    async fn discovery_failure_names_the_issuer() {
        // A closed loopback port: refused at once, no real network.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut config = UpstreamConfig::new(
            Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            "hub",
        );
        let redirect = Url::parse("http://127.0.0.1:1/callback").unwrap();
        let err = Upstream::discover(&config, redirect.clone())
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Config(_)), "{err:?}");

        config.dangerous_allow_http_issuer = true;
        let err = Upstream::discover(&config, redirect).await.unwrap_err();
        assert!(matches!(err, UpstreamError::Discovery { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[test]
    fn calls_are_send() {
        fn send<T: Send>(_: &T) {}
        fn check(upstream: &Upstream, grant: &UpstreamGrant, pending: &PendingLogin) {
            send(&upstream.complete("code", pending));
            send(&upstream.revalidate(grant));
            send(&Upstream::discover(
                upstream.config(),
                Url::parse("https://h/cb").unwrap(),
            ));
        }
        let _ = check;
    }
}
