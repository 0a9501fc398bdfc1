//! [`SessionsConfig`]: the `sessions:` configuration section.

use std::time::Duration;

use serde::Deserialize;

use crate::config::HumanDuration;

/// `sessions`: lifetimes of hub sessions and of what they issue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// A session unused (no refresh) for this long ends (default `15m`).
    #[serde(default = "SessionsConfig::default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// A session ends this long after login, however used (default `12h`).
    #[serde(default = "SessionsConfig::default_absolute_lifetime")]
    pub absolute_lifetime: HumanDuration,
    /// How long an authorization code can be redeemed (default `60s`).
    #[serde(default = "SessionsConfig::default_code_lifetime")]
    pub code_lifetime: HumanDuration,
    /// How long a browser may take at the upstream IdP (default `10m`).
    #[serde(default = "SessionsConfig::default_login_timeout")]
    pub login_timeout: HumanDuration,
    /// Lifetime of the hub's access tokens (default `5m`).
    #[serde(default = "SessionsConfig::default_access_token_lifetime")]
    pub access_token_lifetime: HumanDuration,
    /// Lifetime of ID tokens (default `5m`).
    #[serde(default = "SessionsConfig::default_id_token_lifetime")]
    pub id_token_lifetime: HumanDuration,
    /// How long a device code (RFC 8628, `tetherctl login --no-browser`) can be approved
    /// and redeemed (default `10m`, at most `1h`).
    #[serde(default = "SessionsConfig::default_device_code_lifetime")]
    pub device_code_lifetime: HumanDuration,
    /// The minimum polling interval a device is told (RFC 8628 `interval`, default `5s`).
    #[serde(default = "SessionsConfig::default_device_poll_interval")]
    pub device_poll_interval: HumanDuration,
}

impl SessionsConfig {
    fn default_idle_timeout() -> HumanDuration {
        HumanDuration::from_secs(15 * 60)
    }

    fn default_absolute_lifetime() -> HumanDuration {
        HumanDuration::from_secs(12 * 3600)
    }

    fn default_code_lifetime() -> HumanDuration {
        HumanDuration::from_secs(60)
    }

    fn default_login_timeout() -> HumanDuration {
        HumanDuration::from_secs(10 * 60)
    }

    fn default_access_token_lifetime() -> HumanDuration {
        HumanDuration::from_secs(5 * 60)
    }

    fn default_id_token_lifetime() -> HumanDuration {
        HumanDuration::from_secs(5 * 60)
    }

    fn default_device_code_lifetime() -> HumanDuration {
        HumanDuration::from_secs(10 * 60)
    }

    fn default_device_poll_interval() -> HumanDuration {
        HumanDuration::from_secs(5)
    }

    /// Checks the section on its own; `max_token_lifetime` is `keys.max_token_lifetime`.
    /// Returns the offending field (`sessions.idle_timeout`) and why.
    pub fn check(&self, max_token_lifetime: Duration) -> Result<(), (String, String)> {
        let fields = [
            ("idle_timeout", self.idle_timeout),
            ("absolute_lifetime", self.absolute_lifetime),
            ("code_lifetime", self.code_lifetime),
            ("login_timeout", self.login_timeout),
            ("access_token_lifetime", self.access_token_lifetime),
            ("id_token_lifetime", self.id_token_lifetime),
            ("device_code_lifetime", self.device_code_lifetime),
            ("device_poll_interval", self.device_poll_interval),
        ];
        for (name, value) in fields {
            if value.as_duration().as_secs() == 0 {
                return Err((format!("sessions.{name}"), "must be at least 1s".to_owned()));
            }
        }
        if self.idle_timeout > self.absolute_lifetime {
            return Err((
                "sessions.idle_timeout".to_owned(),
                format!(
                    "{} exceeds sessions.absolute_lifetime ({})",
                    self.idle_timeout, self.absolute_lifetime
                ),
            ));
        }
        if self.code_lifetime.as_duration() > Duration::from_secs(600) {
            return Err((
                "sessions.code_lifetime".to_owned(),
                format!(
                    "{} is too long: at most 10m (RFC 6749 §4.1.2)",
                    self.code_lifetime
                ),
            ));
        }
        if self.device_code_lifetime.as_duration() > Duration::from_secs(3600) {
            return Err((
                "sessions.device_code_lifetime".to_owned(),
                format!("{} is too long: at most 1h", self.device_code_lifetime),
            ));
        }
        if self.device_poll_interval >= self.device_code_lifetime {
            return Err((
                "sessions.device_poll_interval".to_owned(),
                format!(
                    "{} must be shorter than sessions.device_code_lifetime ({})",
                    self.device_poll_interval, self.device_code_lifetime
                ),
            ));
        }
        for (name, value) in [
            ("access_token_lifetime", self.access_token_lifetime),
            ("id_token_lifetime", self.id_token_lifetime),
        ] {
            if value.as_duration() > max_token_lifetime {
                return Err((
                    format!("sessions.{name}"),
                    format!(
                        "{value} exceeds keys.max_token_lifetime ({})",
                        humantime::format_duration(max_token_lifetime)
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Self::default_idle_timeout(),
            absolute_lifetime: Self::default_absolute_lifetime(),
            code_lifetime: Self::default_code_lifetime(),
            login_timeout: Self::default_login_timeout(),
            access_token_lifetime: Self::default_access_token_lifetime(),
            id_token_lifetime: Self::default_id_token_lifetime(),
            device_code_lifetime: Self::default_device_code_lifetime(),
            device_poll_interval: Self::default_device_poll_interval(),
        }
    }
}
