//! The Tether wire contract (generated from `proto/tether/v1/*.proto`).
//!
//! `v1::registration_{client,server}`, `v1::control_{client,server}` and
//! `v1::admin_{client,server}` hold the tonic client and server code.
//!
//! Clients have no `connect(url)` constructor (it would collide with the `Control.Connect`
//! rpc): build a `tonic::transport::Channel` (TLS configured) and call `XxxClient::new`.

/// `tether.v1`: Registration, Control and Admin.
#[allow(missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("tether.v1");
}
