use std::io::Write as _;

use base64::Engine as _;
use tether_common::time::ManualClock;

use super::*;
use crate::error::{EXIT_FAILURE, EXIT_USAGE};
use crate::fake_hub::{FakeHub, GOOD_WORKLOAD_TOKEN, Outcome, run_cli};
use crate::hub::HubUrl;
use crate::session::{FORMAT_VERSION, SessionStore};
use crate::test_support::Pki;

const T0: i64 = 1_700_000_000;
const V1BETA1: &str = r#"{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","spec":{"interactive":false}}"#;

/// A cache dir holding a session for `hub` whose access token expires `access_left`
/// seconds after [`T0`].
struct Cache {
    dir: tempfile::TempDir,
    hub: String,
}

impl Cache {
    async fn seed(hub: &str, access: &str, access_left: i64, refresh: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cache = Self {
            dir,
            hub: hub.to_owned(),
        };
        let store = cache.store();
        let lock = store.lock(LOCK_WAIT).await.unwrap();
        store
            .save(
                &lock,
                &Session {
                    version: FORMAT_VERSION,
                    hub: hub.to_owned(),
                    token_endpoint: format!("{hub}/token"),
                    revocation_endpoint: Some(format!("{hub}/revoke")),
                    refresh_token: Secret::new(refresh),
                    access_token: Some(CachedToken {
                        token: Secret::new(access),
                        expires_at: UnixTime::from_secs(T0 + access_left),
                    }),
                    clusters: Default::default(),
                },
            )
            .unwrap();
        cache
    }

    fn store(&self) -> SessionStore {
        SessionStore::new(self.dir.path(), &HubUrl::parse(&self.hub).unwrap())
    }

    async fn session(&self) -> Option<Session> {
        let store = self.store();
        let lock = store.lock(LOCK_WAIT).await.unwrap();
        store.load(&lock).unwrap()
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("TETHER_CACHE_DIR", self.dir.path().display().to_string())]
    }
}

async fn credential(cache: &Cache, cluster: &str, clock: &ManualClock) -> Outcome {
    run_cli(
        &["credential", "--hub", &cache.hub, "--cluster", cluster],
        &cache.env(),
        clock,
    )
    .await
}

fn token_of(stdout: &str) -> String {
    let doc: serde_json::Value = serde_json::from_str(stdout).unwrap();
    doc["status"]["token"].as_str().unwrap().to_owned()
}

fn dead_hub() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_cached_cluster_token_is_printed_without_asking_the_hub() {
    let hub = dead_hub();
    let cache = Cache::seed(&hub, "at", 300, "rt").await;
    {
        let store = cache.store();
        let lock = store.lock(LOCK_WAIT).await.unwrap();
        let mut s = store.load(&lock).unwrap().unwrap();
        s.clusters.insert(
            "a".into(),
            CachedToken {
                token: Secret::new("cached-ct"),
                expires_at: UnixTime::from_secs(T0 + 30),
            },
        );
        store.save(&lock, &s).unwrap();
    }
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let mut env = cache.env();
    env.push(("KUBERNETES_EXEC_INFO", V1BETA1.to_owned()));
    let out = run_cli(
        &["credential", "--hub", &hub, "--cluster", "a"],
        &env,
        &clock,
    )
    .await;
    out.result.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "kind": "ExecCredential",
            "status": {"token": "cached-ct", "expirationTimestamp": "2023-11-14T22:13:50Z"},
        })
    );
    assert_eq!(out.stderr, "");
}

