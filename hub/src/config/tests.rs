//! Config parsing and validation, from strings only.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn example() -> String {
    EXAMPLE.to_owned()
}

fn parse_err(text: &str) -> ConfigError {
    match Config::from_yaml(text) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(err) => err,
    }
}

#[test]
fn example_parses_and_validates() {
    let config = Config::from_yaml(EXAMPLE).unwrap();
    assert_eq!(config.issuer.as_str(), "https://hub.example.com");
    assert_eq!(config.listen, "0.0.0.0:8443".parse::<SocketAddr>().unwrap());
    assert_eq!(
        config.tokens.cluster_token_lifetime.as_duration(),
        Duration::from_secs(60)
    );
    assert!(config.upstream.is_some());
    assert_eq!(config.telemetry.log_format, LogFormat::Json);
}

#[test]
fn unknown_field_is_rejected_with_its_path() {
    let text = example().replace("  clock_skew: 30s", "  clock_skew: 30s\n  clock_skwe: 30s");
    let err = parse_err(&text);
    let message = err.to_string();
    assert!(message.starts_with("keys"), "{message}");
    assert!(message.contains("clock_skwe"), "{message}");
}

#[test]
fn unknown_top_level_field_is_rejected() {
    let err = parse_err(&format!("{}\nlisten_addr: 1.2.3.4:5\n", example()));
    assert!(err.to_string().contains("listen_addr"), "{err}");
}

#[test]
fn bad_duration_names_field_and_value() {
    let text = example().replace("rotation_interval: 24h", "rotation_interval: 5 parsecs");
    let err = parse_err(&text);
    assert_eq!(err.field(), Some("keys.rotation_interval"));
    let message = err.to_string();
    assert!(
        message.starts_with("keys.rotation_interval: invalid duration \"5 parsecs\""),
        "{message}"
    );
}

#[test]
fn bad_url_names_field() {
    let text = example().replace("issuer: https://idp.example.com", "issuer: not a url");
    let err = parse_err(&text);
    assert_eq!(err.field(), Some("upstream.issuer"), "{err}");
    assert!(err.to_string().contains("not a url"), "{err}");
}

#[test]
fn bad_address_names_field() {
    let text = example().replace("listen: 0.0.0.0:9464", "listen: localhost");
    let err = parse_err(&text);
    assert_eq!(err.field(), Some("metrics.listen"), "{err}");
}

#[test]
fn missing_section_is_named() {
    let text = example().replace("metrics:\n  listen: 0.0.0.0:9464\n", "");
    let err = parse_err(&text);
    assert!(err.to_string().contains("metrics"), "{err}");
}

#[test]
fn http_issuer_needs_the_dangerous_switch() {
    let text = example().replace(
        "issuer: https://hub.example.com",
        "issuer: http://hub.example.com",
    );
    let err = parse_err(&text);
    assert_eq!(err.field(), Some("issuer"), "{err}");

    let allowed = format!("{text}\ndangerous_allow_http_issuer: true\n");
    let config = Config::from_yaml(&allowed).unwrap();
    assert_eq!(config.issuer.as_str(), "http://hub.example.com");
}

#[test]
fn issuer_is_canonical_without_trailing_slash() {
    let text = example().replace(
        "issuer: https://hub.example.com",
        "issuer: https://hub.example.com/",
    );
    let config = Config::from_yaml(&text).unwrap();
    assert_eq!(config.issuer.as_str(), "https://hub.example.com");
    assert_eq!(
        config.issuer.endpoint("/.well-known/openid-configuration"),
        "https://hub.example.com/.well-known/openid-configuration"
    );
}

#[test]
fn issuer_with_query_is_rejected() {
    let text = example().replace(
        "issuer: https://hub.example.com",
        "issuer: https://hub.example.com/?a=b",
    );
    assert_eq!(parse_err(&text).field(), Some("issuer"));
}

#[test]
fn publish_lead_must_exceed_jwks_max_age() {
    let text = example().replace("publish_lead: 10m", "publish_lead: 5s");
    let err = parse_err(&text);
    assert_eq!(err.field(), Some("keys.publish_lead"), "{err}");
}

#[test]
fn tls_needs_exactly_one_source() {
    let text = example().replace("  key_file: /etc/tether/tls/tls.key\n", "");
    assert_eq!(parse_err(&text).field(), Some("tls.key_file"));

    let text = example().replace("  # self_signed: true\n", "  self_signed: true\n");
    assert_eq!(parse_err(&text).field(), Some("tls.self_signed"));
}

