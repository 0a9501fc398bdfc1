//! Fixtures for Tether's end-to-end suite: real third-party parts started per test.
//!
//! Parts are installed by `scripts/test-deps.sh` (see `docs/development.md`); every fixture
//! starts its process in its own process group, logs to a file in the test's [`TestDir`],
//! waits for readiness with bounded probes, and kills the whole group on `Drop`.
//!
//! A test reads like this:
//!
//! ```no_run
//! # async fn demo() -> tether_e2e::Result<()> {
//! use tether_e2e::{Cluster, ClusterOptions, TestDir};
//! let dir = TestDir::new("demo")?;
//! let hub = Cluster::start(&dir, ClusterOptions::new("hub")).await?;
//! let out = hub.kubectl(&["get", "ns"]).await?;
//! # Ok(()) }
//! ```

pub mod agent;
pub mod cluster;
pub mod deps;
pub mod error;
pub mod etcd;
pub mod http;
pub mod hub;
pub mod idp;
pub mod kubelet;
pub mod login;
pub mod node;
pub mod pki;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod testdir;

pub use agent::Agent;
pub use cluster::{Cluster, ClusterOptions, CmdOutput};
pub use deps::{Deps, workspace_bin};
pub use error::{Error, Result};
pub use etcd::Etcd;
pub use hub::{Hub, HubOptions, LoginHub, UPSTREAM_CLIENT_ID};
pub use idp::{IdpClient, IdpOptions, IdpTokens, UpstreamIdp};
pub use kubelet::TestNode;
pub use login::{Pkce, form_login, form_login_via, jwt_claims};
pub use node::NodeScript;
pub use pki::{Ca, IssuedCert, SigningKeyPair};
pub use ports::{ensure_port_free, free_port};
pub use postgres::Postgres;
pub use process::ProcessGuard;
/// Signals for [`ProcessGuard::with_stop_signal`].
pub use rustix::process::Signal;
pub use testdir::TestDir;
pub use testdir::write_private;
