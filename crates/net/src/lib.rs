//! Network plumbing shared by the registry, the discovery library and the gateway.
//!
//! - [`accept`]: the accept loop of the registry and the gateway (limits, `TCP_NODELAY`,
//!   graceful shutdown).
//! - [`client_layer`]: a layer over rmcp's reqwest client transport, written as its three
//!   requests (the library's authed client, the registry's deadline-bound probe client).
//! - [`Backoff`]: the one backoff (capped exponential, with jitter) for every retry loop.
//! - [`guard`]: the address policy at connect time (a resolver for reqwest, the same check for
//!   the library's own connects, and finding a refusal in an error chain).
//! - [`rmcp_errors`]: reading rmcp's client errors (401/403, one readable line per chain).
//! - [`lifecycle`]: opening MCP at 2026-07-28 with `server/discover`, else with `initialize`.
//!
//! This crate depends on the entry model, reqwest, hyper's server connection and rmcp's client
//! only: never on axum or sqlx.

pub mod accept;
mod backoff;
pub mod client_layer;
pub mod guard;
pub mod lifecycle;
pub mod rmcp_errors;

pub use backoff::Backoff;
