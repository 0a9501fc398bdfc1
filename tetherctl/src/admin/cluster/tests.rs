use std::io::Write;

use clap::Parser;
use tether_common::time::ManualClock;

use super::*;
use crate::cli::{self, Cli};
use crate::error::{EXIT_FAILURE, EXIT_USAGE};
use crate::test_support::{FakeAdmin, GOOD_TOKEN, JOIN_COMMAND, Pki, serve};
use tether_common::pin::CaPin;

// ---- names, labels, ttl ----

#[test]
fn cluster_names_are_dns1123_labels() {
    for good in ["a", "prod-eu-1", "0abc", &"a".repeat(63)] {
        assert!(good.parse::<ClusterName>().is_ok(), "{good}");
    }
    for (bad, why) in [
        ("", "empty"),
        ("Prod", "'P' is not allowed"),
        ("a_b", "'_' is not allowed"),
        ("a.b", "'.' is not allowed"),
        ("-a", "start and end"),
        ("a-", "start and end"),
        (&"a".repeat(64), "at most 63"),
    ] {
        let err = bad.parse::<ClusterName>().unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn labels_follow_kubernetes_syntax() {
    for good in [
        "env=prod",
        "env=",
        "app.kubernetes.io/name=tether",
        "Team_A=Blue.2",
        &format!("k={}", "v".repeat(63)),
    ] {
        let label: Label = good.parse().unwrap();
        assert_eq!(label.to_string(), good);
    }
    for (bad, why) in [
        ("env", "expected KEY=VALUE"),
        ("=prod", "key: must not be empty"),
        ("env=a b", "value: ' ' is not allowed"),
        ("env=-x", "value: must start and end"),
        ("Example.com/x=y", "key prefix"),
        ("a/b/c=d", "key name"),
        ("/x=y", "key prefix"),
        ("x/=y", "key name"),
        (&format!("k={}", "v".repeat(64)), "at most 63"),
    ] {
        let err = bad.parse::<Label>().unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn duplicate_label_keys_are_refused() {
    let labels: Vec<Label> = ["a=1", "b=2"].iter().map(|l| l.parse().unwrap()).collect();
    assert_eq!(label_map(&labels).unwrap().len(), 2);
    let labels: Vec<Label> = ["a=1", "a=2"].iter().map(|l| l.parse().unwrap()).collect();
    let err = label_map(&labels).unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
    assert_eq!(err.exit_code(), EXIT_USAGE);
}

#[test]
fn ttls() {
    assert_eq!("1h".parse::<Ttl>().unwrap().as_secs(), 3600);
    assert_eq!("1h30m".parse::<Ttl>().unwrap().as_secs(), 5400);
    assert_eq!("24h".parse::<Ttl>().unwrap().as_secs(), 86_400);
    assert!("25h".parse::<Ttl>().unwrap_err().contains("at most 24h"));
    assert!("0s".parse::<Ttl>().is_err());
    assert!("1500ms".parse::<Ttl>().is_err());
    assert!("soon".parse::<Ttl>().unwrap_err().contains("write it like"));
}

#[test]
fn command_line_parses() {
    let cli = Cli::try_parse_from([
        "tetherctl",
        "cluster",
        "add",
        "prod-1",
        "--label",
        "env=prod",
        "-l",
        "team=a",
        "--ttl",
        "2h",
        "--hub",
        "https://h",
    ])
    .unwrap();
    assert_eq!(cli.admin.hub.as_deref(), Some("https://h"));
    let cli::Command::Cluster(ClusterArgs {
        command: ClusterCommand::Add { name, labels, ttl },
    }) = cli.command
    else {
        panic!("not cluster add");
    };
    assert_eq!(name.as_str(), "prod-1");
    assert_eq!(labels.len(), 2);
    assert_eq!(ttl.map(Ttl::as_secs), Some(7200));

    let cli = Cli::try_parse_from([
        "tetherctl",
        "--hub",
        "https://h",
        "cluster",
        "ls",
        "-o",
        "json",
    ])
    .unwrap();
    assert!(matches!(
        cli.command,
        cli::Command::Cluster(ClusterArgs {
            command: ClusterCommand::List {
                output: OutputFormat::Json
            }
        })
    ));
}

#[test]
fn bad_command_lines_are_usage_errors() {
    for argv in [
        &["tetherctl", "cluster", "add", "Bad_Name"][..],
        &["tetherctl", "cluster", "add", "ok", "--label", "nope"],
        &["tetherctl", "cluster", "add", "ok", "--ttl", "48h"],
        &["tetherctl", "cluster", "list", "-o", "yaml"],
        &["tetherctl", "cluster", "add", "ok", "--token", "secret"],
    ] {
        let err = Cli::try_parse_from(argv).unwrap_err();
        assert!(err.use_stderr(), "{argv:?}");
    }
}

#[test]
fn help_lists_cluster() {
    use clap::CommandFactory;
    let help = Cli::command().render_help().to_string();
    assert!(help.contains("cluster"), "{help}");
    assert!(help.contains("--token-file"), "{help}");
    assert!(!help.contains("--token "), "{help}");
}

// ---- against a fake hub on a loopback port ----

/// What a run printed and returned.
struct Run {
    stdout: String,
    stderr: String,
    result: crate::Result<()>,
}

async fn run(argv: &[&str], env: &[(&str, &str)]) -> Run {
    let vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let clock = ManualClock::new(UnixTime::from_secs(1_000_000));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let cli = Cli::try_parse_from(argv).unwrap();
    let mut cx = Context {
        env: &env,
        clock: &clock,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let result = cli::run(&cli, &mut cx).await;
    Run {
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
        result,
    }
}

struct Hub {
    fake: FakeAdmin,
    pki: Pki,
    url: String,
    pin: String,
}

async fn hub() -> Hub {
    let pki = Pki::new();
    let fake = FakeAdmin::default();
    let addr = serve(fake.clone(), &pki).await;
    Hub {
        pin: CaPin::of_spki(&pki.ca_spki).to_string(),
        url: format!("https://localhost:{}", addr.port()),
        fake,
        pki,
    }
}

#[tokio::test]
async fn add_sends_the_bearer_and_prints_only_the_join_command() {
    let hub = hub().await;
    let r = run(
        &[
            "tetherctl",
            "cluster",
            "add",
            "beta",
            "--label",
            "env=dev",
            "--ttl",
            "30m",
            "--hub",
            &hub.url,
            "--ca-hash",
            &hub.pin,
        ],
        &[("TETHER_ADMIN_TOKEN", GOOD_TOKEN)],
    )
    .await;
    r.result.unwrap();
    assert_eq!(r.stdout, format!("{JOIN_COMMAND}\n"));
    assert!(r.stderr.contains("works once"), "{}", r.stderr);
    assert!(
        r.stderr.contains("expires at 1970-01-12T14:46:40Z (in 1h)"),
        "{}",
        r.stderr
    );

    let seen = hub.fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "AddCluster");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {GOOD_TOKEN}"))
    );
    assert!(seen[0].grpc_timeout.is_some(), "no grpc-timeout sent");
    let added = hub.fake.added.lock().unwrap().clone();
    assert_eq!(added[0].name, "beta");
    assert_eq!(added[0].labels.get("env").map(String::as_str), Some("dev"));
    assert_eq!(added[0].token_ttl_seconds, 1800);
}

#[tokio::test]
async fn ca_file_and_token_file_work_too() {
    let hub = hub().await;
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(hub.pki.ca_pem.as_bytes()).unwrap();
    let mut token = tempfile::NamedTempFile::new().unwrap();
    writeln!(token, "{GOOD_TOKEN}").unwrap();
    let r = run(
        &[
            "tetherctl",
            "cluster",
            "add",
            "gamma",
            "--token-file",
            token.path().to_str().unwrap(),
        ],
        &[
            ("TETHER_HUB_GRPC_URL", &hub.url),
            ("TETHER_HUB_GRPC_CA", ca.path().to_str().unwrap()),
        ],
    )
    .await;
    r.result.unwrap();
    assert_eq!(r.stdout, format!("{JOIN_COMMAND}\n"));
    // Omitted --ttl leaves the hub's default.
    assert_eq!(hub.fake.added.lock().unwrap()[0].token_ttl_seconds, 0);
}

#[tokio::test]
async fn list_prints_a_table_and_json() {
    let hub = hub().await;
    let env = [
        ("TETHER_ADMIN_TOKEN", GOOD_TOKEN),
        ("TETHER_HUB_CA_HASH", hub.pin.as_str()),
    ];
    let r = run(&["tetherctl", "cluster", "list", "--hub", &hub.url], &env).await;
    r.result.unwrap();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[0].starts_with("NAME    STATE    CONNECTED   LAST SEEN"),
        "{}",
        r.stdout
    );
    assert!(
        lines[1].starts_with("alpha   joined   yes         42s ago"),
        "{}",
        r.stdout
    );
    assert!(lines[1].ends_with("env=prod"), "{}", r.stdout);

    let r = run(
        &[
            "tetherctl",
            "cluster",
            "list",
            "-o",
            "json",
            "--hub",
            &hub.url,
        ],
        &env,
    )
    .await;
    r.result.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["clusters"][0]["name"], "alpha");
    assert_eq!(v["clusters"][0]["labels"]["env"], "prod");
}

#[tokio::test]
async fn hub_errors_become_clear_messages() {
    let hub = hub().await;
    let base = ["--hub", hub.url.as_str(), "--ca-hash", hub.pin.as_str()];
    let argv = |cmd: &[&'static str]| -> Vec<String> {
        ["tetherctl"]
            .iter()
            .chain(cmd)
            .chain(&base)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let call = |argv: Vec<String>, token: &'static str| async move {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        run(&argv, &[("TETHER_ADMIN_TOKEN", token)]).await
    };

    let r = call(argv(&["cluster", "list"]), "stale-token").await;
    let err = r.result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the admin token was refused: mint a new one with `tether-hub admin-token`"
    );
    assert_eq!(err.exit_code(), EXIT_FAILURE);
    assert_eq!(r.stdout, "");

    let err = call(argv(&["cluster", "remove", "nope"]), GOOD_TOKEN)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.to_string(), "no cluster named \"nope\"");

    let err = call(argv(&["cluster", "add", "alpha"]), GOOD_TOKEN)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.to_string(), "cluster \"alpha\" already exists");

    let r = call(argv(&["cluster", "rm", "alpha"]), GOOD_TOKEN).await;
    r.result.unwrap();
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "Cluster \"alpha\" removed.\n");
}

