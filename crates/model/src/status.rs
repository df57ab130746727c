//! The `GET /status` document: the fleet at a glance, in the seed's shape.

use serde::{Deserialize, Serialize};

use crate::entry::{HealthCheckMode, HealthStatus};
use crate::time::{Timestamp, serde_ts};

/// The whole fleet's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetStatus {
    /// `operational` when no known server is degraded or down, else `degraded`.
    #[cfg_attr(feature = "openapi", schema(examples("operational", "degraded")))]
    pub status: String,
    /// Counts by status.
    pub summary: StatusSummary,
    /// Every entry, in id order.
    pub servers: Vec<ServerStatus>,
}

/// Counts of entries by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusSummary {
    /// All entries.
    pub total: usize,
    /// Healthy entries.
    pub healthy: usize,
    /// Degraded entries.
    pub degraded: usize,
    /// Down entries.
    pub down: usize,
    /// Entries not checked yet.
    #[serde(default)]
    pub unknown: usize,
}

/// One entry's line in `/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// Entry id.
    pub id: String,
    /// Entry name.
    pub name: String,
    /// Current health.
    pub status: HealthStatus,
    /// Last successful check.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "serde_ts::option")]
    pub last_seen: Option<Timestamp>,
    /// Why the last check failed, when it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Since when the entry has had its status.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "serde_ts::option")]
    pub since: Option<Timestamp>,
    /// How the entry is checked; `none` means the status is not kept current.
    #[serde(default)]
    pub check: HealthCheckMode,
}

impl FleetStatus {
    /// Builds the document from every entry's line, counting statuses.
    pub fn from_servers(servers: Vec<ServerStatus>) -> Self {
        let mut summary = StatusSummary::default();
        for s in &servers {
            summary.count(s.status);
        }
        Self {
            status: summary.overall().to_owned(),
            summary,
            servers,
        }
    }
}

impl StatusSummary {
    /// Counts one more entry of `status`.
    pub fn count(&mut self, status: HealthStatus) {
        self.total += 1;
        match status {
            HealthStatus::Healthy => self.healthy += 1,
            HealthStatus::Degraded => self.degraded += 1,
            HealthStatus::Down => self.down += 1,
            HealthStatus::Unknown => self.unknown += 1,
        }
    }

    /// The fleet's status ([`FleetStatus::status`]): `operational` when no entry is degraded or
    /// down, else `degraded`.
    pub fn overall(&self) -> &'static str {
        if self.degraded == 0 && self.down == 0 {
            "operational"
        } else {
            "degraded"
        }
    }
}
