//! The `mcp-fleet` binary end to end: real processes, real databases, real signals.

mod announce;
mod cluster;
mod commands;
mod common;
mod contracts;
mod conventions;
mod credentials;
mod demo;
mod deploy;
mod durability;
mod errors;
mod gateway;
mod health_worker;
mod import;
mod load_balancer;
mod logging;
mod official;
mod output;
mod policy;
mod readme;
mod replicas;
mod rmcp_only;
mod route;
mod shutdown;
mod token;
mod tools;
