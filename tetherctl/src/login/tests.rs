use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};

use tether_common::kube::{EntryKind, Kubeconfig};
use tether_common::time::{ManualClock, UnixTime};

use super::*;
use crate::fake_hub::FakeHub;
use crate::hub::HubUrl;
use crate::session::SessionStore;

const T0: i64 = 1_700_000_000;

/// Plays the browser: follows the hub's redirect to the loopback callback (optionally
/// changing the `state`), and keeps the page it got.
#[derive(Clone, Default)]
struct FakeBrowser {
    page: Arc<Mutex<Option<String>>>,
    opened: Arc<Mutex<Vec<String>>>,
    tamper_state: bool,
    do_nothing: bool,
}

impl browser::Opener for FakeBrowser {
    fn open(&self, url: &str) -> std::result::Result<(), String> {
        self.opened.lock().unwrap().push(url.to_owned());
        if self.do_nothing {
            return Ok(());
        }
        let (url, page, tamper) = (url.to_owned(), self.page.clone(), self.tamper_state);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                let answer = client.get(&url).send().await.unwrap();
                assert_eq!(answer.status(), 303, "{:?}", answer.text().await);
                let mut location =
                    url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
                if tamper {
                    let pairs: Vec<(String, String)> = location
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k == "state" { "forged".into() } else { v };
                            (k.into_owned(), v.into_owned())
                        })
                        .collect();
                    location.query_pairs_mut().clear().extend_pairs(pairs);
                }
                // A speculative connection that never sends anything must not block.
                let _idle =
                    tokio::net::TcpStream::connect(location.socket_addrs(|| None).unwrap()[0])
                        .await
                        .unwrap();
                let body = client
                    .get(location)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                *page.lock().unwrap() = Some(body);
            });
        });
        Ok(())
    }
}