#[test]
fn bad_log_level_is_named() {
    let text = example().replace("log_level: info", "log_level: \"info,=[\"");
    assert_eq!(parse_err(&text).field(), Some("telemetry.log_level"));
}

#[test]
fn listen_override_replaces_both_listeners() {
    let mut config = Config::from_yaml(EXAMPLE).unwrap();
    let listen: SocketAddr = "127.0.0.1:18443".parse().unwrap();
    let metrics_listen: SocketAddr = "127.0.0.1:19464".parse().unwrap();
    config
        .apply_overrides(&Overrides {
            listen: Some(listen),
            metrics_listen: Some(metrics_listen),
            grpc_listen: None,
        })
        .unwrap();
    assert_eq!(config.listen, listen);
    assert_eq!(config.metrics.listen, metrics_listen);
}

#[test]
fn override_colliding_with_metrics_is_rejected() {
    let mut config = Config::from_yaml(EXAMPLE).unwrap();
    let err = config
        .apply_overrides(&Overrides {
            listen: Some("0.0.0.0:9464".parse().unwrap()),
            metrics_listen: None,
            grpc_listen: None,
        })
        .unwrap_err();
    assert_eq!(err.field(), Some("metrics.listen"));
}

#[test]
fn dev_config_follows_the_bound_port() {
    let options = DevOptions {
        data_dir: PathBuf::from("/tmp/tether dev \"quoted\""),
        listen: "127.0.0.1:18443".parse().unwrap(),
        metrics_listen: "127.0.0.1:19464".parse().unwrap(),
    };
    let config = Config::dev(&options).unwrap();
    assert_eq!(config.issuer.as_str(), "https://127.0.0.1:18443");
    assert_eq!(config.listen, options.listen);
    assert!(config.tls.self_signed);
    assert_eq!(
        config.tls.self_signed_dir.as_deref(),
        Some(options.data_dir.as_path())
    );
    assert_eq!(config.keys.kek_file, options.kek_file());
    assert!(config.upstream.is_none());
}

#[test]
fn default_dev_data_dir_prefers_xdg() {
    fn env(
        xdg: Option<&'static str>,
        home: Option<&'static str>,
    ) -> impl Fn(&str) -> Option<OsString> {
        move |name| match name {
            "XDG_DATA_HOME" => xdg.map(OsString::from),
            "HOME" => home.map(OsString::from),
            _ => None,
        }
    }
    assert_eq!(
        default_dev_data_dir(env(Some("/xdg"), Some("/home/a"))),
        Some(PathBuf::from("/xdg/tether/hub-dev"))
    );
    assert_eq!(
        default_dev_data_dir(env(Some(""), Some("/home/a"))),
        Some(PathBuf::from("/home/a/.local/share/tether/hub-dev"))
    );
    assert_eq!(default_dev_data_dir(env(None, None)), None);
}

#[test]
fn example_upstream_section() {
    let config = Config::from_yaml(EXAMPLE).unwrap();
    let upstream = config.upstream.unwrap();
    assert_eq!(upstream.issuer.as_str(), "https://idp.example.com/");
    assert_eq!(upstream.username_claim, "preferred_username");
    assert_eq!(upstream.groups_filter, ["k8s-*"]);
    assert_eq!(upstream.recheck_interval, Duration::from_secs(300));
    assert!(upstream.scopes.iter().any(|s| s == "offline_access"));
    assert!(!upstream.dangerous_allow_http_issuer);
}

#[test]
fn http_upstream_issuer_needs_its_own_switch() {
    let text = example().replace(
        "issuer: https://idp.example.com",
        "issuer: http://127.0.0.1:9000",
    );
    let err = parse_err(&text);
    assert_eq!(err.field(), Some("upstream.issuer"), "{err}");
    // The hub's own switch does not cover the upstream issuer.
    let err = parse_err(&format!("{text}\ndangerous_allow_http_issuer: true\n"));
    assert_eq!(err.field(), Some("upstream.issuer"), "{err}");

    let allowed = text.replace(
        "  # dangerous_allow_http_issuer: false",
        "  dangerous_allow_http_issuer: true",
    );
    let config = Config::from_yaml(&allowed).unwrap();
    assert_eq!(config.upstream.unwrap().issuer.scheme(), "http");
}

#[test]
fn upstream_system_prefix_is_refused() {
    let text = example().replace("# groups_prefix: \"okta:\"", "groups_prefix: \"system:\"");
    let err = parse_err(&text);
    assert_eq!(err.field(), Some("upstream.groups_prefix"), "{err}");
}
