//! `login --no-browser`: the device authorization grant (RFC 8628). Prints where to go and
//! the code to confirm, then polls the token endpoint, honouring `interval` and
//! `slow_down`, until the code expires.

use std::future::Future;
use std::time::Duration;

use tether_common::time::Clock;

use crate::error::{Error, Result};
use crate::hub::client::error_code;
use crate::hub::{CLIENT_ID, Discovery, HubClient, TokenResponse, grant_type};

/// RFC 8628 §3.2: the default polling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// RFC 8628 §3.5: how much `slow_down` adds to the interval.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Longest a device code is polled for, whatever the hub says.
pub const MAX_WAIT: Duration = Duration::from_secs(30 * 60);

/// Runs the device grant for at most `limit` (or until the code expires). `say` shows text
/// to the user; `sleep` waits between polls (real time in `login`, instant in tests, with
/// `clock` moved along).
pub async fn login<S, F>(
    client: &HubClient,
    discovery: &Discovery,
    limit: Duration,
    clock: &dyn Clock,
    say: &mut dyn FnMut(&str) -> Result<()>,
    sleep: S,
) -> Result<TokenResponse>
where
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let endpoint = discovery
        .device_authorization_endpoint
        .as_deref()
        .ok_or(Error::Login(format!(
            "the hub at {} does not offer device login (no device_authorization_endpoint); \
             run `tetherctl login` without --no-browser",
            client.hub()
        )))?;
    let device = client.device_authorization(endpoint).await?;
    let started = clock.now();
    let lifetime = Duration::from_secs(device.expires_in)
        .min(limit)
        .min(MAX_WAIT);
    let deadline = started.saturating_add(lifetime);
    let uri = device
        .verification_uri_complete
        .as_deref()
        .unwrap_or(&device.verification_uri);
    say(&format!(
        "To log in, open this URL in a browser on any device:\n\n    {uri}\n\nand confirm \
         the code {}. Waiting for up to {}...\n",
        device.user_code,
        humantime::format_duration(lifetime)
    ))?;

    let mut interval = device
        .interval
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
        .max(Duration::from_secs(1));
    // Bounded by the deadline; the count bound guards against a clock that never moves.
    let max_polls = lifetime.as_secs() + 2;
    for _ in 0..max_polls {
        sleep(interval).await;
        if clock.now() >= deadline {
            break;
        }
        let form = [
            ("grant_type", grant_type::DEVICE_CODE),
            ("device_code", device.device_code.expose()),
            ("client_id", CLIENT_ID),
        ];
        match client.token(&discovery.token_endpoint, &form).await {
            Ok(tokens) => return Ok(tokens),
            Err(Error::OAuth {
                code, description, ..
            }) => match code.as_str() {
                error_code::AUTHORIZATION_PENDING => {}
                error_code::SLOW_DOWN => interval += SLOW_DOWN_STEP,
                error_code::EXPIRED_TOKEN => break,
                error_code::ACCESS_DENIED => {
                    return Err(Error::Login(format!(
                        "the login was denied{}",
                        description.map(|d| format!(" ({d})")).unwrap_or_default()
                    )));
                }
                _ => {
                    return Err(Error::Login(format!(
                        "the hub refused the device login: {code}{}",
                        description.map(|d| format!(" ({d})")).unwrap_or_default()
                    )));
                }
            },
            Err(other) => return Err(other),
        }
    }
    Err(Error::Login(format!(
        "the code {} was not confirmed within {}; run `tetherctl login --no-browser` again",
        device.user_code,
        humantime::format_duration(lifetime)
    )))
}