impl FakeBrowser {
    /// The page the callback answered, once the browser thread has it (at most 10 s).
    fn wait_page(&self) -> String {
        for _ in 0..1000 {
            if let Some(page) = self.page.lock().unwrap().clone() {
                return page;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the browser never got the callback page");
    }
}

struct Env {
    cache: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            cache: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn vars(&self) -> impl Fn(&str) -> Option<String> + use<> {
        let cache = self.cache.path().display().to_string();
        let home = self.home.path().display().to_string();
        move |name: &str| match name {
            "TETHER_CACHE_DIR" => Some(cache.clone()),
            "HOME" => Some(home.clone()),
            _ => None,
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.home.path().join(".kube/config")
    }

    async fn session(&self, hub: &str) -> Option<Session> {
        let store = SessionStore::new(self.cache.path(), &HubUrl::parse(hub).unwrap());
        let lock = store.lock(LOCK_WAIT).await.unwrap();
        store.load(&lock).unwrap()
    }
}

fn args(hub: &str, timeout: Duration) -> LoginArgs {
    LoginArgs {
        hub: HubArgs {
            hub: Some(hub.to_owned()),
            hub_ca: None,
        },
        no_browser: false,
        kubeconfig: None,
        timeout,
    }
}

async fn login(
    env: &Env,
    args: &LoginArgs,
    method: Method<'_>,
    clock: &ManualClock,
) -> (Result<()>, String) {
    let vars = env.vars();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let result = {
        let mut cx = Context {
            env: &vars,
            clock,
            stdout: &mut stdout,
            stderr: &mut stderr,
        };
        run_with(args, method, PathBuf::from("/usr/bin/tetherctl"), &mut cx).await
    };
    assert!(stdout.is_empty());
    (result, String::from_utf8(stderr).unwrap())
}

#[tokio::test]
async fn browser_login_writes_the_session_and_the_kubeconfig() {
    let fake = FakeHub::start(&["spoke-1", "spoke-2"]);
    let env = Env::new();
    let browser = FakeBrowser::default();
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let (result, stderr) = login(
        &env,
        &args(&fake.url, Duration::from_secs(20)),
        Method::Browser(&browser),
        &clock,
    )
    .await;
    result.unwrap();

    // The URL was printed and opened, with PKCE S256 and a state.
    let opened = browser.opened.lock().unwrap()[0].clone();
    assert!(stderr.contains(&opened), "{stderr}");
    let url = url::Url::parse(&opened).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 32);
    assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"));
    let page = browser.wait_page();
    assert!(page.contains("close this tab"), "{page}");

    // The session: the hub's tokens, private files.
    let session = env.session(&fake.url).await.unwrap();
    {
        let state = fake.state();
        assert_eq!(session.refresh_token.expose(), state.refresh_token);
        assert_eq!(session.token_endpoint, format!("{}/token", fake.url));
    }
    let access = session.access_token.unwrap();
    assert_eq!(access.expires_at, UnixTime::from_secs(T0 + 300));
    let dir = SessionStore::new(env.cache.path(), &HubUrl::parse(&fake.url).unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.dir()), 0o700);
    assert_eq!(mode(&dir.session_path()), 0o600);

    // The kubeconfig (the default path under HOME): one context per cluster.
    let path = env.kubeconfig();
    assert_eq!(mode(&path), 0o600);
    let config = Kubeconfig::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let contexts: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(contexts, ["tether-spoke-1", "tether-spoke-2"]);
    assert_eq!(config.current_context, "tether-spoke-1");
    let exec = config.user_exec("tether-spoke-2").unwrap();
    assert_eq!(exec.command, "/usr/bin/tetherctl");
    assert_eq!(exec.arg_value("--hub"), Some(fake.url.as_str()));
    assert_eq!(exec.arg_value("--cluster"), Some("spoke-2"));
    let cache_env = exec
        .env
        .iter()
        .find(|e| e.name == "TETHER_CACHE_DIR")
        .unwrap();
    assert_eq!(cache_env.value, env.cache.path().display().to_string());
    assert_eq!(
        config.body(EntryKind::Cluster, "tether-spoke-1").unwrap()["server"],
        "https://proxy.test/spoke-1"
    );
    assert!(stderr.contains("tether-spoke-2"), "{stderr}");
    assert!(
        stderr.contains("Current context set to tether-spoke-1"),
        "{stderr}"
    );

    // Logging in again replaces the session and ends the old one at the hub; a cluster the
    // hub stopped offering loses its context.
    let old_refresh = session.refresh_token.expose().to_owned();
    fake.state().clusters = vec!["spoke-2".to_owned()];
    let (result, stderr) = login(
        &env,
        &args(&fake.url, Duration::from_secs(20)),
        Method::Browser(&browser),
        &clock,
    )
    .await;
    result.unwrap();
    assert_eq!(fake.state().revoked, [old_refresh]);
    assert!(stderr.contains("tether-spoke-1"), "{stderr}");
    let config = Kubeconfig::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let contexts: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(contexts, ["tether-spoke-2"]);
    assert_eq!(config.current_context, "tether-spoke-2");
}

#[tokio::test]
async fn an_error_from_the_hub_is_shown() {
    let fake = FakeHub::start(&["a"]);
    fake.state().authorize_error = Some((
        "access_denied".to_owned(),
        "you are not in an allowed group".to_owned(),
    ));
    let env = Env::new();
    let browser = FakeBrowser::default();
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let (result, _) = login(
        &env,
        &args(&fake.url, Duration::from_secs(20)),
        Method::Browser(&browser),
        &clock,
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "login failed: the hub answered access_denied: you are not in an allowed group"
    );
    let page = browser.wait_page();
    assert!(page.contains("Login failed"), "{page}");
    assert!(page.contains("not in an allowed group"), "{page}");
    assert!(env.session(&fake.url).await.is_none());
    assert!(!env.kubeconfig().exists());
}

#[tokio::test]
async fn a_forged_state_is_refused() {
    let fake = FakeHub::start(&["a"]);
    let env = Env::new();
    let browser = FakeBrowser {
        tamper_state: true,
        ..FakeBrowser::default()
    };
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let (result, _) = login(
        &env,
        &args(&fake.url, Duration::from_secs(20)),
        Method::Browser(&browser),
        &clock,
    )
    .await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("wrong state"), "{err}");
    assert!(
        fake.state().access_tokens.is_empty(),
        "no code was redeemed"
    );
}

#[tokio::test]
async fn no_answer_times_out() {
    let fake = FakeHub::start(&["a"]);
    let env = Env::new();
    let browser = FakeBrowser {
        do_nothing: true,
        ..FakeBrowser::default()
    };
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let (result, stderr) = login(
        &env,
        &args(&fake.url, Duration::from_secs(1)),
        Method::Browser(&browser),
        &clock,
    )
    .await;
    let err = result.unwrap_err();
    assert!(matches!(err, Error::LoginTimeout(_)), "{err:?}");
    assert!(err.to_string().contains("1s"), "{err}");
    // The URL is printed even when nothing opens it.
    assert!(stderr.contains("/authorize?"), "{stderr}");
}

