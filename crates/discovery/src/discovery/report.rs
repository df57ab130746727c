//! What connecting and listing return: [`ConnectReport`], [`Aggregate`] and the listed items.

use mcp_fleet_model::HealthStatus;
use rmcp::model::{Prompt, Resource};
use serde::Serialize;

use crate::error::DiscoveryError;

/// What [`Discovery::connect`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectReport {
    /// Servers connected, with how many tools each offers, in id order.
    pub connected: Vec<(String, usize)>,
    /// Servers indexed from the registry's catalog and not connected until one of their tools
    /// is called ([`DiscoveryBuilder::lazy`](crate::DiscoveryBuilder::lazy)), with how many
    /// tools each lists, in id order.
    pub idle: Vec<(String, usize)>,
    /// Servers that could not be connected, and why, in id order. They are retried in the
    /// background; their state shows in [`Discovery::servers`].
    #[serde(serialize_with = "serialize_failures")]
    pub failed: Vec<(String, DiscoveryError)>,
    /// Matching entries left alone because of their registry status (see
    /// [`DiscoveryBuilder::statuses`]), in id order.
    pub skipped: Vec<(String, HealthStatus)>,
}

fn serialize_failures<S: serde::Serializer>(
    failed: &[(String, DiscoveryError)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let as_text: Vec<(&str, String)> = failed
        .iter()
        .map(|(id, e)| (id.as_str(), e.to_string()))
        .collect();
    as_text.serialize(s)
}

/// A resource of a discovered server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredResource {
    /// The server offering it.
    pub server_id: String,
    /// Its MCP definition.
    pub resource: Resource,
}

/// A prompt of a discovered server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredPrompt {
    /// `<serverId>__<prompt>`, named like tools (see [`qualified_name`]).
    pub qualified_name: String,
    /// The server offering it.
    pub server_id: String,
    /// Its MCP definition (its `name` is the bare name).
    pub prompt: Prompt,
}

/// Items gathered from every connected server, and the servers that could not be asked.
#[derive(Debug, Clone)]
pub struct Aggregate<T> {
    /// Everything listed, in server id order.
    pub items: Vec<T>,
    /// Servers that failed to answer (or are not connected).
    pub failures: Vec<DiscoveryError>,
}