#[tokio::test]
async fn exchanges_then_caches_then_exchanges_again_near_expiry() {
    let fake = FakeHub::start(&["a"]);
    let (access, refresh) = fake.state().start_session();
    let cache = Cache::seed(&fake.url, &access, 300, &refresh).await;
    let clock = ManualClock::new(UnixTime::from_secs(T0));

    let first = credential(&cache, "a", &clock).await;
    first.result.unwrap();
    let token = token_of(&first.stdout);
    assert!(token.starts_with("ct-a-"), "{token}");
    let doc: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(doc["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(doc["status"]["expirationTimestamp"], "2023-11-14T22:14:20Z");
    let session = cache.session().await.unwrap();
    assert_eq!(session.clusters["a"].token.expose(), token);

    // 44 s later the token has 16 s left: reused.
    clock.advance(Duration::from_secs(44));
    let second = credential(&cache, "a", &clock).await;
    assert_eq!(token_of(&second.stdout), token);
    assert_eq!(fake.state().exchanges.len(), 1);

    // 1 s later it has 15 s left: still reused; 2 s later, 14 s: a new one.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        token_of(&credential(&cache, "a", &clock).await.stdout),
        token
    );
    clock.advance(Duration::from_secs(1));
    let third = credential(&cache, "a", &clock).await;
    assert_ne!(token_of(&third.stdout), token);
    let state = fake.state();
    assert_eq!(state.exchanges, ["a", "a"]);
    assert_eq!(state.refresh_attempts, 0);
}

#[test]
fn twenty_concurrent_runs_share_one_refresh() {
    let fake = FakeHub::start(&["c0", "c1", "c2", "c3"]);
    let (access, refresh) = fake.state().start_session();
    fake.state().refresh_delay = Duration::from_millis(100);
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The access token has 5 s left: every run wants to refresh.
    let cache = setup.block_on(Cache::seed(&fake.url, &access, 5, &refresh));
    let clock = ManualClock::new(UnixTime::from_secs(T0));

    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (cache, clock) = (&cache, &clock);
                scope.spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(credential(cache, &format!("c{}", i % 4), clock))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for (i, out) in outcomes.iter().enumerate() {
        assert!(
            out.result.is_ok(),
            "run {i}: {:?} {}",
            out.result,
            out.stderr
        );
        assert!(token_of(&out.stdout).starts_with(&format!("ct-c{}-", i % 4)));
    }
    let state = fake.state();
    assert_eq!(state.refresh_attempts, 1, "one refresh for twenty runs");
    assert_eq!(state.refreshes, 1);
    assert!(!state.ended, "a spent refresh token was reused");
    assert_eq!(state.exchanges.len(), 4, "{:?}", state.exchanges);
    // The rotated refresh token is the one on disk.
    let session = setup.block_on(cache.session()).unwrap();
    assert_eq!(session.refresh_token.expose(), state.refresh_token);
}

#[tokio::test]
async fn an_ended_session_says_to_log_in_again() {
    let fake = FakeHub::start(&["a"]);
    let (access, _refresh) = fake.state().start_session();
    // A refresh token the hub no longer accepts, and an expired access token.
    let cache = Cache::seed(&fake.url, &access, -1, "rt-stale").await;
    let clock = ManualClock::new(UnixTime::from_secs(T0));

    let out = credential(&cache, "a", &clock).await;
    let err = out.result.unwrap_err();
    assert_eq!(
        err.report(),
        format!(
            "your Tether session at {0} has ended (the session was revoked; log in again). Run: \
             tetherctl login --hub {0}",
            fake.url
        )
    );
    assert_eq!(err.exit_code(), EXIT_FAILURE);
    assert_eq!(out.stdout, "");
    // The dead session is forgotten; the next run says so without asking the hub.
    assert!(cache.session().await.is_none());
    let err = credential(&cache, "a", &clock).await.result.unwrap_err();
    assert!(matches!(err, Error::NotLoggedIn { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("tetherctl login --hub {}", fake.url))
    );
    assert_eq!(fake.state().refresh_attempts, 1);
}

#[tokio::test]
async fn a_revoked_session_ends_on_exchange_too() {
    let fake = FakeHub::start(&["a"]);
    let (access, refresh) = fake.state().start_session();
    let cache = Cache::seed(&fake.url, &access, 300, &refresh).await;
    fake.state().ended = true;
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let err = credential(&cache, "a", &clock).await.result.unwrap_err();
    assert!(matches!(err, Error::SessionEnded { .. }), "{err:?}");
    assert!(err.to_string().contains("has ended"), "{err}");
    // The exchange was refused with a cached access token, so one refresh was tried.
    assert_eq!(fake.state().refresh_attempts, 1);
}

#[tokio::test]
async fn an_access_token_the_hub_refuses_is_refreshed_once() {
    let fake = FakeHub::start(&["a"]);
    let (_access, refresh) = fake.state().start_session();
    // The local clock thinks this access token is fine; the hub does not know it.
    let cache = Cache::seed(&fake.url, "at-expired-at-the-hub", 300, &refresh).await;
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let out = credential(&cache, "a", &clock).await;
    out.result.unwrap();
    let state = fake.state();
    assert_eq!(state.refreshes, 1);
    assert_eq!(state.exchanges, ["a"]);
}

#[tokio::test]
async fn an_unknown_cluster_is_refused_and_the_session_kept() {
    let fake = FakeHub::start(&["a"]);
    let (access, refresh) = fake.state().start_session();
    let cache = Cache::seed(&fake.url, &access, 300, &refresh).await;
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let err = credential(&cache, "zzz", &clock).await.result.unwrap_err();
    assert!(matches!(err, Error::ClusterRefused { .. }), "{err:?}");
    assert!(err.to_string().contains("\"zzz\""), "{err}");
    assert!(err.to_string().contains("unknown cluster"), "{err}");
    assert!(cache.session().await.is_some());
}

#[tokio::test]
async fn not_logged_in() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let out = run_cli(
        &[
            "credential",
            "--hub",
            "https://hub.example.com",
            "--cluster",
            "a",
        ],
        &[("TETHER_CACHE_DIR", dir.path().display().to_string())],
        &clock,
    )
    .await;
    let err = out.result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "you are not logged in to the Tether hub at https://hub.example.com. Run: tetherctl \
         login --hub https://hub.example.com"
    );
}

