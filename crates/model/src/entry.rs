//! A stored registry entry, as the API returns it, and its health status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{AuthSpec, HttpUrl, ServerId, Tag, Version};
use crate::registration::Registration;
use crate::time::{Timestamp, serde_ts};

/// Health of a server as the registry last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// How the registry checks an entry's health (`healthCheck.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckMode {
    /// `http` when the entry has a `healthUrl`, else `mcp`.
    #[default]
    Auto,
    /// GET the `healthUrl`.
    Http,
    /// MCP `initialize` then `ping` at `<url>/mcp`.
    Mcp,
    /// No probes: the entry is healthy while it heartbeats within `ttlSeconds`.
    Ttl,
    /// No checks at all: the status stays as last set.
    None,
}

impl HealthCheckMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Http => "http",
            Self::Mcp => "mcp",
            Self::Ttl => "ttl",
            Self::None => "none",
        }
    }

    /// What `auto` means for an entry with or without a `healthUrl`.
    pub fn resolve(self, has_health_url: bool) -> Self {
        match self {
            Self::Auto if has_health_url => Self::Http,
            Self::Auto => Self::Mcp,
            other => other,
        }
    }
}

impl FromStr for HealthCheckMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "http" => Ok(Self::Http),
            "mcp" => Ok(Self::Mcp),
            "ttl" => Ok(Self::Ttl),
            "none" => Ok(Self::None),
            other => Err(format!(
                "must be one of \"auto\", \"http\", \"mcp\", \"ttl\", \"none\", not {other:?}"
            )),
        }
    }
}

/// The `healthCheck` object of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthCheck {
    /// How the entry is checked.
    pub mode: HealthCheckMode,
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Unique slug.
    pub id: ServerId,
    /// The logical server this entry is an instance of (its `id` unless registered with one).
    pub service: ServerId,
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
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "serde_ts::option")]
    pub last_seen: Option<Timestamp>,
    /// Current health.
    pub status: HealthStatus,
    /// When the id was first registered.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "serde_ts")]
    pub registered_at: Timestamp,
    /// When the entry last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "serde_ts")]
    pub updated_at: Timestamp,
    /// Free-form data of the owner's (at most 8 KiB as JSON).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// How the registry checks this entry.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// When set, the entry must heartbeat at least this often or it is marked down.
    #[serde(default)]
    pub ttl_seconds: Option<u32>,
    /// When the last probe finished.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "serde_ts::option")]
    pub last_checked_at: Option<Timestamp>,
    /// Why the last probe failed, when it did: a short cause for people ("connection refused",
    /// "timed out after 5 s", "HTTP 503").
    #[serde(default)]
    pub last_error: Option<String>,
    /// The whole error chain behind `last_error`, for whoever investigates.
    #[serde(default)]
    pub last_error_detail: Option<String>,
    /// How long the last probe took to be answered, in milliseconds; `null` when it got no
    /// answer (never reached: refused, timed out, no such host) or before the first probe.
    #[serde(default)]
    pub latency_ms: Option<u32>,
    /// Since when the entry has had its current status.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "serde_ts::option")]
    pub status_since: Option<Timestamp>,
    /// Who last registered or replaced it: a token id or OIDC subject (`null` while writes are
    /// open).
    #[serde(default)]
    pub updated_by: Option<String>,
}

impl Entry {
    /// The entry a registration creates, as of `now`: `unknown` and never seen until the health
    /// checker's first probe completes.
    pub fn new(reg: Registration, now: Timestamp) -> Self {
        Self {
            id: reg.id,
            service: reg.service,
            name: reg.name,
            description: reg.description,
            url: reg.url,
            version: reg.version,
            tags: reg.tags,
            auth: reg.auth,
            health_url: reg.health_url,
            last_seen: None,
            status: HealthStatus::Unknown,
            registered_at: now,
            updated_at: now,
            metadata: reg.metadata,
            health_check: HealthCheck {
                mode: reg.health_check,
            },
            ttl_seconds: reg.ttl_seconds,
            last_checked_at: None,
            last_error: None,
            last_error_detail: None,
            latency_ms: None,
            status_since: Some(now),
            updated_by: reg.updated_by,
        }
    }
}
