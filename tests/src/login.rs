//! Headless login through plain HTML forms: the authorization-code (+ PKCE) dance a browser
//! does, with a cookie jar and redirects followed by hand, stopping at the redirect_uri.
//! Works at any authorization URL (the IdP directly, or the hub fronting it).

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use url::Url;

use crate::error::{Error, Result};
use crate::http::plain_client;

/// At most this many HTTP hops per login.
const MAX_HOPS: usize = 30;
/// Upper bound for a whole login.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A PKCE verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// The code_verifier.
    pub verifier: String,
    /// The code_challenge (S256).
    pub challenge: String,
}

impl Pkce {
    /// A fresh random pair.
    pub fn new() -> Result<Self> {
        let verifier = random_token()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        Ok(Self {
            challenge: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            verifier,
        })
    }
}

/// 32 random bytes, base64url (for state, nonce, verifiers).
pub fn random_token() -> Result<String> {
    let mut b = [0u8; 32];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::Failed("no system randomness".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// The claims of a JWT, NOT verified (for assertions in tests only).
pub fn jwt_claims(jwt: &str) -> Result<serde_json::Value> {
    let payload = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| Error::Failed("not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| Error::Failed(format!("JWT payload is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Failed(format!("JWT payload is not JSON: {e}")))
}

/// Starts at `start_url` (an authorization URL), follows redirects by hand with a cookie
/// jar, fills the first HTML form it meets with `username`/`password` (plus its hidden
/// inputs), and returns the first URL that starts with `redirect_uri_prefix` (the callback
/// with `code` and `state`), without requesting it. Bounded: 30 hops, 30 s.
pub async fn form_login(
    start_url: &str,
    username: &str,
    password: &str,
    redirect_uri_prefix: &str,
) -> Result<Url> {
    form_login_via(
        &plain_client()?,
        start_url,
        username,
        password,
        redirect_uri_prefix,
    )
    .await
}

/// [`form_login`] with a given HTTP client, e.g. one that trusts the hub's CA
/// ([`crate::Hub::http`]) when the login starts at the hub.
pub async fn form_login_via(
    http: &reqwest::Client,
    start_url: &str,
    username: &str,
    password: &str,
    redirect_uri_prefix: &str,
) -> Result<Url> {
    tokio::time::timeout(
        LOGIN_TIMEOUT,
        login_inner(http, start_url, username, password, redirect_uri_prefix),
    )
    .await
    .map_err(|_| {
        Error::Failed(format!(
            "login at {start_url} did not finish in {LOGIN_TIMEOUT:?}"
        ))
    })?
}

async fn login_inner(
    http: &reqwest::Client,
    start_url: &str,
    username: &str,
    password: &str,
    prefix: &str,
) -> Result<Url> {
    let mut jar = Jar::default();
    let mut url = Url::parse(start_url)
        .map_err(|e| Error::Failed(format!("bad start URL {start_url}: {e}")))?;
    let mut posted = false;
    for _ in 0..MAX_HOPS {
        if url.as_str().starts_with(prefix) {
            return Ok(url);
        }
        let resp = http
            .get(url.clone())
            .header("cookie", jar.header())
            .send()
            .await
            .map_err(Error::http(format!("login: GET {url}")))?;
        jar.store(&resp);
        if let Some(next) = location(&resp, &url)? {
            url = next;
            continue;
        }
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(Error::http("login: reading a page"))?;
        if !status.is_success() || posted || !body.contains("<form") {
            return Err(Error::Failed(format!(
                "login: unexpected {status} at {url}: {}",
                excerpt(&body)
            )));
        }
        let (action, mut fields) = parse_form(&body)?;
        let action = url
            .join(&action)
            .map_err(|e| Error::Failed(format!("bad form action {action}: {e}")))?;
        fields.insert("username".into(), username.into());
        fields.insert("password".into(), password.into());
        let resp = http
            .post(action.clone())
            .header("cookie", jar.header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields.iter())
                    .finish(),
            )
            .send()
            .await
            .map_err(Error::http(format!("login: POST {action}")))?;
        jar.store(&resp);
        posted = true;
        match location(&resp, &action)? {
            Some(next) => url = next,
            None => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                return Err(Error::Failed(format!(
                    "login form rejected ({status}): {}",
                    excerpt(&body)
                )));
            }
        }
    }
    Err(Error::Failed(format!(
        "login: no redirect to {prefix} within {MAX_HOPS} hops (last {url})"
    )))
}

fn location(resp: &reqwest::Response, base: &Url) -> Result<Option<Url>> {
    if !resp.status().is_redirection() {
        return Ok(None);
    }
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Failed(format!("redirect without Location at {base}")))?;
    base.join(loc)
        .map(Some)
        .map_err(|e| Error::Failed(format!("bad Location {loc}: {e}")))
}

/// The first form's action and the named inputs that carry a value (hidden fields).
fn parse_form(html: &str) -> Result<(String, HashMap<String, String>)> {
    let form = &html[html.find("<form").unwrap_or(0)..];
    let form_tag = &form[..form.find('>').unwrap_or(form.len())];
    let action = attr(form_tag, "action").unwrap_or_default();
    let mut fields = HashMap::new();
    let end = form.find("</form>").unwrap_or(form.len());
    for chunk in form[..end].split("<input").skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap_or(chunk.len())];
        if let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.insert(name, value);
        }
    }
    Ok((unescape(&action), fields))
}

fn attr(tag: &str, name: &str) -> Option<String> {
    for q in ['"', '\''] {
        let key = format!(" {name}={q}");
        if let Some(i) = tag.find(&key) {
            let rest = &tag[i + key.len()..];
            return rest.find(q).map(|j| unescape(&rest[..j]));
        }
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&#38;", "&")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn excerpt(body: &str) -> String {
    body.chars().take(400).collect()
}

/// A naive cookie jar (name -> value): enough for loopback tests (hosts differ only by port,
/// and cookies ignore ports anyway).
#[derive(Debug, Default)]
struct Jar(HashMap<String, String>);

impl Jar {
    fn store(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|kv| kv.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("expires=thu, 01 jan 1970")
            });
            if expired || value.is_empty() {
                self.0.remove(name.trim());
            } else {
                self.0
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
