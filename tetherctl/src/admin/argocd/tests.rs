use clap::Parser;
use tether_common::time::{ManualClock, UnixTime};

use super::*;
use crate::cli::{self, Cli, Command};
use crate::error::{EXIT_FAILURE, EXIT_USAGE, Error};
use crate::test_support::{ARGOCD_JSON, ARGOCD_YAML, FakeAdmin, GOOD_TOKEN, Pki, serve};
use tether_common::pin::CaPin;

struct Run {
    stdout: String,
    stderr: String,
    result: crate::Result<()>,
}

async fn run(argv: &[&str]) -> Run {
    let env = |name: &str| (name == "TETHER_ADMIN_TOKEN").then(|| GOOD_TOKEN.to_owned());
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

/// A fake hub; returns it with the connection flags for it.
async fn hub() -> (FakeAdmin, Vec<String>) {
    let pki = Pki::new();
    let fake = FakeAdmin::default();
    let addr = serve(fake.clone(), &pki).await;
    let flags = vec![
        "--hub".to_owned(),
        format!("https://localhost:{}", addr.port()),
        "--ca-hash".to_owned(),
        CaPin::of_spki(&pki.ca_spki).to_string(),
    ];
    (fake, flags)
}

fn argv<'a>(words: &[&'a str], flags: &'a [String]) -> Vec<&'a str> {
    let mut argv = vec!["tetherctl"];
    argv.extend_from_slice(words);
    argv.extend(flags.iter().map(String::as_str));
    argv
}

#[test]
fn command_line_parses() {
    let cli = Cli::try_parse_from(["tetherctl", "argocd", "secret", "alpha"]).unwrap();
    let Command::ArgoCd(args) = cli.command else {
        panic!("not argocd: {cli:?}");
    };
    let ArgoCdCommand::Secret { name, output } = args.command;
    assert_eq!(name.as_str(), "alpha");
    assert_eq!(output, SecretFormat::Yaml);
    let cli =
        Cli::try_parse_from(["tetherctl", "argocd", "secret", "alpha", "-o", "json"]).unwrap();
    let Command::ArgoCd(ArgoCdArgs {
        command: ArgoCdCommand::Secret { output, .. },
    }) = cli.command
    else {
        panic!("not argocd");
    };
    assert_eq!(output, SecretFormat::Json);
    for bad in [
        vec!["tetherctl", "argocd", "secret"],
        vec!["tetherctl", "argocd", "secret", "Not_A_Name"],
        vec!["tetherctl", "argocd", "secret", "alpha", "-o", "table"],
    ] {
        assert!(Cli::try_parse_from(&bad).is_err(), "{bad:?} parsed");
    }
}

#[tokio::test]
async fn prints_the_yaml_or_json_the_hub_rendered() {
    let (fake, flags) = hub().await;
    let r = run(&argv(&["argocd", "secret", "alpha"], &flags)).await;
    r.result.unwrap();
    assert_eq!(r.stdout, ARGOCD_YAML);
    assert!(
        r.stderr.contains("label not copied: Bad Key: invalid"),
        "{}",
        r.stderr
    );
    let r = run(&argv(&["argocd", "secret", "alpha", "-o", "json"], &flags)).await;
    r.result.unwrap();
    assert_eq!(r.stdout, ARGOCD_JSON);
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.method == "ArgoCdSecret"));
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(&*format!("Bearer {GOOD_TOKEN}"))
    );
}

#[tokio::test]
async fn hub_refusals_are_clear_failures() {
    let (_, flags) = hub().await;
    let r = run(&argv(&["argocd", "secret", "gone"], &flags)).await;
    let err = r.result.unwrap_err();
    assert!(matches!(err, Error::Rejected(_)), "{err:?}");
    assert_eq!(err.exit_code(), EXIT_FAILURE);
    assert!(err.to_string().contains("not registered"), "{err}");
    assert!(r.stdout.is_empty());
    let r = run(&argv(&["argocd", "secret", "pending"], &flags)).await;
    let err = r.result.unwrap_err();
    assert!(err.to_string().contains("not joined"), "{err}");
}

#[tokio::test]
async fn no_hub_url_is_a_usage_error() {
    let r = run(&["tetherctl", "argocd", "secret", "alpha"]).await;
    assert_eq!(r.result.unwrap_err().exit_code(), EXIT_USAGE);
}
