//! The gateway end to end: a real registry, real rmcp upstreams and a real rmcp client, all on
//! loopback.

mod canary;
mod common;
mod fast_call;
mod gateway;
mod policy;
