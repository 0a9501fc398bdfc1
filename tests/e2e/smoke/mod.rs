//! Smoke tests of the fixtures themselves: each real part starts, does its job, and stops.

mod cluster;
mod failures;
mod idp;
mod postgres;