#[tokio::test]
async fn a_wrong_pin_never_sends_the_token() {
    let hub = hub().await;
    let other = CaPin::of_spki(&Pki::new().ca_spki).to_string();
    let r = run(
        &[
            "tetherctl",
            "cluster",
            "list",
            "--hub",
            &hub.url,
            "--ca-hash",
            &other,
        ],
        &[("TETHER_ADMIN_TOKEN", GOOD_TOKEN)],
    )
    .await;
    let err = r.result.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot reach the hub at https://localhost:"),
        "{err}"
    );
    assert!(
        err.report().contains("matches --ca-hash"),
        "{}",
        err.report()
    );
    assert_eq!(err.exit_code(), EXIT_FAILURE);
    assert!(hub.fake.seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_hub_is_named() {
    // Bind and drop to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}");
    let pin = CaPin::of_spki(&Pki::new().ca_spki).to_string();
    let r = run(
        &[
            "tetherctl",
            "cluster",
            "list",
            "--hub",
            &url,
            "--ca-hash",
            &pin,
        ],
        &[("TETHER_ADMIN_TOKEN", GOOD_TOKEN)],
    )
    .await;
    let err = r.result.unwrap_err();
    assert_eq!(err.to_string(), format!("cannot reach the hub at {url}"));
}

#[tokio::test]
async fn local_validation_happens_before_connecting() {
    // No hub, CA or token configured: a bad label is still reported as the label problem.
    let labels: Vec<Label> = vec!["a=1".parse().unwrap(), "a=2".parse().unwrap()];
    let args = ClusterArgs {
        command: ClusterCommand::Add {
            name: "x".parse().unwrap(),
            labels,
            ttl: None,
        },
    };
    let clock = ManualClock::new(UnixTime::from_secs(0));
    let env = |_: &str| None;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut cx = Context {
        env: &env,
        clock: &clock,
        stdout: &mut out,
        stderr: &mut err,
    };
    let e = super::run(&args, &AdminArgs::default(), &mut cx)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("more than once"), "{e}");
}