#[tokio::test]
async fn kubectl_asking_for_an_unknown_version_is_a_usage_error() {
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let out = run_cli(
        &[
            "credential",
            "--hub",
            "https://hub.example.com",
            "--cluster",
            "a",
        ],
        &[(
            "KUBERNETES_EXEC_INFO",
            r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#.to_owned(),
        )],
        &clock,
    )
    .await;
    let err = out.result.unwrap_err();
    assert_eq!(err.exit_code(), EXIT_USAGE);
    assert!(err.to_string().contains("v1alpha1"), "{err}");
    let out = run_cli(
        &["credential", "--hub", "https://hub.example.com"],
        &[],
        &clock,
    )
    .await;
    assert!(out.result.unwrap_err().to_string().contains("--cluster"));
}

#[tokio::test]
async fn machine_mode_rereads_the_token_file_and_needs_no_cache() {
    let pki = Pki::new();
    let fake = FakeHub::start_tls(&["a"], &pki);
    let data = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{GOOD_WORKLOAD_TOKEN}").unwrap();
    let path = file.path().display().to_string();
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    // No HOME, no cache dir: machine mode must not need one.
    let env = [("TETHER_HUB_CA_DATA", data)];
    let args = [
        "credential",
        "--token-file",
        &path,
        "--hub",
        &fake.url,
        "--cluster",
        "a",
    ];

    let out = run_cli(&args, &env, &clock).await;
    out.result.unwrap();
    assert!(token_of(&out.stdout).starts_with("ct-a-"));

    // The projected token was rotated to one the hub refuses: read again, refused.
    std::fs::write(file.path(), "workload.jwt.other\n").unwrap();
    let err = run_cli(&args, &env, &clock).await.result.unwrap_err();
    assert!(matches!(err, Error::WorkloadTokenRefused { .. }), "{err:?}");
    assert!(err.to_string().contains(&path), "{err}");
    assert!(err.to_string().contains("refused by policy"), "{err}");
    assert_eq!(
        fake.state().workload_tokens_seen,
        [GOOD_WORKLOAD_TOKEN, "workload.jwt.other"]
    );

    std::fs::write(file.path(), "\n").unwrap();
    let err = run_cli(&args, &env, &clock).await.result.unwrap_err();
    assert_eq!(err.exit_code(), EXIT_USAGE);
    assert!(err.to_string().contains("empty"), "{err}");
}

#[tokio::test]
async fn machine_mode_on_a_private_ca_without_the_ca_fails_clearly() {
    let pki = Pki::new();
    let fake = FakeHub::start_tls(&["a"], &pki);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{GOOD_WORKLOAD_TOKEN}").unwrap();
    let path = file.path().display().to_string();
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let args = [
        "credential",
        "--token-file",
        &path,
        "--hub",
        &fake.url,
        "--cluster",
        "a",
    ];
    let err = run_cli(&args, &[], &clock).await.result.unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("TETHER_HUB_CA_DATA"), "{err}");
}
