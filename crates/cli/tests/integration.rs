//! The `mcp-fleet` binary end to end: real processes, real databases, real signals.

mod commands;
mod common;
mod demo;
mod durability;
mod errors;
mod health_worker;
mod logging;
mod policy;
mod route;
mod shutdown;
mod token;
