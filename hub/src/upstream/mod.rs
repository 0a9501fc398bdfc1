//! The relying party to the upstream IdP (Okta, or any OpenID Connect provider).
//!
//! - [`config`]: [`UpstreamConfig`], the `upstream:` section.
//! - [`client`]: [`Upstream`]: discovery at startup, [`Upstream::begin`] (authorization URL:
//!   code flow, PKCE S256, `state`, `nonce`), [`Upstream::complete`] (code exchange, id_token
//!   verification, userinfo for Okta's thin id_token), [`Upstream::revalidate`] (upstream
//!   refresh or userinfo; a locked account is [`UpstreamError::AccountRevoked`]).
//! - [`mapping`]: claims to [`Identity`] (username, groups, filter, prefixes, no `system:`).
//! - [`grant`]: [`UpstreamGrant`] (kept encrypted to re-validate), [`PendingLogin`].
//! - [`http`]: the HTTP client: reqwest 0.13, timeouts, no redirects.
//!
//! Each call to the IdP has a span (`upstream.discovery`, `upstream.exchange`,
//! `upstream.userinfo`, `upstream.refresh`) and increments
//! `tether_hub_upstream_requests_total{op,outcome}`; no token value is ever logged.

pub mod client;
pub mod config;
mod error;
pub mod grant;
pub mod http;
pub mod mapping;

pub use self::client::{METRIC_REQUESTS, Upstream};
pub use self::config::{UpstreamConfig, UpstreamConfigError};
pub use self::error::UpstreamError;
pub use self::grant::{Identity, PendingLogin, UpstreamGrant, UpstreamLogin};

#[cfg(test)]
mod tests;
