//! Helpers shared by the hub tests: offline commands, JWKS, verification, PostgreSQL configs.

use std::process::Output;

use tether_common::time::Clock as _;
use tether_common::time::SystemClock;
use tether_common::token::{Claims, Jwks, KeySet, Verifier, VerifyError, VerifyOptions};
use tether_e2e::{Hub, Postgres, workspace_bin};

/// The audience of admin tokens (hub constant).
pub const ADMIN_AUDIENCE: &str = tether_hub::admin::ADMIN_AUDIENCE;

/// Runs `tether-hub ARGS` to completion.
pub async fn hub_cmd(args: &[&str]) -> Output {
    tokio::process::Command::new(workspace_bin("tether-hub").expect("tether-hub built"))
        .args(args)
        .output()
        .await
        .expect("run tether-hub")
}

/// The `--dev --data-dir DIR` or `--config FILE` flags that point offline commands at `hub`.
pub fn hub_flags(hub: &Hub) -> Vec<String> {
    let yaml = hub.data_dir().join("hub.yaml");
    if hub.ca_file().starts_with(hub.data_dir().join("tls")) {
        vec!["--config".into(), yaml.display().to_string()]
    } else {
        vec![
            "--dev".into(),
            "--data-dir".into(),
            hub.data_dir().display().to_string(),
        ]
    }
}

/// `tether-hub admin-token` for `hub`: a real token signed by its current key.
pub async fn admin_token(hub: &Hub, name: &str) -> String {
    let flags = hub_flags(hub);
    let mut args: Vec<&str> = vec!["admin-token", "--name", name];
    args.extend(flags.iter().map(String::as_str));
    let out = hub_cmd(&args).await;
    assert!(
        out.status.success(),
        "admin-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// The JWKS the hub serves now.
pub async fn jwks(hub: &Hub) -> Jwks {
    let value = hub
        .get_json("/.well-known/jwks.json")
        .await
        .expect("GET JWKS");
    serde_json::from_value(value).expect("JWKS parses")
}

/// The kids in `jwks`, in order.
pub fn kids(jwks: &Jwks) -> Vec<String> {
    jwks.keys
        .iter()
        .filter_map(|k| k.kid.as_ref().map(|kid| kid.as_str().to_owned()))
        .collect()
}

/// Verifies an admin token from `hub` against `jwks`, now.
pub fn verify_admin(hub: &Hub, jwks: &Jwks, token: &str) -> Result<Claims, VerifyError> {
    let keys = KeySet::from_jwks(jwks);
    assert!(
        keys.rejected().is_empty(),
        "unusable JWKs: {:?}",
        keys.rejected()
    );
    Verifier::new(keys, VerifyOptions::new(hub.url(), ADMIN_AUDIENCE))
        .verify(token, SystemClock.now())
}

/// A hub configuration on PostgreSQL database `db` of `pg`, issuer on `port`, with the given
/// `keys:` body (indented two spaces) — everything else in the hub's directory (`@DIR@`).
pub fn postgres_config(pg: &Postgres, db: &str, port: u16, keys: &str) -> String {
    format!(
        r#"issuer: https://127.0.0.1:{port}
listen: 127.0.0.1:{port}
tls:
  self_signed: true
  self_signed_dir: "@DIR@/tls"
metrics:
  listen: 127.0.0.1:0
storage:
  url: "{url}"
  max_connections: 4
keys:
  kek_file: "@DIR@/../kek"
{keys}
tokens:
  cluster_token_lifetime: 10s
telemetry:
  log_format: text
  log_level: info
"#,
        url = pg.url_for(db)
    )
}

/// Creates database `db` on `pg` and a shared 0600 KEK file at `kek` (for hubs sharing it).
pub async fn create_database(pg: &Postgres, db: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&pg.url())
        .await
        .expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    conn.close().await.ok();
}

/// Writes a random 32-byte KEK with mode 0600.
pub fn write_kek(path: &std::path::Path) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create KEK");
    f.write_all(&bytes).expect("write KEK");
}
