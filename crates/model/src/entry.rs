//! A stored registry entry, as the API returns it, and its health status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{AuthSpec, HttpUrl, ServerId, Tag, Version};
use crate::registration::Registration;
use crate::time::{Timestamp, serde_ts};

/// Health of a server as the registry last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Answering its health check.
    Healthy,
    /// Answering, but with errors or slowly.
    Degraded,
    /// Not answering.
    Down,
    /// Not checked yet.
    Unknown,
}

impl HealthStatus {
    /// Every status, in display order.
    pub const ALL: [HealthStatus; 4] = [
        HealthStatus::Healthy,
        HealthStatus::Degraded,
        HealthStatus::Down,
        HealthStatus::Unknown,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Down => "down",
            Self::Unknown => "unknown",
        }
    }
}

impl FromStr for HealthStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "healthy" => Ok(Self::Healthy),
            "degraded" => Ok(Self::Degraded),
            "down" => Ok(Self::Down),
            "unknown" => Ok(Self::Unknown),
            other => Err(format!(
                "must be one of \"healthy\", \"degraded\", \"down\", \"unknown\" or \"any\", not {other:?}"
            )),
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `status` query parameter of `GET /servers`: one status, or `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusFilter {
    /// Every entry.
    Any,
    /// Entries with this status.
    Only(HealthStatus),
}

impl FromStr for StatusFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "any" {
            Ok(Self::Any)
        } else {
            s.parse().map(Self::Only)
        }
    }
}

impl Default for StatusFilter {
    /// The seed lists healthy servers unless told otherwise.
    fn default() -> Self {
        Self::Only(HealthStatus::Healthy)
    }
}

/// A registry entry: the seed's `RegistryEntry` plus the registry's bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Unique slug.
    pub id: ServerId,
    /// Human-readable name.
    pub name: String,
    /// What the server does.
    pub description: String,
    /// Base URL; the MCP endpoint is `<url>/mcp`.
    pub url: HttpUrl,
    /// The server's version.
    pub version: Version,
    /// Capability tags.
    pub tags: Vec<Tag>,
    /// How clients authenticate.
    pub auth: AuthSpec,
    /// Health-check URL, when the server has one.
    pub health_url: Option<HttpUrl>,
    /// Time of the last successful health check (or registration).
    #[serde(with = "serde_ts::option")]
    pub last_seen: Option<Timestamp>,
    /// Current health.
    pub status: HealthStatus,
    /// When the id was first registered.
    #[serde(with = "serde_ts")]
    pub registered_at: Timestamp,
    /// When the entry last changed.
    #[serde(with = "serde_ts")]
    pub updated_at: Timestamp,
    /// Free-form data of the owner's (at most 8 KiB as JSON).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl Entry {
    /// The entry a first registration creates, as of `now`: healthy and seen now, as in the seed,
    /// until the health checker says otherwise.
    pub fn new(reg: Registration, now: Timestamp) -> Self {
        Self {
            id: reg.id,
            name: reg.name,
            description: reg.description,
            url: reg.url,
            version: reg.version,
            tags: reg.tags,
            auth: reg.auth,
            health_url: reg.health_url,
            last_seen: Some(now),
            status: HealthStatus::Healthy,
            registered_at: now,
            updated_at: now,
            metadata: reg.metadata,
        }
    }
}
