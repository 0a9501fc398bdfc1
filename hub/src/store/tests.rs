//! Unit tests of the store: config parsing here, and the conformance suite on every backend.

use super::conformance::{self, CASES};
use super::*;

pub(crate) async fn sqlite_memory() -> Store {
    Store::connect(&StoreConfig::new(
        DatabaseUrl::parse("sqlite::memory:").unwrap(),
    ))
    .await
    .unwrap()
}

pub(crate) async fn sqlite_file(dir: &tempfile::TempDir) -> Store {
    let path = dir.path().join("nested/dir/hub.db");
    let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
    Store::connect(&StoreConfig::new(url)).await.unwrap()
}

/// Runs the case `name` of `cases` on a fresh store of `backend` (`memory`, `file`).
/// PostgreSQL runs the same cases in the e2e suite (`tests/e2e/hub/store.rs`), on a
/// throwaway server from the harness, so no case is skipped silently here.
pub(crate) async fn run_case(cases: &[conformance::Case], name: &str, backend: &str) {
    let (_, case) = cases.iter().find(|(n, _)| *n == name).unwrap();
    match backend {
        "memory" => case(sqlite_memory().await).await,
        "file" => {
            let dir = tempfile::tempdir().unwrap();
            case(sqlite_file(&dir).await).await;
        }
        other => panic!("unknown backend {other}"),
    }
}

/// For each case name, a module with one test per backend.
macro_rules! on_every_backend {
    ($cases:path; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_memory() { $crate::store::tests::run_case($cases, stringify!($name), "memory").await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_file() { $crate::store::tests::run_case($cases, stringify!($name), "file").await }
        }
    )*};
}
pub(crate) use on_every_backend;

on_every_backend!(
    crate::store::conformance::CASES;
    migrate_is_idempotent,
    empty_store_has_generation_zero,
    key_epoch_compare_and_set,
    key_lifecycle_rows,
    at_most_one_current_key,
    wrong_state_transition_rolls_back,
    concurrent_compare_and_set_exactly_once,
    audit_roundtrip,
    audit_refuses_tokens,
    session_create_and_get,
    code_single_use_and_reuse_revokes,
    code_checks_client_redirect_and_pkce,
    refresh_rotates_and_reuse_revokes,
    refresh_concurrent_exactly_one,
    session_idle_and_absolute_expiry,
    login_single_use_and_expiry,
    revocation_identity_update_and_purge,
    upstream_check_due_and_claim,
    clusters_add_get_list_remove,
    upstream_grant_encrypted_at_rest,
    only_hashes_stored,
    join_token_single_use_under_concurrency,
    join_token_expiry_cluster_binding_and_hash_only,
    device_codes_lifecycle,
);

#[test]
fn every_case_has_a_test() {
    // The macro list above and CASES must not drift apart.
    let src = include_str!("tests.rs");
    for (name, _) in CASES {
        assert!(
            src.contains(&format!("    {name},\n")),
            "{name} is not run by on_every_backend!"
        );
    }
}

#[test]
fn database_urls() {
    assert_eq!(
        DatabaseUrl::parse("sqlite::memory:")
            .unwrap()
            .sqlite_location(),
        Some(SqliteLocation::Memory)
    );
    let file = DatabaseUrl::parse("sqlite:///var/lib/tether/hub.db").unwrap();
    assert_eq!(file.backend(), Backend::Sqlite);
    assert_eq!(
        file.sqlite_location(),
        Some(SqliteLocation::File("/var/lib/tether/hub.db".into()))
    );
    let pg = DatabaseUrl::parse("postgres://tether:s3cret@db:5432/tether").unwrap();
    assert_eq!(pg.backend(), Backend::Postgres);
    assert_eq!(pg.sqlite_location(), None);
    assert!(DatabaseUrl::parse("postgresql://db/tether").is_ok());
    for bad in [
        "mysql://db/x",
        "sqlite://",
        "sqlite://x.db?mode=ro",
        "hub.db",
        "postgres://",
    ] {
        let err = DatabaseUrl::parse(bad).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidUrl { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains("invalid storage url"), "{err}");
    }
}

#[test]
fn database_url_hides_the_password() {
    let url =
        DatabaseUrl::parse("postgres://tether:s3cret@db:5432/tether?sslmode=require").unwrap();
    for shown in [
        format!("{url:?}"),
        url.to_string(),
        serde_json::to_string(&url).unwrap(),
    ] {
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db:5432"), "{shown}");
    }
    let query = DatabaseUrl::parse("postgres://db/tether?password=s3cret").unwrap();
    assert!(!format!("{query:?}").contains("s3cret"));
    let err = DatabaseUrl::parse("mysql://u:s3cret@db/x").unwrap_err();
    assert!(!err.to_string().contains("s3cret"));
}

#[test]
fn store_config_from_json() {
    let config: StoreConfig =
        serde_json::from_str(r#"{"url":"sqlite::memory:","max_connections":3}"#).unwrap();
    assert_eq!(config.max_connections, 3);
    let defaults: StoreConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(defaults, StoreConfig::default());
    assert!(serde_json::from_str::<StoreConfig>(r#"{"url":"sqlite::memory:","pool":3}"#).is_err());
    let err = serde_json::from_str::<StoreConfig>(r#"{"url":"ftp://x"}"#).unwrap_err();
    assert!(err.to_string().contains("invalid storage url"), "{err}");
}

#[test]
fn migrations_match_across_backends() {
    let normalize = |sql: &str| {
        sql.lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| {
                l.replace("BYTEA  ", "BLOB   ").replace(
                    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
                    "INTEGER PRIMARY KEY AUTOINCREMENT",
                )
            })
            .collect::<Vec<_>>()
    };
    let sqlite = include_str!("../../migrations/sqlite/0001_keys_and_audit.sql");
    let postgres = include_str!("../../migrations/postgres/0001_keys_and_audit.sql");
    assert_eq!(normalize(sqlite), normalize(postgres));
    let sqlite = include_str!("../../migrations/sqlite/0003_registry.sql");
    let postgres = include_str!("../../migrations/postgres/0003_registry.sql");
    assert_eq!(normalize(sqlite), normalize(postgres));
}

#[tokio::test]
async fn connect_error_names_the_backend_not_the_password() {
    let url = DatabaseUrl::parse("postgres://tether:s3cret@127.0.0.1:1/tether").unwrap();
    let mut config = StoreConfig::new(url);
    config.max_connections = 1;
    let err = Store::connect(&config).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("postgres") && !shown.contains("s3cret"),
        "{shown}"
    );
}

#[test]
fn jwt_detector() {
    use super::audit::looks_like_jwt;
    assert!(looks_like_jwt(
        "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
    ));
    assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0."));
    assert!(!looks_like_jwt("eyJ"));
    assert!(!looks_like_jwt("key.rotation"));
    assert!(!looks_like_jwt("eyJhbGciOiJFUzI1NiJ9 only a header"));
}
