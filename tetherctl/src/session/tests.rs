use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn hub() -> HubUrl {
    HubUrl::parse("https://hub.example.com").unwrap()
}

pub(crate) fn session(refresh: &str) -> Session {
    Session {
        version: FORMAT_VERSION,
        hub: "https://hub.example.com".to_owned(),
        token_endpoint: "https://hub.example.com/token".to_owned(),
        revocation_endpoint: None,
        refresh_token: Secret::new(refresh),
        access_token: Some(CachedToken {
            token: Secret::new("access-1"),
            expires_at: UnixTime::from_secs(1_000),
        }),
        clusters: BTreeMap::new(),
    }
}

#[test]
fn cache_root_resolution() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        move |name: &str| map.get(name).map(|v| (*v).to_owned())
    };
    assert_eq!(
        cache_root(&env(&[
            (ENV_CACHE_DIR, "/c"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/h")
        ]))
        .unwrap(),
        Path::new("/c")
    );
    assert_eq!(
        cache_root(&env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])).unwrap(),
        Path::new("/x/tether")
    );
    // A relative XDG_CACHE_HOME is ignored, as the spec says.
    assert_eq!(
        cache_root(&env(&[("XDG_CACHE_HOME", "x"), ("HOME", "/h")])).unwrap(),
        Path::new("/h/.cache/tether")
    );
    assert!(cache_root(&env(&[])).is_err());
}

#[tokio::test]
async fn files_are_private_and_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::new(root.path(), &hub());
    assert_eq!(store.dir(), root.path().join(hub().cache_key()));
    let lock = store.lock(LOCK_WAIT).await.unwrap();
    assert!(store.load(&lock).unwrap().is_none());
    let mut s = session("refresh-1");
    s.clusters.insert(
        "a".to_owned(),
        CachedToken {
            token: Secret::new("ct"),
            expires_at: UnixTime::from_secs(2_000),
        },
    );
    store.save(&lock, &s).unwrap();
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&store.session_path()), 0o600);
    assert_eq!(mode(&store.lock_path()), 0o600);
    let back = store.load(&lock).unwrap().unwrap();
    assert_eq!(back.refresh_token.expose(), "refresh-1");
    assert_eq!(back.clusters["a"].token.expose(), "ct");
    assert_eq!(back.clusters["a"].expires_at, UnixTime::from_secs(2_000));
    // Debug never shows a token.
    let debug = format!("{back:?}");
    assert!(
        !debug.contains("refresh-1") && !debug.contains("access-1"),
        "{debug}"
    );

    store.forget(&lock).unwrap();
    assert!(store.load(&lock).unwrap().is_none());
    store.wipe(lock).unwrap();
    assert!(!store.dir().exists());
}

#[tokio::test]
async fn an_existing_open_dir_is_made_private() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::new(root.path(), &hub());
    fs::create_dir_all(store.dir()).unwrap();
    fs::set_permissions(store.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let _lock = store.lock(LOCK_WAIT).await.unwrap();
    assert_eq!(mode(store.dir()), 0o700);
}

#[tokio::test]
async fn the_lock_is_exclusive_and_bounded() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::new(root.path(), &hub());
    let held = store.lock(LOCK_WAIT).await.unwrap();
    let started = std::time::Instant::now();
    let err = store.lock(Duration::from_millis(200)).await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(matches!(err, Error::LockTimeout { .. }), "{err:?}");
    assert!(err.to_string().contains("lock"), "{err}");
    drop(held);
    store.lock(Duration::from_millis(200)).await.unwrap();
}

#[tokio::test]
async fn a_wiped_lock_file_is_not_a_lock() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::new(root.path(), &hub());
    let first = store.lock(LOCK_WAIT).await.unwrap();
    // Someone waiting on the old file would get a lock nobody else checks: after a wipe,
    // the next lock is taken on a fresh file and still excludes.
    store.wipe(first).unwrap();
    let second = store.lock(LOCK_WAIT).await.unwrap();
    assert!(store.lock(Duration::from_millis(100)).await.is_err());
    drop(second);
}

#[tokio::test]
async fn corrupt_or_foreign_sessions_say_so() {
    let root = tempfile::tempdir().unwrap();
    let store = SessionStore::new(root.path(), &hub());
    let lock = store.lock(LOCK_WAIT).await.unwrap();
    fs::write(store.session_path(), b"{not json").unwrap();
    let err = store.load(&lock).unwrap_err();
    assert!(matches!(err, Error::CorruptCache { .. }), "{err:?}");
    assert!(err.to_string().contains("tetherctl login"), "{err}");
    let mut json = serde_json::to_value(session("r")).unwrap();
    json["version"] = serde_json::json!(99);
    fs::write(store.session_path(), json.to_string()).unwrap();
    assert!(store.load(&lock).unwrap_err().to_string().contains("99"));
}

#[test]
fn validity_margin() {
    let t = CachedToken::new(Secret::new("x"), UnixTime::from_secs(100), 60);
    assert_eq!(t.expires_at, UnixTime::from_secs(160));
    assert!(t.valid_for(UnixTime::from_secs(145), Duration::from_secs(15)));
    assert!(!t.valid_for(UnixTime::from_secs(146), Duration::from_secs(15)));
    let mut s = session("r");
    s.clusters.insert(
        "old".into(),
        CachedToken::new(Secret::new("o"), UnixTime::from_secs(0), 10),
    );
    s.clusters.insert("new".into(), t);
    s.prune(UnixTime::from_secs(100));
    assert_eq!(s.clusters.keys().collect::<Vec<_>>(), ["new"]);
}
