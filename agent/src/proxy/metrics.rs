//! Proxy metrics through the [`metrics`] facade; the exporter is installed elsewhere.
//!
//! - `tether_agent_proxy_requests_total{code,verb}` (counter)
//! - `tether_agent_proxy_request_duration_seconds{verb}` (histogram)
//! - `tether_agent_token_cache_hits_total`, `tether_agent_token_cache_misses_total` (counters)
//! - `tether_agent_proxy_upgraded_connections` (gauge; hold an [`UpgradedConnectionGuard`])

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Requests answered, by status code and Kubernetes verb.
pub const REQUESTS_TOTAL: &str = "tether_agent_proxy_requests_total";
/// Time to the response head (or to the end of an upgraded connection), by verb.
pub const REQUEST_DURATION_SECONDS: &str = "tether_agent_proxy_request_duration_seconds";
/// Tokens answered from the verified-token cache.
pub const TOKEN_CACHE_HITS_TOTAL: &str = "tether_agent_token_cache_hits_total";
/// Tokens that had to be verified.
pub const TOKEN_CACHE_MISSES_TOTAL: &str = "tether_agent_token_cache_misses_total";
/// Upgraded (exec, attach, port-forward) connections open now.
pub const UPGRADED_CONNECTIONS: &str = "tether_agent_proxy_upgraded_connections";

/// Registers descriptions and units; call once after installing the recorder.
pub fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        "Requests answered by the proxy, by code and verb"
    );
    describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Proxied request duration, by verb"
    );
    describe_counter!(
        TOKEN_CACHE_HITS_TOTAL,
        "Bearer tokens answered from the cache"
    );
    describe_counter!(
        TOKEN_CACHE_MISSES_TOTAL,
        "Bearer tokens verified (not cached)"
    );
    describe_gauge!(UPGRADED_CONNECTIONS, "Upgraded connections open now");
}

/// Counts one answered request and records its duration.
pub fn record_request(code: u16, verb: &'static str, duration: Duration) {
    counter!(REQUESTS_TOTAL, "code" => code.to_string(), "verb" => verb).increment(1);
    histogram!(REQUEST_DURATION_SECONDS, "verb" => verb).record(duration.as_secs_f64());
}

/// Counts a token answered from the cache.
pub fn token_cache_hit() {
    counter!(TOKEN_CACHE_HITS_TOTAL).increment(1);
}

/// Counts a token that had to be verified.
pub fn token_cache_miss() {
    counter!(TOKEN_CACHE_MISSES_TOTAL).increment(1);
}

/// Counts an upgraded connection as open while it lives; decrements the gauge on drop.
#[derive(Debug)]
#[must_use = "the connection is counted only while the guard lives"]
pub struct UpgradedConnectionGuard(());

impl UpgradedConnectionGuard {
    /// Increments the gauge.
    pub fn new() -> Self {
        gauge!(UPGRADED_CONNECTIONS).increment(1.0);
        Self(())
    }
}

impl Default for UpgradedConnectionGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for UpgradedConnectionGuard {
    fn drop(&mut self) {
        gauge!(UPGRADED_CONNECTIONS).decrement(1.0);
    }
}

#[cfg(test)]
pub(crate) mod tests;
