use tonic::Status;

use super::*;

const URL: &str = "https://hub.test:8443";

#[test]
fn unauthenticated_says_how_to_get_a_token() {
    let e = Error::from_status(Status::unauthenticated("token expired at ..."), URL);
    assert_eq!(
        e.to_string(),
        "the admin token was refused: mint a new one with `tether-hub admin-token`"
    );
    assert_eq!(e.exit_code(), EXIT_FAILURE);
}

#[test]
fn unavailable_names_the_hub() {
    let e = Error::from_status(Status::unavailable("connection reset"), URL);
    assert_eq!(
        e.to_string(),
        "cannot reach the hub at https://hub.test:8443"
    );
    assert_eq!(
        e.report(),
        "cannot reach the hub at https://hub.test:8443: connection reset"
    );
    assert_eq!(e.exit_code(), EXIT_FAILURE);
}

#[test]
fn rejections_show_the_server_message() {
    for status in [
        Status::not_found("no cluster named \"x\""),
        Status::already_exists("no cluster named \"x\""),
        Status::invalid_argument("no cluster named \"x\""),
        Status::failed_precondition("no cluster named \"x\""),
    ] {
        let e = Error::from_status(status, URL);
        assert_eq!(e.to_string(), "no cluster named \"x\"");
        assert_eq!(e.exit_code(), EXIT_FAILURE);
    }
}

#[test]
fn other_statuses_keep_code_and_message() {
    let e = Error::from_status(Status::internal("database is locked"), URL);
    assert_eq!(
        e.to_string(),
        "the hub answered Internal: database is locked"
    );
    let e = Error::from_status(Status::permission_denied("not an admin"), URL);
    assert_eq!(
        e.to_string(),
        "the admin token is not allowed to do this: not an admin"
    );
}

#[test]
fn usage_errors_exit_64() {
    let usage = [
        Error::invalid("label", "a b", "bad"),
        Error::Missing("x"),
        Error::Conflict("x"),
        Error::ReadFile {
            what: "--token-file",
            path: "/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        },
        Error::BadFile {
            what: "--ca-file",
            path: "/x".into(),
            reason: "empty".into(),
        },
        Error::BadToken("x"),
    ];
    for e in usage {
        assert_eq!(e.exit_code(), EXIT_USAGE, "{e}");
    }
    let timeout = Error::Timeout {
        url: URL.into(),
        timeout: Duration::from_secs(10),
    };
    assert_eq!(timeout.exit_code(), EXIT_FAILURE);
    assert_eq!(
        timeout.to_string(),
        "the hub at https://hub.test:8443 did not answer within 10s"
    );
}

#[test]
fn report_prints_each_cause_once() {
    let e = Error::ReadFile {
        what: "--token-file",
        path: "/etc/tether/token".into(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "No such file"),
    };
    assert_eq!(
        e.report(),
        "cannot read --token-file /etc/tether/token: No such file"
    );
}
