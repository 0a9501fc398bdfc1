//! One hub in front of one IdP, with a confidential client standing for ArgoCD and a
//! registered cluster `spoke-1`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tether_common::secret::Secret;
use tether_common::time::{Clock as _, SystemClock};
use tether_e2e::{
    Hub, HubOptions, IdpClient, IdpOptions, LoginHub, Pkce, TestDir, UpstreamIdp, form_login_via,
    free_port,
};
use tether_hub::registry::ClusterName;
use tether_hub::store::{DatabaseUrl, Store, StoreConfig};

/// The confidential client standing for ArgoCD.
pub const CLIENT_ID: &str = "argocd";
/// Its secret (the hub's config holds only its hash).
pub const CLIENT_SECRET: &str = "argocd-e2e-secret-0123456789abcdef";
/// Its registered redirect URI (nothing listens there: logins stop at it).
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/argocd/auth/callback";
/// The cluster registered in the hub.
pub const CLUSTER: &str = "spoke-1";

/// A running IdP + hub pair.
pub struct LoginEnv {
    pub idp: UpstreamIdp,
    pub hub: Hub,
    db_file: std::path::PathBuf,
    _dir: TestDir,
}

impl LoginEnv {
    /// Starts the IdP and a hub (SQLite) using it; `recheck` is the upstream re-check
    /// interval, `extra` more YAML appended to the hub's configuration.
    pub async fn start(name: &str, recheck: &str, extra: &str) -> Self {
        Self::start_with_tokens(name, recheck, extra, "60s", "30s").await
    }

    /// [`LoginEnv::start`] with `tokens.cluster_token_lifetime` = `lifetime` and
    /// `keys.clock_skew` (the leeway of the hub and of agents) = `skew`.
    pub async fn start_with_tokens(
        name: &str,
        recheck: &str,
        extra: &str,
        lifetime: &str,
        skew: &str,
    ) -> Self {
        let dir = TestDir::new(name).expect("test dir");
        let port = free_port().expect("port");
        let hub_url = format!("https://127.0.0.1:{port}");
        let idp = UpstreamIdp::start(
            &dir,
            IdpOptions::new().client(IdpClient::new(
                tether_e2e::UPSTREAM_CLIENT_ID,
                "upstream-secret",
                &[&format!("{hub_url}/callback")],
            )),
        )
        .await
        .expect("idp");
        let hash = tether_hub::clients::hash_secret(&Secret::new(CLIENT_SECRET));
        let login = LoginHub {
            port,
            idp_issuer: idp.issuer().to_owned(),
            upstream_secret: "upstream-secret".into(),
            recheck_interval: recheck.into(),
            cluster_token_lifetime: lifetime.into(),
            clock_skew: skew.into(),
            extra_yaml: format!(
                r#"clients:
  - id: {CLIENT_ID}
    kind: confidential
    secret_hash: "{hash}"
    redirect_uris: ["{REDIRECT_URI}"]
    token_exchange: ["spoke-*"]
{extra}"#
            ),
        };
        let hub = Hub::start(
            &dir,
            HubOptions::with_login("hub", &login).expect("options"),
        )
        .await
        .expect("hub with upstream");
        let data = hub.data_dir().to_path_buf();
        let url = DatabaseUrl::parse(&format!("sqlite://{}", data.join("hub.db").display()))
            .expect("db url");
        let store = Store::connect(&StoreConfig::new(url))
            .await
            .expect("open the hub's store");
        store
            .add_cluster(
                &ClusterName::parse(CLUSTER).expect("name"),
                &BTreeMap::new(),
                SystemClock.now(),
            )
            .await
            .expect("register spoke-1");
        store.close().await;
        Self {
            idp,
            hub,
            db_file: data.join("hub.db"),
            _dir: dir,
        }
    }

