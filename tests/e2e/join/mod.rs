//! Spokes join the hub: `tetherctl cluster add`, the printed `tether-agent join` against a
//! real spoke apiserver, the agent's control stream, key pushes, refusals, removal, and a
//! hub restart.

mod env;
mod refusals;
mod stream;
