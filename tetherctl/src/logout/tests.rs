use tether_common::kube::Kubeconfig;
use tether_common::secret::Secret;
use tether_common::time::{ManualClock, UnixTime};

use crate::fake_hub::{FakeHub, run_cli};
use crate::hub::{HubCa, HubUrl, OfferedCluster};
use crate::kubeconfig::{Plugin, merge, update_file};
use crate::session::{CachedToken, FORMAT_VERSION, LOCK_WAIT, Session, SessionStore};

async fn seed(cache: &std::path::Path, hub: &str, refresh: &str) -> SessionStore {
    let store = SessionStore::new(cache, &HubUrl::parse(hub).unwrap());
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
                    token: Secret::new("at"),
                    expires_at: UnixTime::from_secs(1),
                }),
                clusters: Default::default(),
            },
        )
        .unwrap();
    store
}

fn kubeconfig_with(dir: &std::path::Path, hub: &str) -> std::path::PathBuf {
    let path = dir.join("config");
    std::fs::write(&path, "users:\n- name: mine\n  user: {token: x}\n").unwrap();
    let plugin = Plugin {
        command: "/bin/tetherctl".into(),
        hub: HubUrl::parse(hub).unwrap(),
        hub_ca: HubCa::System,
        cache_dir: None,
    };
    let offered = [OfferedCluster {
        name: "a".into(),
        labels: Default::default(),
        proxy_url: "https://p/a".into(),
        proxy_ca_pem: String::new(),
    }];
    update_file(&path, |c| merge(c, &plugin, &offered)).unwrap();
    path
}

#[tokio::test]
async fn logout_revokes_wipes_and_removes_contexts() {
    let fake = FakeHub::start(&["a"]);
    let (_, refresh) = fake.state().start_session();
    let cache = tempfile::tempdir().unwrap();
    let store = seed(cache.path(), &fake.url, &refresh).await;
    let kubeconfig = kubeconfig_with(cache.path(), &fake.url);
    let clock = ManualClock::new(UnixTime::from_secs(1));
    let path = kubeconfig.display().to_string();
    let out = run_cli(
        &[
            "logout",
            "--hub",
            &fake.url,
            "--remove-contexts",
            "--kubeconfig",
            &path,
        ],
        &[("TETHER_CACHE_DIR", cache.path().display().to_string())],
        &clock,
    )
    .await;
    out.result.unwrap();
    assert_eq!(fake.state().revoked, [refresh]);
    assert!(fake.state().ended);
    assert!(!store.dir().exists());
    assert!(out.stderr.contains("Ended your session"), "{}", out.stderr);
    assert!(
        out.stderr.contains("Removed 1 context(s)"),
        "{}",
        out.stderr
    );
    let config = Kubeconfig::from_yaml(&std::fs::read_to_string(&kubeconfig).unwrap()).unwrap();
    let users: Vec<&str> = config.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(users, ["mine"]);
    assert!(config.contexts.is_empty());
}

#[tokio::test]
async fn logout_from_an_unreachable_hub_still_wipes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hub = format!("http://127.0.0.1:{port}");
    let cache = tempfile::tempdir().unwrap();
    let store = seed(cache.path(), &hub, "rt").await;
    let kubeconfig = kubeconfig_with(cache.path(), &hub);
    let clock = ManualClock::new(UnixTime::from_secs(1));
    let out = run_cli(
        &["logout", "--hub", &hub],
        &[
            ("TETHER_CACHE_DIR", cache.path().display().to_string()),
            ("KUBECONFIG", kubeconfig.display().to_string()),
        ],
        &clock,
    )
    .await;
    out.result.unwrap();
    assert!(!store.dir().exists());
    assert!(out.stderr.contains("may remain valid"), "{}", out.stderr);
    // Without --remove-contexts the kubeconfig is left alone.
    assert!(
        std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .contains("tether-a")
    );

    // Logging out again: nothing cached, still fine.
    let out = run_cli(
        &["logout", "--hub", &hub],
        &[("TETHER_CACHE_DIR", cache.path().display().to_string())],
        &clock,
    )
    .await;
    out.result.unwrap();
    assert!(out.stderr.contains("No session"), "{}", out.stderr);
}
