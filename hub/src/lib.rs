//! The Tether hub.
//!
//! Modules:
//! - [`admin`]: break-glass operator actions on the store (admin token, key rotation).
//! - [`app`]: wiring of `serve`: listeners, TLS, store, keys, servers, shutdown.
//! - [`cli`]: the `tether-hub` command line.
//! - [`config`]: the configuration, parsed once into typed structs.
//! - [`http`]: the HTTP app ([`http::router`]), errors as responses, health, serving.
//! - [`oidc`]: the OpenID Connect provider: discovery and JWKS.
//! - [`telemetry`]: logs, OTLP traces, the Prometheus recorder.
//! - [`tls`]: the HTTPS certificate (PEM files or a self-signed dev CA).
//! - [`store`]: storage (SQLite or PostgreSQL via sqlx): signing keys, key epoch, audit log.
//! - [`keys`]: signing keys with rotation (`next -> current -> previous -> retired`), JWKS.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod http;
pub mod oidc;
pub mod telemetry;
pub mod tls;
pub mod store;
pub mod keys;
