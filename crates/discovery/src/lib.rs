//! Client library for agent hosts and tools that talk to an mcp-fleet registry.
//!
//! [`RegistryClient`] speaks the registry's HTTP API (register, list by tags, look up, delete,
//! fleet status) and turns its problem+json errors into [`ClientError`]s a person can act on.

mod registry_client;

pub use registry_client::{ClientError, ListOptions, RegisterOutcome, RegistryClient, ServerPage};
