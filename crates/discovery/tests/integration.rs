//! The discovery library end to end: a real registry, real rmcp servers, loopback only.

mod answers;
mod auth;
mod calls;
mod common;
mod feed;
mod lazy;
mod live;
mod names;
mod policy;
mod reconnect;
mod samples;
mod tls;
mod versions;
mod watch;
