//! `login` in a browser: the authorization code flow with PKCE for a native app (RFC 8252).
//!
//! A one-shot HTTP listener on `127.0.0.1:<random port>` receives the redirect at
//! `/callback`; a random `state` ties the answer to this login, and the hub's `iss`
//! (RFC 9207), when sent, must be the discovered issuer. The browser is started with
//! `$BROWSER <url>` (or `xdg-open`), and the URL is always printed too.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use tether_common::secret::ct_eq;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use url::Url;

use super::pkce::{self, Pkce};
use crate::error::{Error, Result};
use crate::hub::client::SCOPE;
use crate::hub::{CLIENT_ID, Discovery, HubClient, TokenResponse, grant_type};

/// The redirect path the hub accepts for `tetherctl` (any loopback port).
pub const CALLBACK_PATH: &str = "/callback";
/// Limit on reading one request from the browser.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read from the browser.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How many connections the listener serves before giving up (browsers open a few
/// speculative ones; nothing legitimate needs more).
const MAX_CONNECTIONS: usize = 256;

/// Opens a URL in the user's browser.
pub trait Opener {
    /// Starts opening `url`; does not wait for the browser.
    fn open(&self, url: &str) -> std::result::Result<(), String>;
}

/// Runs `$BROWSER <url>`, or the platform's opener (`xdg-open`, `open`).
#[derive(Clone, Debug, Default)]
pub struct SystemOpener {
    /// `$BROWSER`, if set: a program run with the URL as its one argument.
    pub browser: Option<String>,
}

impl Opener for SystemOpener {
    fn open(&self, url: &str) -> std::result::Result<(), String> {
        let program = self.browser.clone().unwrap_or_else(|| {
            if cfg!(target_os = "macos") {
                "open"
            } else {
                "xdg-open"
            }
            .to_owned()
        });
        std::process::Command::new(&program)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("cannot run {program}: {e}"))
    }
}

/// Runs the browser login and redeems the code; fails after `timeout` without an answer.
pub async fn login(
    client: &HubClient,
    discovery: &Discovery,
    opener: &dyn Opener,
    say: &mut dyn FnMut(&str) -> Result<()>,
    timeout: Duration,
) -> Result<TokenResponse> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| Error::Login(format!("cannot listen on 127.0.0.1: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Login(format!("cannot listen on 127.0.0.1: {e}")))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}{CALLBACK_PATH}");
    let pkce = Pkce::new()?;
    let state = pkce::random_token(24)?;
    let url = authorize_url(
        &discovery.authorization_endpoint,
        &redirect_uri,
        &pkce.challenge,
        &state,
    )?;

    say(&format!(
        "Opening the hub's login page in your browser. If it does not open, visit:\n\n    \
         {url}\n\n"
    ))?;
    if let Err(e) = opener.open(url.as_str()) {
        say(&format!("(could not start a browser: {e})\n"))?;
    }

    let expected = Expected {
        state,
        issuer: discovery.issuer.clone(),
    };
    let code = match tokio::time::timeout(timeout, serve(listener, expected)).await {
        Ok(outcome) => outcome?,
        Err(_) => return Err(Error::LoginTimeout(timeout)),
    };
    let form = [
        ("grant_type", grant_type::AUTHORIZATION_CODE),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_verifier", pkce.verifier.expose()),
        ("client_id", CLIENT_ID),
    ];
    client
        .token(&discovery.token_endpoint, &form)
        .await
        .map_err(|e| match e {
            Error::OAuth {
                code, description, ..
            } => Error::Login(format!(
                "the hub refused the authorization code: {code}{}",
                description.map(|d| format!(" ({d})")).unwrap_or_default()
            )),
            other => other,
        })
}

/// The authorization request: code flow, PKCE S256, `state`.
pub fn authorize_url(
    endpoint: &str,
    redirect_uri: &str,
    challenge: &str,
    state: &str,
) -> Result<Url> {
    let mut url = Url::parse(endpoint).map_err(|e| Error::BadResponse {
        url: "authorization_endpoint".to_owned(),
        reason: e.to_string(),
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPE)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", pkce::METHOD);
    Ok(url)
}

/// What the callback must carry.
#[derive(Clone, Debug)]
struct Expected {
    state: String,
    issuer: Option<String>,
}

/// Serves the listener until a callback arrives; its outcome is the login's.
async fn serve(listener: TcpListener, expected: Expected) -> Result<String> {
    let (tx, mut rx) = mpsc::channel::<Result<String>>(4);
    for _ in 0..MAX_CONNECTIONS {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted
                    .map_err(|e| Error::Login(format!("the loopback listener failed: {e}")))?;
                tokio::spawn(handle(stream, expected.clone(), tx.clone()));
            }
            Some(outcome) = rx.recv() => return outcome,
        }
    }
    Err(Error::Login(format!(
        "{MAX_CONNECTIONS} connections to the loopback listener without a login answer"
    )))
}

/// Answers one connection; a callback's outcome goes to `tx` once the page is written.
async fn handle(mut stream: TcpStream, expected: Expected, tx: mpsc::Sender<Result<String>>) {
    let Ok(Ok(Some(target))) = tokio::time::timeout(READ_TIMEOUT, read_target(&mut stream)).await
    else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != CALLBACK_PATH {
        let _ = respond(&mut stream, "404 Not Found", "Not found", "").await;
        return;
    }
    let outcome = callback_outcome(query, &expected);
    let _ = match &outcome {
        Ok(_) => {
            respond(
                &mut stream,
                "200 OK",
                "Logged in",
                "You are logged in to Tether. You can close this tab and return to the terminal.",
            )
            .await
        }
        Err(e) => {
            let reason = match e {
                Error::Login(reason) => reason.clone(),
                other => other.to_string(),
            };
            respond(
                &mut stream,
                "400 Bad Request",
                "Login failed",
                &format!("{reason}. You can close this tab; the terminal says what to do next."),
            )
            .await
        }
    };
    let _ = tx.send(outcome).await;
}

/// Reads the request head; the target of a `GET`, or `None`.
async fn read_target(stream: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next().unwrap_or_default().split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("GET"), Some(target), Some(version)) if version.starts_with("HTTP/1.") => {
            Ok(Some(target.to_owned()))
        }
        _ => Ok(None),
    }
}

/// The code, or why the callback is refused. `state` is checked first (RFC 6749 §10.12).
fn callback_outcome(query: &str, expected: &Expected) -> Result<String> {
    let mut params: HashMap<String, String> = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if params
            .insert(key.into_owned(), value.into_owned())
            .is_some()
        {
            return Err(Error::Login(
                "the login answer repeats a parameter".to_owned(),
            ));
        }
    }
    let state = params.get("state").map(String::as_str).unwrap_or_default();
    if !ct_eq(state.as_bytes(), expected.state.as_bytes()) {
        return Err(Error::Login(
            "the login answer is not for this login (wrong state); start again".to_owned(),
        ));
    }
    if let (Some(iss), Some(issuer)) = (params.get("iss"), &expected.issuer)
        && iss != issuer
    {
        return Err(Error::Login(format!(
            "the login answer comes from issuer {iss:?}, not {issuer:?}"
        )));
    }
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(Error::Login(format!(
            "the hub answered {error}{description}"
        )));
    }
    params
        .remove("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::Login("the login answer has no code".to_owned()))
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    title: &str,
    message: &str,
) -> std::io::Result<()> {
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Tether: {title}</title>\
         </head>\n<body style=\"font-family: sans-serif; margin: 3em\"><h1>{title}</h1>\n<p>{}</p>\
         </body></html>\n",
        html_escape(message)
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
