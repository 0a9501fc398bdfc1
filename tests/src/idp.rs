//! The upstream IdP fixture: `tests/fixtures/idp/idp.mjs` (oidc-provider, Okta-like: groups
//! only at userinfo, lock/unlock and group changes through an admin API).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::deps::Deps;
use crate::error::{Error, Result};
use crate::http::plain_client;
use crate::login::{Pkce, form_login, random_token};
use crate::ports::port_for;
use crate::process::ProcessGuard;
use crate::testdir::TestDir;

/// Scope asked by [`UpstreamIdp::login`].
pub const DEFAULT_SCOPE: &str = "openid profile email groups offline_access";

/// A confidential client registered at the IdP.
#[derive(Debug, Clone)]
pub struct IdpClient {
    /// client_id.
    pub id: String,
    /// client_secret.
    pub secret: String,
    /// Allowed redirect URIs (the first is used by [`UpstreamIdp::login`]).
    pub redirect_uris: Vec<String>,
}

impl IdpClient {
    /// A client.
    pub fn new(id: &str, secret: &str, redirect_uris: &[&str]) -> Self {
        Self {
            id: id.to_string(),
            secret: secret.to_string(),
            redirect_uris: redirect_uris.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// How to start an [`UpstreamIdp`].
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    port: Option<u16>,
    clients: Vec<IdpClient>,
    groups_in_id_token: bool,
    env: Vec<(String, String)>,
}

impl IdpOptions {
    /// Defaults: a free port, one client `hub`/`hub-secret` with redirect URI
    /// `http://127.0.0.1:8080/callback`, groups only at userinfo.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens on this port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Registers a client (call several times for several clients).
    pub fn client(mut self, client: IdpClient) -> Self {
        self.clients.push(client);
        self
    }

    /// Puts `groups` in the id_token too (not Okta's default).
    pub fn groups_in_id_token(mut self) -> Self {
        self.groups_in_id_token = true;
        self
    }

    /// Any other `IDP_*` environment knob of idp.mjs (e.g. `IDP_ACCESS_TTL`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// Tokens from the IdP's token endpoint.
#[derive(Debug, Clone)]
pub struct IdpTokens {
    /// access_token.
    pub access_token: String,
    /// id_token.
    pub id_token: String,
    /// refresh_token (asked with offline_access).
    pub refresh_token: Option<String>,
    /// The whole response.
    pub raw: Value,
}

/// A running IdP.
#[derive(Debug)]
pub struct UpstreamIdp {
    _guard: ProcessGuard,
    issuer: String,
    port: u16,
    clients: Vec<IdpClient>,
    http: reqwest::Client,
    _dir: TestDir,
}

impl UpstreamIdp {
    /// Starts `node idp.mjs` and waits for its discovery document.
    pub async fn start(dir: &TestDir, opts: IdpOptions) -> Result<Self> {
        let part = "idp (node idp.mjs)";
        let deps = Deps::get();
        let node = deps.node()?;
        let fixture = deps.node_fixture("idp")?;
        let port = port_for(part, opts.port)?;
        let issuer = format!("http://127.0.0.1:{port}");
        let clients = if opts.clients.is_empty() {
            vec![IdpClient::new(
                "hub",
                "hub-secret",
                &["http://127.0.0.1:8080/callback"],
            )]
        } else {
            opts.clients
        };
        let idp_dir = dir.subdir(&format!("idp-{port}"))?;
        let clients_json: Vec<Value> = clients
            .iter()
            .map(|c| serde_json::json!({"client_id": c.id, "client_secret": c.secret, "redirect_uris": c.redirect_uris}))
            .collect();
        let clients_file = idp_dir.join("clients.json");
        crate::cluster::write(&clients_file, &Value::Array(clients_json).to_string())?;
        let mut cmd = Command::new(node);
        cmd.current_dir(&fixture)
            .arg(fixture.join("idp.mjs"))
            .arg(format!("--port={port}"))
            .arg(format!("--issuer={issuer}"))
            .arg(format!("--clients-file={}", clients_file.display()))
            .arg(format!(
                "--jwks-file={}",
                idp_dir.join("jwks.json").display()
            ))
            .env("NODE_NO_WARNINGS", "1");
        if opts.groups_in_id_token {
            cmd.arg("--groups-in-id-token");
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut guard = ProcessGuard::spawn(part, cmd, dir, &format!("idp-{port}.log"))?;
        let http = plain_client()?;
        let disco = format!("{issuer}/.well-known/openid-configuration");
        guard
            .wait_ready(&format!("GET {disco}"), Duration::from_secs(20), || async {
                matches!(http.get(&disco).send().await, Ok(r) if r.status().is_success())
            })
            .await?;
        Ok(Self {
            _guard: guard,
            issuer,
            port,
            clients,
            http,
            _dir: dir.clone(),
        })
    }

    /// The issuer, `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registered clients.
    pub fn clients(&self) -> &[IdpClient] {
        &self.clients
    }

    /// The first registered client.
    pub fn client(&self) -> &IdpClient {
        &self.clients[0]
    }

    /// Locks `user`: no login, refresh fails with invalid_grant, userinfo with invalid_token.
    pub async fn lock(&self, user: &str) -> Result<Value> {
        self.admin(
            reqwest::Method::POST,
            &format!("/admin/users/{user}/lock"),
            None,
        )
        .await
    }

    /// Unlocks `user`.
    pub async fn unlock(&self, user: &str) -> Result<Value> {
        self.admin(
            reqwest::Method::POST,
            &format!("/admin/users/{user}/unlock"),
            None,
        )
        .await
    }

    /// Replaces `user`'s groups (seen at userinfo and on refresh).
    pub async fn set_groups(&self, user: &str, groups: &[&str]) -> Result<Value> {
        let body = serde_json::json!(groups);
        self.admin(
            reqwest::Method::PUT,
            &format!("/admin/users/{user}/groups"),
            Some(body),
        )
        .await
    }

    /// All users (no passwords) with their `locked` flag.
    pub async fn users(&self) -> Result<Value> {
        self.admin(reqwest::Method::GET, "/admin/users", None).await
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.issuer);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .map_err(Error::http(format!("idp admin {method} {path}")))?;
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .map_err(Error::http(format!("idp admin {method} {path}: body")))?;
        if status.is_success() {
            Ok(v)
        } else {
            Err(Error::Failed(format!(
                "idp admin {method} {path}: {status} {v}"
            )))
        }
    }

    /// The IdP's authorization URL for `client` (code flow, PKCE S256).
    pub fn authorization_url(
        &self,
        client: &IdpClient,
        redirect_uri: &str,
        scope: &str,
        pkce: &Pkce,
        state: &str,
        nonce: &str,
    ) -> String {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("{}/auth?{q}", self.issuer)
    }

    /// A full authorization-code + PKCE login as `user` for the first client (its first
    /// redirect URI, scope [`DEFAULT_SCOPE`]), through the HTML form; checks `state` and
    /// redeems the code.
    pub async fn login(&self, user: &str, password: &str) -> Result<IdpTokens> {
        let client = self.client().clone();
        self.login_as(&client, user, password).await
    }

    /// [`UpstreamIdp::login`] for a given client.
    pub async fn login_as(
        &self,
        client: &IdpClient,
        user: &str,
        password: &str,
    ) -> Result<IdpTokens> {
        let redirect_uri = client
            .redirect_uris
            .first()
            .ok_or_else(|| Error::Failed("client without redirect URI".into()))?;
        let pkce = Pkce::new()?;
        let (state, nonce) = (random_token()?, random_token()?);
        let start =
            self.authorization_url(client, redirect_uri, DEFAULT_SCOPE, &pkce, &state, &nonce);
        let callback = form_login(&start, user, password, redirect_uri).await?;
        let q: std::collections::HashMap<String, String> =
            callback.query_pairs().into_owned().collect();
        if q.get("state") != Some(&state) {
            return Err(Error::Failed(format!(
                "callback state mismatch: {callback}"
            )));
        }
        let code = q
            .get("code")
            .ok_or_else(|| Error::Failed(format!("callback without code: {callback}")))?;
        let (status, v) = self
            .token(
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", &pkce.verifier),
                ],
            )
            .await?;
        if status != 200 {
            return Err(Error::Failed(format!("code exchange failed: {status} {v}")));
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(IdpTokens {
            access_token: s("access_token")
                .ok_or_else(|| Error::Failed(format!("no access_token: {v}")))?,
            id_token: s("id_token").ok_or_else(|| Error::Failed(format!("no id_token: {v}")))?,
            refresh_token: s("refresh_token"),
            raw: v,
        })
    }

    /// POSTs to the token endpoint with HTTP Basic client auth; returns status and JSON.
    pub async fn token(&self, client: &IdpClient, form: &[(&str, &str)]) -> Result<(u16, Value)> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        let resp = self
            .http
            .post(format!("{}/token", self.issuer))
            .basic_auth(&client.id, Some(&client.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(Error::http("idp token endpoint"))?;
        let status = resp.status().as_u16();
        let v = resp
            .json()
            .await
            .map_err(Error::http("idp token endpoint: body"))?;
        Ok((status, v))
    }

    /// A refresh_token grant for `client`: status and JSON (400 + invalid_grant when locked).
    pub async fn refresh(&self, client: &IdpClient, refresh_token: &str) -> Result<(u16, Value)> {
        self.token(
            client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// GET userinfo with `access_token`: status and JSON (or `null` when the body is not JSON).
    pub async fn userinfo(&self, access_token: &str) -> Result<(u16, Value)> {
        let resp = self
            .http
            .get(format!("{}/me", self.issuer))
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(Error::http("idp userinfo"))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(Error::http("idp userinfo: body"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}
