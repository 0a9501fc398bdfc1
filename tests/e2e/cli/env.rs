//! A hub with a people access policy, one spoke with its proxy, and helpers that run
//! `tetherctl login` with a scripted browser and kubectl through the written kubeconfig.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tether_e2e::{CmdOutput, Deps, workspace_bin};

use crate::login::env::LoginEnv;
use crate::proxy::env::{ProxyEnv, SPOKE};

/// The kubeconfig context `tetherctl login` writes for the spoke.
pub fn context() -> String {
    format!("tether-{SPOKE}")
}

/// The hub's people policy: admins and viewers may reach every cluster; carol (no groups)
/// may reach none.
const ACCESS: &str = r#"access:
  rules:
    - groups: [k8s-admins, k8s-viewers]
      clusters: {names: ["*"]}
"#;

pub struct CliEnv {
    pub proxy: ProxyEnv,
    browser: PathBuf,
}

/// One user's files: their kubeconfig and credential cache.
pub struct UserFiles {
    pub kubeconfig: PathBuf,
    pub cache_dir: PathBuf,
}

impl CliEnv {
    /// `recheck`: the hub's upstream re-check interval; `token_lifetime`: both the hub's
    /// access tokens and its cluster tokens.
    pub async fn start(name: &str, recheck: &str, token_lifetime: &str) -> Self {
        let extra = format!("{ACCESS}sessions:\n  access_token_lifetime: {token_lifetime}\n");
        let login = LoginEnv::start_with_tokens(name, recheck, &extra, token_lifetime, "2s").await;
        let proxy = ProxyEnv::start_with(login).await;
        let browser = write_browser_script(proxy.login.dir().path());
        Self { proxy, browser }
    }

    pub fn dir(&self) -> &Path {
        self.proxy.login.dir().path()
    }

    pub fn files(&self, user: &str) -> UserFiles {
        let base = self.dir().join(format!("user-{user}"));
        std::fs::create_dir_all(&base).expect("user dir");
        UserFiles {
            kubeconfig: base.join("kubeconfig"),
            cache_dir: base.join("cache"),
        }
    }

    /// `tetherctl ARGS` as `user` would run it (their HOME, cache and kubeconfig); `browser`
    /// signs in as `user` / `password` when tetherctl opens a URL.
    pub async fn tetherctl(
        &self,
        files: &UserFiles,
        args: &[&str],
        login_as: Option<(&str, &str)>,
    ) -> CmdOutput {
        let bin = workspace_bin("tetherctl").expect("tetherctl binary");
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(args)
            .env("HOME", self.dir())
            .env("TETHER_CACHE_DIR", &files.cache_dir)
            .env("KUBECONFIG", &files.kubeconfig)
            .env("BROWSER", &self.browser)
            .env("TETHER_E2E_BROWSER_LOG", self.dir().join("browser.log"))
            .env("CHROMIUM", Deps::get().chromium().expect("chromium"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some((user, password)) = login_as {
            cmd.env("TETHER_E2E_USER", user)
                .env("TETHER_E2E_PASSWORD", password);
        }
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("tetherctl finished within 120 s")
            .expect("run tetherctl");
        CmdOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `tetherctl login` for `user` in the scripted browser.
    pub async fn login(&self, user: &str, password: &str) -> (UserFiles, CmdOutput) {
        let files = self.files(user);
        let hub = self.proxy.login.hub.url();
        let ca = self.proxy.login.hub.ca_file();
        let ca = ca.display().to_string();
        let kc = files.kubeconfig.display().to_string();
        let out = self
            .tetherctl(
                &files,
                &["login", "--hub", &hub, "--hub-ca", &ca, "--kubeconfig", &kc],
                Some((user, password)),
            )
            .await;
        (files, out)
    }

    /// `tetherctl login --no-browser` for `user`: reads the device URL tetherctl prints and
    /// has the scripted browser confirm the code and sign in, as a person would on another
    /// device. Returns tetherctl's output (stderr includes the prompt).
    pub async fn device_login(&self, user: &str, password: &str) -> (UserFiles, CmdOutput) {
        use tokio::io::AsyncBufReadExt as _;

        let files = self.files(user);
        let mut cmd = tokio::process::Command::new(workspace_bin("tetherctl").expect("tetherctl"));
        cmd.args(["login", "--no-browser", "--hub"])
            .arg(self.proxy.login.hub.url())
            .arg("--hub-ca")
            .arg(self.proxy.login.hub.ca_file())
            .arg("--kubeconfig")
            .arg(&files.kubeconfig)
            .env("HOME", self.dir())
            .env("TETHER_CACHE_DIR", &files.cache_dir)
            .env_remove("BROWSER")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn tetherctl");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut prompt = String::new();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                prompt.push_str(&line);
                prompt.push('\n');
                if let Some(start) = line.find("https://") {
                    let url = line[start..].trim().to_owned();
                    if url.contains("/device") {
                        return url;
                    }
                }
            }
            panic!("tetherctl ended without printing a device URL: {prompt}");
        })
        .await
        .expect("a device URL within 30 s");
        assert!(url.contains("user_code="), "{url}");
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(&self.browser)
                .arg(&url)
                .env("TETHER_E2E_USER", user)
                .env("TETHER_E2E_PASSWORD", password)
                .env("TETHER_E2E_BROWSER_LOG", self.dir().join("browser.log"))
                .env("CHROMIUM", Deps::get().chromium().expect("chromium"))
                .kill_on_drop(true)
                .status(),
        )
        .await
        .expect("the browser finished within 60 s")
        .expect("run the browser");
        assert!(
            out.success(),
            "the browser failed; see {}",
            self.dir().join("browser.out").display()
        );
        let rest = tokio::time::timeout(Duration::from_secs(60), async {
            let mut tail = String::new();
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                tail.push_str(&line);
                tail.push('\n');
            }
            tail
        })
        .await
        .expect("tetherctl finished within 60 s of the approval");
        let output = child.wait_with_output().await.expect("tetherctl");
        (
            files,
            CmdOutput {
                status: output.status,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: format!("{prompt}{rest}"),
            },
        )
    }

    /// kubectl with `files`' kubeconfig and the spoke's Tether context; the credential
    /// plugin uses `files`' cache.
    pub async fn kubectl(&self, files: &UserFiles, args: &[&str]) -> CmdOutput {
        let context = context();
        let mut all = vec!["--context", context.as_str()];
        all.extend_from_slice(args);
        let cache = files.cache_dir.display().to_string();
        tether_e2e::cluster::run_kubectl(
            &files.kubeconfig,
            self.dir(),
            &all,
            &[("TETHER_CACHE_DIR", cache.as_str())],
            None,
        )
        .await
        .expect("run kubectl")
    }

    /// Successful refreshes at the hub so far.
    pub async fn refreshes(&self) -> f64 {
        self.proxy
            .login
            .hub
            .metric(r#"tether_hub_token_requests_total{grant="refresh_token",outcome="success"}"#)
            .await
            .expect("hub metrics")
            .unwrap_or(0.0)
    }
}

/// `BROWSER` for tetherctl: a script that hands the URL to the playwright fixture.
fn write_browser_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let node = Deps::get().node().expect("node");
    let script = Deps::get()
        .node_fixture("browser")
        .expect("browser fixture")
        .join("cli_browser.mjs");
    let path = dir.join("browser.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nexec '{}' '{}' \"$1\" >>'{}' 2>&1\n",
            node.display(),
            script.display(),
            dir.join("browser.out").display()
        ),
    )
    .expect("write browser script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}
