//! The registry's HTTP API end to end: a real server on 127.0.0.1:0 over real databases.

mod auth;
mod bad_input;
mod cluster;
mod common;
mod contracts;
mod feed;
mod health;
mod hostile;
mod limits;
mod metrics;
mod official;
mod oidc;
mod outage;
mod routing;
mod servers;
mod status_page;
