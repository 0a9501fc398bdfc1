//! `serve --dev`: a complete configuration with no file, rooted in a data directory.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, parse_yaml};

/// The file in a dev data directory holding the effective configuration of the last
/// `serve --dev` there.
pub const DEV_CONFIG_FILE: &str = "hub.yaml";

/// What `serve --dev` needs to know; everything else has a dev default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevOptions {
    /// Holds `hub.db`, `kek`, `ca.crt`, `ca.key`, `server.crt`, `server.key`.
    pub data_dir: PathBuf,
    /// The bound HTTPS address; the issuer is `https://127.0.0.1:PORT` with its port.
    pub listen: SocketAddr,
    /// The bound metrics address.
    pub metrics_listen: SocketAddr,
}

impl DevOptions {
    /// Default HTTPS address in dev mode.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8443);
    /// Default gRPC address in dev mode.
    pub const DEFAULT_GRPC_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8444);
    /// Default metrics address in dev mode: an ephemeral port (printed at startup), so
    /// several dev hubs can run side by side.
    pub const DEFAULT_METRICS_LISTEN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

    /// The SQLite database file.
    pub fn database_file(&self) -> PathBuf {
        self.data_dir.join("hub.db")
    }

    /// The key-encryption key file.
    pub fn kek_file(&self) -> PathBuf {
        self.data_dir.join("kek")
    }
}

impl Config {
    /// The dev configuration: SQLite and KEK in the data dir, a self-signed CA there,
    /// issuer `https://127.0.0.1:PORT`, upstream login disabled.
    ///
    /// It goes through the same parser and validation as a file, so it can never drift
    /// from the schema.
    pub fn dev(options: &DevOptions) -> Result<Self, ConfigError> {
        Ok(Self::dev_with_text(options)?.0)
    }

    /// [`Config::dev`] and the YAML it was parsed from; `serve --dev` writes that text to
    /// [`DEV_CONFIG_FILE`] in the data directory, so offline commands (`admin-token`,
    /// `keys`) given `--dev --data-dir DIR` use exactly the running hub's configuration.
    pub fn dev_with_text(options: &DevOptions) -> Result<(Self, String), ConfigError> {
        let text = dev_yaml(options)?;
        let config = parse_yaml::<Self>(&text)?;
        config.validate()?;
        Ok((config, text))
    }
}

/// Renders the dev configuration as YAML.
fn dev_yaml(options: &DevOptions) -> Result<String, ConfigError> {
    let dir = &options.data_dir;
    let quoted = |path: &Path| -> Result<String, ConfigError> {
        let text = path.to_str().ok_or_else(|| ConfigError::DevDir {
            path: dir.clone(),
            reason: "path is not valid UTF-8".to_owned(),
        })?;
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::to_string(text).map_err(|err| ConfigError::DevDir {
            path: dir.clone(),
            reason: err.to_string(),
        })
    };
    let db_url = quoted(Path::new(&format!(
        "sqlite://{}",
        options.database_file().display()
    )))?;
    let kek = quoted(&options.kek_file())?;
    let tls_dir = quoted(dir)?;
    let issuer = format!("https://127.0.0.1:{}", options.listen.port());
    Ok(format!(
        r#"issuer: "{issuer}"
listen: "{listen}"
tls:
  self_signed: true
  self_signed_dir: {tls_dir}
metrics:
  listen: "{metrics}"
storage:
  url: {db_url}
  max_connections: 4
keys:
  kek_file: {kek}
tokens:
  cluster_token_lifetime: 60s
telemetry:
  log_format: text
  log_level: info
"#,
        listen = options.listen,
        metrics = options.metrics_listen,
    ))
}

/// `$XDG_DATA_HOME/tether/hub-dev`, else `$HOME/.local/share/tether/hub-dev`.
///
/// `env` reads a variable (pass `std::env::var_os`), so tests need not touch the process
/// environment.
pub fn default_dev_data_dir(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let non_empty = |name: &str| {
        env(name)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
    };
    let base = non_empty("XDG_DATA_HOME")
        .or_else(|| non_empty("HOME").map(|home| home.join(".local").join("share")))?;
    Some(base.join("tether").join("hub-dev"))
}
