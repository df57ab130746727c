//! The gateway end to end: a real registry, real rmcp upstreams and a real rmcp client, all on
//! loopback.

mod canary;
mod catalog;
mod common;
mod credentials;
mod echoes;
mod failover;
mod fast_call;
mod front;
mod gateway;
mod policy;
mod replicas;
mod tls;
mod versions;