    /// Runs the certified openid-client through the hub as `user`; `cluster` to exchange for.
    pub async fn openid_client(&self, user: &str, password: &str, cluster: &str) -> Value {
        let ca = self.hub.ca_file().display().to_string();
        let out = tether_e2e::NodeScript::new("rp", "hub_login.mjs")
            .expect("rp fixture")
            .env("NODE_EXTRA_CA_CERTS", &ca)
            .timeout(Duration::from_secs(60))
            .run(&[
                &self.hub.url(),
                CLIENT_ID,
                CLIENT_SECRET,
                REDIRECT_URI,
                user,
                password,
                cluster,
            ])
            .await
            .expect("run hub_login.mjs");
        assert!(
            out.success(),
            "openid-client failed: {}\n{}",
            out.stderr,
            out.stdout
        );
        serde_json::from_str(out.stdout.trim()).expect("hub_login.mjs prints JSON")
    }

    /// The hub's authorization URL for the ArgoCD client.
    pub fn authorize_url(&self, pkce: &Pkce, state: &str, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.hub.url())).expect("url");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", "openid profile groups offline_access")
            .append_pair("state", state)
            .append_pair("nonce", "n-0S6_WzA2Mj")
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            url.query_pairs_mut().append_pair(k, v);
        }
        url.into()
    }

    /// Logs `user` in through the hub (headless form login at the IdP) and returns the
    /// callback URL's `code` (after checking `state`) and the PKCE pair used.
    pub async fn code(&self, user: &str, password: &str) -> (String, Pkce) {
        let pkce = Pkce::new().expect("pkce");
        let state = "st-e2e";
        let callback = form_login_via(
            self.hub.http(),
            &self.authorize_url(&pkce, state, &[]),
            user,
            password,
            REDIRECT_URI,
        )
        .await
        .expect("login through the hub");
        let q: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
        assert_eq!(
            q.get("state").map(String::as_str),
            Some(state),
            "{callback}"
        );
        assert_eq!(
            q.get("iss"),
            Some(&self.hub.url()),
            "RFC 9207 iss: {callback}"
        );
        (q.get("code").cloned().expect("code in the callback"), pkce)
    }

    /// POSTs a form to the token endpoint as the ArgoCD client (Basic auth) unless
    /// `basic` is None; returns (status, JSON body).
    pub async fn token(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
        let mut req = self
            .hub
            .http()
            .post(format!("{}/token", self.hub.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form));
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let resp = req.send().await.expect("POST /token");
        let status = resp.status().as_u16();
        let cache = resp
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let body: Value = resp.json().await.expect("token endpoint answers JSON");
        assert_eq!(
            cache.as_deref(),
            Some("no-store"),
            "token responses are not cached"
        );
        (status, body)
    }

    /// Redeems `code` for tokens as the ArgoCD client.
    pub async fn redeem(&self, code: &str, pkce: &Pkce) -> (u16, Value) {
        self.token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &pkce.verifier),
            ],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await
    }

    /// A full login: tokens for `user`.
    pub async fn login(&self, user: &str, password: &str) -> Value {
        let (code, pkce) = self.code(user, password).await;
        let (status, body) = self.redeem(&code, &pkce).await;
        assert_eq!(status, 200, "code redemption: {body}");
        body
    }

    /// Refreshes as the ArgoCD client.
    pub async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        self.token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await
    }

    /// Exchanges a hub access token for a token for `cluster`.
    pub async fn exchange(&self, access_token: &str, cluster: &str) -> (u16, Value) {
        self.token(
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", access_token),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("audience", cluster),
            ],
            Some((CLIENT_ID, CLIENT_SECRET)),
        )
        .await
    }

    /// The test directory (for more parts in the same test).
    pub fn dir(&self) -> &TestDir {
        &self._dir
    }

    /// The hub's SQLite file.
    pub fn db_file(&self) -> &std::path::Path {
        &self.db_file
    }

    /// Row counts of the session tables (to prove a refused request stored nothing).
    pub async fn counts(&self) -> BTreeMap<&'static str, i64> {
        use sqlx::Row as _;
        let url = format!("sqlite://{}?mode=ro", self.db_file.display());
        let pool = sqlx::SqlitePool::connect(&url)
            .await
            .expect("open hub.db read-only");
        let mut out = BTreeMap::new();
        for table in ["sessions", "auth_codes", "refresh_tokens", "pending_logins"] {
            let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) AS n FROM {table}"
            )))
            .fetch_one(&pool)
            .await
            .expect("count")
            .get("n");
            out.insert(table, n);
        }
        pool.close().await;
        out
    }
}

/// `application/x-www-form-urlencoded` text of `pairs`.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}
