//! Fixtures fail fast and say why: a taken port names the part, a missing binary names the
//! part and the install script.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use tether_e2e::{
    Deps, Error, Etcd, IdpOptions, Postgres, ProcessGuard, TestDir, UpstreamIdp, free_port,
    workspace_bin,
};

#[tokio::test]
async fn taken_port_fails_at_once_naming_the_part() {
    let dir = TestDir::new("ports").expect("test dir");
    let port = free_port().expect("port");
    let _taken = TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let start = Instant::now();

    let err = Etcd::start_on(&dir, Some(port))
        .await
        .expect_err("etcd on a taken port");
    assert!(matches!(err, Error::PortInUse { .. }), "{err}");
    assert!(
        err.to_string().contains("etcd") && err.to_string().contains(&port.to_string()),
        "{err}"
    );
    let err = UpstreamIdp::start(&dir, IdpOptions::new().port(port))
        .await
        .expect_err("idp on a taken port");
    assert!(err.to_string().contains("idp"), "{err}");
    let err = Postgres::start_on(&dir, Some(port))
        .await
        .expect_err("postgres on a taken port");
    assert!(err.to_string().contains("postgres"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn address_in_use_in_the_childs_log_is_reported() {
    // The port is taken after the pre-check (a race): the child's own error is recognised.
    let dir = TestDir::new("eaddrinuse").expect("test dir");
    let port = free_port().expect("port");
    let _taken = TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let node = Deps::get().node().expect("node");
    let mut cmd = Command::new(node);
    cmd.args([
        "-e",
        &format!("require('net').createServer().listen({port}, '127.0.0.1')"),
    ]);
    let mut guard = ProcessGuard::spawn("demo-server", cmd, &dir, "demo.log").expect("spawn");
    let start = Instant::now();
    let err = guard
        .wait_ready("never", Duration::from_secs(10), || async { false })
        .await
        .expect_err("must fail");
    assert!(matches!(err, Error::AddressInUse { .. }), "{err}");
    assert!(err.to_string().contains("demo-server"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn missing_binary_names_the_part_and_the_install_script() {
    let deps = Deps::load(std::path::Path::new("/nonexistent/tether-deps"));
    let err = deps.kube_apiserver().expect_err("no apiserver there");
    let msg = err.to_string();
    assert!(
        msg.contains("kube-apiserver") && msg.contains("scripts/test-deps.sh"),
        "{msg}"
    );

    let dir = TestDir::new("missing").expect("test dir");
    let err = ProcessGuard::spawn(
        "some-part",
        Command::new("/nonexistent/some-part"),
        &dir,
        "x.log",
    )
    .expect_err("spawning a missing program");
    let msg = err.to_string();
    assert!(
        msg.contains("some-part") && msg.contains("scripts/test-deps.sh"),
        "{msg}"
    );

    let err = workspace_bin("no-such-tether-binary").expect_err("not built");
    assert!(err.to_string().contains("cargo build"), "{err}");
}
