//! Tether's end-to-end suite: ONE test binary (each extra file under `tests/` would be
//! another slow link). Fixtures live in the `tether_e2e` library (`tests/src/`).
//!
//! Run: `cargo test -p tether-e2e` (needs `scripts/test-deps.sh` first); one test:
//! `cargo test -p tether-e2e -- smoke::idp::login_groups_only_at_userinfo --exact`.

// Test code: a failed expectation should panic (which also keeps the test dir for debugging).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod argocd;
mod cli;
mod hub;
mod join;
mod login;
mod machine;
mod proxy;
mod smoke;
