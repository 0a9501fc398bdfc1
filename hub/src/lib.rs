//! The Tether hub.
//!
//! Modules:
//! - [`admin`]: break-glass operator actions on the store (admin token, key rotation).
//! - [`app`]: wiring of `serve`: listeners, TLS, store, keys, servers, shutdown.
//! - [`cli`]: the `tether-hub` command line.
//! - [`config`]: the configuration, parsed once into typed structs.
//! - [`http`]: the HTTP app ([`http::router`]), errors as responses, health, serving.
//! - [`oidc`]: the OpenID Connect provider: discovery, JWKS, authorize, callback, token
//!   (code, refresh, RFC 8693 exchange), userinfo, revocation, logout.
//! - [`telemetry`]: logs, OTLP traces, the Prometheus recorder.
//! - [`tls`]: the HTTPS certificate (PEM files or a self-signed dev CA).
//! - [`store`]: storage (SQLite or PostgreSQL via sqlx): signing keys, key epoch, audit log.
//! - [`keys`]: signing keys with rotation (`next -> current -> previous -> retired`), JWKS.
//! - [`upstream`]: the relying party to the upstream IdP: login, id_token, userinfo groups,
//!   re-validation by refresh.
//! - [`sessions`]: hub sessions: pending logins, authorization codes, rotating refresh tokens.
//! - [`clients`]: the OAuth clients (configured ones and the built-in `tetherctl`).
//! - [`registry`]: the spoke registry ([`registry::ClusterName`], cluster audiences,
//!   cluster states, join tokens).
//! - [`grpc`]: the gRPC listener: spoke registration (`Join`), the control stream to
//!   agents, the Admin API, and the hub's gRPC and cluster CAs.
//! - [`policy`]: access policy building blocks: cluster selectors, granted identities.
//! - [`hub_cluster`]: the Kubernetes cluster the hub runs on (TokenReview, ArgoCD Secrets).
//! - [`argocd`]: ArgoCD cluster Secrets for joined spokes, rendered and reconciled.
//! - [`machine`]: machine tokens: ServiceAccount (TokenReview) or trusted-issuer JWTs →
//!   access policy → a short-lived cluster token.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod argocd;
pub mod cli;
pub mod clients;
pub mod config;
pub mod grpc;
pub mod http;
pub mod hub_cluster;
pub mod keys;
pub mod machine;
pub mod oidc;
pub mod policy;
pub mod registry;
pub mod sessions;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod upstream;
