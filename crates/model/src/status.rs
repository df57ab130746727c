//! The `GET /status` document: the fleet at a glance, in the seed's shape.

use serde::{Deserialize, Serialize};

use crate::contract::RoutingContract;
use crate::entry::{HealthCheckMode, HealthStatus};
use crate::ids::Version;
use crate::routing::Routing;
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
    /// Versions given traffic by a routing policy although their catalog breaks the stable
    /// version's contract, judged from the catalogs as they stand (set with `allowBreaking`, or
    /// broken since by a catalog listed later or a tool changed in place), by service and version.
    #[serde(rename = "breakingCanaries", default)]
    pub breaking_canaries: Vec<BreakingCanary>,
}

/// A version with traffic whose catalog breaks its service's stable version's contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BreakingCanary {
    /// The service.
    pub service: String,
    /// The version that breaks the contract.
    pub version: String,
    /// Its weight, in percent of the service's traffic.
    pub weight: u8,
    /// The stable version whose contract it breaks.
    pub stable: String,
    /// Who allowed it (`null` while writes are open, or when not recorded).
    #[serde(default)]
    pub allowed_by: Option<String>,
    /// Why it was allowed.
    #[serde(default)]
    pub reason: Option<String>,
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
    /// How many tools the entry's current version listed; absent when never listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<u32>,
    /// When the current version's catalog last changed; absent when never listed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_ts::option"
    )]
    pub catalog_changed_at: Option<Timestamp>,
    /// A tool of the current version changed in place (a `tool-changed` event) and the change
    /// is not accepted yet (`POST /services/{service}/tools/accept`); absent when none did.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tool_changed: bool,
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
            breaking_canaries: Vec::new(),
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

impl BreakingCanary {
    /// The breaking canaries `doc` records: versions with traffic its contract found breaking
    /// when the policy was set.
    pub fn of(doc: &Routing) -> Vec<Self> {
        Self::judged(doc, None)
    }

    /// The breaking canaries of `doc` as its catalogs stand `now` (the contract judged afresh):
    /// a catalog listed or a tool changed since the policy was set counts. A version `now`
    /// cannot judge (its catalog, or the stable one's, is no longer listed) keeps the verdict
    /// recorded when the policy was set. Without `now`, the recorded verdicts only.
    pub fn judged(doc: &Routing, now: Option<&RoutingContract>) -> Vec<Self> {
        let recorded = doc.contract.as_ref();
        let Some(stable) = now.or(recorded).map(|c| &c.stable) else {
            return Vec::new();
        };
        let breaking = |version: &Version| match now {
            Some(now) if now.unknown.contains(version) => {
                recorded.is_some_and(|r| r.stable == now.stable && r.breaking.contains(version))
            }
            Some(now) => now.breaking.contains(version),
            None => recorded.is_some_and(|r| r.breaking.contains(version)),
        };
        doc.weights
            .iter()
            .filter(|(version, weight)| **weight > 0 && breaking(version))
            .map(|(version, weight)| {
                let allowed = doc.breaking_allowed.iter().find(|a| &a.version == version);
                Self {
                    service: doc.service.to_string(),
                    version: version.to_string(),
                    weight: *weight,
                    stable: stable.to_string(),
                    allowed_by: allowed.and_then(|a| a.by.clone()),
                    reason: allowed.map(|a| a.reason.clone()),
                }
            })
            .collect()
    }
}
