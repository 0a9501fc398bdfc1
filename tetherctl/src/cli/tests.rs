use clap::{CommandFactory as _, Parser as _};
use tether_common::time::{ManualClock, UnixTime};

use super::*;
use crate::fake_hub::run_cli;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("tetherctl").chain(args.iter().copied())).unwrap()
}

#[test]
fn the_command_line_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn hub_goes_before_or_after_the_user_command() {
    for args in [
        &["login", "--hub", "https://h"][..],
        &["--hub", "https://h", "login"][..],
    ] {
        let Command::Login(login) = parse(args).command else {
            panic!("not login");
        };
        assert_eq!(login.hub.hub.as_deref(), Some("https://h"), "{args:?}");
    }
    let cli = parse(&[
        "credential",
        "--hub",
        "https://h",
        "--cluster",
        "a",
        "--token-file",
        "/var/run/secrets/token",
    ]);
    let Command::Credential(c) = cli.command else {
        panic!("not credential");
    };
    assert_eq!(
        c.token_file.as_deref(),
        Some(std::path::Path::new("/var/run/secrets/token"))
    );
    assert_eq!(c.cluster.unwrap().as_str(), "a");
}

#[test]
fn admin_commands_still_take_their_global_flags() {
    let cli = parse(&[
        "--hub",
        "https://g:8443",
        "--ca-file",
        "/ca",
        "cluster",
        "list",
    ]);
    assert_eq!(cli.admin.hub.as_deref(), Some("https://g:8443"));
    assert_eq!(
        cli.admin.ca_file.as_deref(),
        Some(std::path::Path::new("/ca"))
    );
    assert!(matches!(cli.command, Command::Cluster(_)));
}

#[test]
fn the_kubectl_plugin_name_shows_in_help() {
    let help = Cli::command()
        .name("kubectl tether")
        .bin_name("kubectl tether")
        .render_help()
        .to_string();
    assert!(help.contains("Usage: kubectl tether"), "{help}");
}

#[tokio::test]
async fn admin_tls_flags_are_refused_by_user_commands() {
    let clock = ManualClock::new(UnixTime::from_secs(1));
    let out = run_cli(
        &["login", "--hub", "https://h", "--ca-hash", "sha256:00"],
        &[],
        &clock,
    )
    .await;
    let err = out.result.unwrap_err();
    assert!(err.to_string().contains("--hub-ca"), "{err}");
    assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
}
