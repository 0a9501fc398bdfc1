//! What the CLI prints: tables, JSON, times. Pure functions of their input and `now`.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use tether_common::time::UnixTime;
use tether_proto::v1::ClusterInfo;

/// `-o` for listing commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// A JSON document for scripts.
    Json,
}

/// Shown in a table cell that has no value.
pub const NONE: &str = "-";

/// A cluster as `cluster list -o json` prints it.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClusterRow {
    /// The cluster's name.
    pub name: String,
    /// `pending`, `joined` or `removed`.
    pub state: String,
    /// Whether its agent is connected now.
    pub connected: bool,
    /// When its agent was last seen (RFC 3339), if ever.
    pub last_seen: Option<String>,
    /// The agent's version, if known.
    pub agent_version: Option<String>,
    /// The URL users reach the cluster's API server through, if any.
    pub proxy_url: Option<String>,
    /// When the cluster was added (RFC 3339).
    pub created_at: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl From<&ClusterInfo> for ClusterRow {
    fn from(c: &ClusterInfo) -> Self {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Self {
            name: c.name.clone(),
            state: c.state.clone(),
            connected: c.connected,
            last_seen: known_time(c.last_seen).map(rfc3339),
            agent_version: non_empty(&c.agent_version),
            proxy_url: non_empty(&c.proxy_url),
            created_at: known_time(c.created_at).map(rfc3339),
            labels: c
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// `{"clusters": [...]}`, sorted by name, pretty-printed, with a trailing newline.
pub fn clusters_json(clusters: &[ClusterInfo]) -> String {
    #[derive(Serialize)]
    struct List {
        clusters: Vec<ClusterRow>,
    }
    let mut rows: Vec<ClusterRow> = clusters.iter().map(ClusterRow::from).collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    // Serializing plain strings, bools and maps of strings cannot fail.
    let mut out = serde_json::to_string_pretty(&List { clusters: rows }).unwrap_or_default();
    out.push('\n');
    out
}

/// The `cluster list` table, sorted by name; `now` makes LAST SEEN relative.
pub fn clusters_table(clusters: &[ClusterInfo], now: UnixTime) -> String {
    let mut sorted: Vec<&ClusterInfo> = clusters.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = sorted.into_iter().map(|c| {
        vec![
            c.name.clone(),
            or_none(&c.state),
            if c.connected { "yes" } else { "no" }.to_owned(),
            known_time(c.last_seen).map_or_else(|| "never".to_owned(), |t| relative(t, now)),
            or_none(&c.agent_version),
            or_none(&c.proxy_url),
            labels(c),
        ]
    });
    table(
        &[
            "NAME",
            "STATE",
            "CONNECTED",
            "LAST SEEN",
            "VERSION",
            "PROXY URL",
            "LABELS",
        ],
        rows,
    )
}

/// Left-aligned columns separated by three spaces, no trailing spaces, one line per row.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows)
        .collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("   ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `then` relative to `now`: `just now`, `42s ago`, `5m ago`, `3h ago`, `2d ago`, or
/// `in 5m` for the future.
pub fn relative(then: UnixTime, now: UnixTime) -> String {
    let delta = now.as_secs().saturating_sub(then.as_secs());
    let span = short_duration(delta.unsigned_abs());
    match delta {
        0 => "just now".to_owned(),
        d if d > 0 => format!("{span} ago"),
        _ => format!("in {span}"),
    }
}

/// `secs` in its largest whole unit: `42s`, `5m`, `3h`, `2d`.
pub fn short_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// RFC 3339 in UTC, whole seconds: `2025-01-02T03:04:05Z`.
pub fn rfc3339(t: UnixTime) -> String {
    let at = match u64::try_from(t.as_secs()) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    };
    humantime::format_rfc3339_seconds(at).to_string()
}

/// What `cluster add` prints on stderr after the join command went to stdout.
pub fn cluster_added(name: &str, expires_at: UnixTime, now: UnixTime) -> String {
    let expiry = if expires_at.as_secs() > 0 {
        format!(
            "expires at {} ({})",
            rfc3339(expires_at),
            relative(expires_at, now)
        )
    } else {
        "expires soon".to_owned()
    };
    format!(
        "Cluster {name:?} added. Run the join command (printed on stdout) with a kubeconfig for \
         that cluster.\nIts join token works once and {expiry}.\n"
    )
}

/// What `cluster remove` prints.
pub fn cluster_removed(name: &str) -> String {
    format!("Cluster {name:?} removed.\n")
}

/// A time field from the wire: `0` means unknown.
fn known_time(secs: i64) -> Option<UnixTime> {
    (secs > 0).then_some(UnixTime::from_secs(secs))
}

fn or_none(s: &str) -> String {
    if s.is_empty() { NONE } else { s }.to_owned()
}

/// `k=v,k2=v2` sorted by key, or [`NONE`].
fn labels(c: &ClusterInfo) -> String {
    let sorted: BTreeMap<&String, &String> = c.labels.iter().collect();
    if sorted.is_empty() {
        return NONE.to_owned();
    }
    sorted
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