#[tokio::test]
async fn device_login_polls_with_slow_down() {
    let fake = FakeHub::start(&["a"]);
    {
        let mut s = fake.state();
        s.device_interval = 2;
        s.device_script = [
            "authorization_pending",
            "slow_down",
            "authorization_pending",
        ]
        .into();
    }
    let target = HubTarget::resolve(
        &HubArgs {
            hub: Some(fake.url.clone()),
            hub_ca: None,
        },
        &|_: &str| None,
    )
    .unwrap();
    let client = HubClient::new(&target).unwrap();
    let discovery = client.discover().await.unwrap();
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let slept = Mutex::new(Vec::new());
    let mut said = String::new();
    let tokens = device::login(
        &client,
        &discovery,
        Duration::from_secs(300),
        &clock,
        &mut |t: &str| {
            said.push_str(t);
            Ok(())
        },
        |d| {
            slept.lock().unwrap().push(d.as_secs());
            clock.advance(d);
            async {}
        },
    )
    .await
    .unwrap();
    assert!(tokens.refresh_token.is_some());
    assert_eq!(*slept.lock().unwrap(), [2, 2, 7, 7]);
    assert_eq!(fake.state().device_polls, 4);
    assert!(
        said.contains("/device/verify?user_code=ABCD-EFGH"),
        "{said}"
    );
    assert!(said.contains("ABCD-EFGH"), "{said}");
}

#[tokio::test]
async fn device_login_gives_up_when_the_code_expires() {
    let fake = FakeHub::start(&["a"]);
    {
        let mut s = fake.state();
        s.device_interval = 5;
        s.device_expires_in = 30;
        s.device_script = std::iter::repeat_n("authorization_pending", 100).collect();
    }
    let target = HubTarget::resolve(
        &HubArgs {
            hub: Some(fake.url.clone()),
            hub_ca: None,
        },
        &|_: &str| None,
    )
    .unwrap();
    let client = HubClient::new(&target).unwrap();
    let discovery = client.discover().await.unwrap();
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let err = device::login(
        &client,
        &discovery,
        Duration::from_secs(300),
        &clock,
        &mut |_| Ok(()),
        |d| {
            clock.advance(d);
            async {}
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("not confirmed within 30s"),
        "{err}"
    );
    // Polls at 5, 10, ..., 25 s; at 30 s the code has expired.
    assert_eq!(fake.state().device_polls, 5);

    // --timeout shorter than the code's lifetime wins.
    let polls = fake.state().device_polls;
    let err = device::login(
        &client,
        &discovery,
        Duration::from_secs(12),
        &clock,
        &mut |_| Ok(()),
        |d| {
            clock.advance(d);
            async {}
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("within 12s"), "{err}");
    assert_eq!(fake.state().device_polls - polls, 2);

    // Denied, and a hub without a device endpoint.
    fake.state().device_script = ["access_denied"].into();
    let err = device::login(
        &client,
        &discovery,
        Duration::from_secs(300),
        &clock,
        &mut |_| Ok(()),
        |_| async {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("denied"), "{err}");
    fake.state().offer_device = false;
    let discovery = client.discover().await.unwrap();
    let err = device::login(
        &client,
        &discovery,
        Duration::from_secs(300),
        &clock,
        &mut |_| Ok(()),
        |_| async {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("without --no-browser"), "{err}");
}

#[tokio::test]
async fn device_login_end_to_end_writes_the_kubeconfig() {
    let fake = FakeHub::start(&["a"]);
    fake.state().device_interval = 1;
    let env = Env::new();
    let clock = ManualClock::new(UnixTime::from_secs(T0));
    let kubeconfig = env.home.path().join("elsewhere.yaml");
    let mut a = args(&fake.url, Duration::from_secs(20));
    a.no_browser = true;
    a.kubeconfig = Some(kubeconfig.clone());
    let (result, stderr) = login(&env, &a, Method::Device, &clock).await;
    result.unwrap();
    assert!(stderr.contains("ABCD-EFGH"), "{stderr}");
    assert!(
        std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .contains("tether-a")
    );
    assert!(!env.kubeconfig().exists());
}

#[test]
fn timeouts_parse() {
    assert_eq!(parse_timeout("5m").unwrap(), Duration::from_secs(300));
    assert!(parse_timeout("0s").is_err());
    assert!(parse_timeout("soon").unwrap_err().contains("90s"));
}
