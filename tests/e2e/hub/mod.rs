//! The hub binary against real parts: SQLite and PostgreSQL, the certified openid-client,
//! key rotation across processes, restarts, and configuration errors.

mod config;
mod discovery;
mod keys;
mod store;
pub(crate) mod support;
mod upstream;
