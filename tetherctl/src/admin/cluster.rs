//! `tetherctl cluster add|list|remove`: manage the spoke clusters registered with the hub.
//!
//! Names, labels and the token lifetime are checked here before anything is sent, so typos
//! fail fast with a usage error (exit 64) instead of a round trip.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tether_common::time::UnixTime;
use tether_proto::v1::{AddClusterRequest, ListClustersRequest, RemoveClusterRequest};

use super::connect::AdminSession;
use super::{AdminArgs, AdminConfig};
use crate::cli::Context;
use crate::error::{Error, Result};
use crate::output::{self, OutputFormat};

/// Longest join-token lifetime the hub accepts.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// `tetherctl cluster ...`
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// The `cluster` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Register a cluster and print the command that joins it (only that, on stdout)
    Add {
        /// Cluster name: a DNS-1123 label (lowercase letters, digits, '-'; at most 63)
        #[arg(value_name = "NAME")]
        name: ClusterName,
        /// A label for the cluster, KEY=VALUE in Kubernetes label syntax (repeatable)
        #[arg(long = "label", short = 'l', value_name = "KEY=VALUE")]
        labels: Vec<Label>,
        /// Lifetime of the single-use join token, e.g. 30m, 2h (hub default 1h, at most 24h)
        #[arg(long, value_name = "DURATION")]
        ttl: Option<Ttl>,
    },
    /// List registered clusters
    #[command(visible_alias = "ls")]
    List {
        /// Output format
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Remove a cluster: its agent's credentials stop working
    #[command(visible_alias = "rm")]
    Remove {
        /// The cluster to remove
        #[arg(value_name = "NAME")]
        name: ClusterName,
    },
}

/// Runs a `cluster` subcommand.
pub async fn run(args: &ClusterArgs, admin: &AdminArgs, cx: &mut Context<'_>) -> Result<()> {
    // Validate everything local before resolving the connection or dialing.
    let request = Prepared::new(&args.command)?;
    let config = AdminConfig::resolve(admin, cx.env)?;
    let session = AdminSession::connect(&config).await?;
    match request {
        Prepared::Add(name, request) => {
            let response = session
                .finish(session.client().add_cluster(session.request(request)))
                .await?;
            cx.out(&format!("{}\n", response.join_command))?;
            let expires = UnixTime::from_secs(response.token_expires_at);
            cx.err(&output::cluster_added(
                name.as_str(),
                expires,
                cx.clock.now(),
            ))
        }
        Prepared::List(format) => {
            let response = session
                .finish(
                    session
                        .client()
                        .list_clusters(session.request(ListClustersRequest {})),
                )
                .await?;
            let text = match format {
                OutputFormat::Table => output::clusters_table(&response.clusters, cx.clock.now()),
                OutputFormat::Json => output::clusters_json(&response.clusters),
            };
            cx.out(&text)
        }
        Prepared::Remove(name) => {
            let request = RemoveClusterRequest {
                name: name.as_str().to_owned(),
            };
            session
                .finish(session.client().remove_cluster(session.request(request)))
                .await?;
            cx.err(&output::cluster_removed(name.as_str()))
        }
    }
}

/// A subcommand checked and turned into its request.
enum Prepared {
    Add(ClusterName, AddClusterRequest),
    List(OutputFormat),
    Remove(ClusterName),
}

impl Prepared {
    fn new(command: &ClusterCommand) -> Result<Self> {
        Ok(match command {
            ClusterCommand::Add { name, labels, ttl } => {
                let request = AddClusterRequest {
                    name: name.as_str().to_owned(),
                    labels: label_map(labels)?.into_iter().collect(),
                    // 0 lets the hub apply its default.
                    token_ttl_seconds: ttl.map_or(0, Ttl::as_secs),
                };
                Self::Add(name.clone(), request)
            }
            ClusterCommand::List { output } => Self::List(*output),
            ClusterCommand::Remove { name } => Self::Remove(name.clone()),
        })
    }
}

/// Labels as a map; a key given twice is an error rather than a silent overwrite.
pub fn label_map(labels: &[Label]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for label in labels {
        if map.insert(label.key.clone(), label.value.clone()).is_some() {
            return Err(Error::invalid(
                "label",
                label.to_string(),
                format!("key {:?} is given more than once", label.key),
            ));
        }
    }
    Ok(map)
}

/// A cluster name: a DNS-1123 label (1-63 of `a-z`, `0-9`, `-`, starting and ending with a
/// letter or digit).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClusterName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        dns1123_label(s).map(|()| Self(s.to_owned()))
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Kubernetes label, `KEY=VALUE`: KEY is `[PREFIX/]NAME` (PREFIX a DNS-1123 subdomain of
/// at most 253, NAME at most 63 alphanumerics with `-_.` inside); VALUE is empty or like
/// NAME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// The key.
    pub key: String,
    /// The value (may be empty).
    pub value: String,
}

impl FromStr for Label {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| "expected KEY=VALUE".to_owned())?;
        label_key(key)?;
        if !value.is_empty() {
            label_name(value).map_err(|e| format!("value: {e}"))?;
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// A join-token lifetime: whole seconds, from 1s to [`MAX_TTL`]; written like `30m`, `2h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl(Duration);

impl Ttl {
    /// Whole seconds, as the wire wants them.
    pub fn as_secs(self) -> i64 {
        i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX)
    }
}

impl FromStr for Ttl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = humantime::parse_duration(s)
            .map_err(|e| format!("{e} (write it like 30m, 2h or 1h30m)"))?;
        if d.subsec_nanos() != 0 || d.is_zero() {
            return Err("must be a whole, positive number of seconds".to_owned());
        }
        if d > MAX_TTL {
            return Err("the hub accepts at most 24h".to_owned());
        }
        Ok(Self(d))
    }
}

/// DNS-1123 label: 1-63 of `a-z0-9-`, alphanumeric at both ends.
fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.len() > 63 {
        return Err(format!(
            "must be at most 63 characters (it has {})",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{c:?} is not allowed: use lowercase letters, digits and '-'"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// DNS-1123 subdomain: dot-separated labels, at most 253 in all.
fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!(
            "must be at most 253 characters (it has {})",
            s.len()
        ));
    }
    s.split('.').try_for_each(dns1123_label)
}

/// A label key: `[PREFIX/]NAME`.
fn label_key(key: &str) -> Result<(), String> {
    match key.split_once('/') {
        Some((prefix, name)) => {
            dns1123_subdomain(prefix).map_err(|e| format!("key prefix {prefix:?}: {e}"))?;
            label_name(name).map_err(|e| format!("key name {name:?}: {e}"))
        }
        None => label_name(key).map_err(|e| format!("key: {e}")),
    }
}

/// A label key's name part or a non-empty value: 1-63 of `A-Za-z0-9-_.`, alphanumeric at
/// both ends.
fn label_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.len() > 63 {
        return Err(format!(
            "must be at most 63 characters (it has {})",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{c:?} is not allowed: use letters, digits, '-', '_' and '.'"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(s.chars().next()) || !alnum(s.chars().last()) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
