//! The real kubectl 1.35 through the agent's proxy to a real spoke apiserver with a test
//! node, with tokens the hub issued after a login at the real IdP.

pub(crate) mod env;
mod kubectl;
mod streams;
