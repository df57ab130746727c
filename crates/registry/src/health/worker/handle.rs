//! The worker's outside: [`HealthHandle`] (wake it, ask for a check now) and its counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mcp_fleet_model::{HealthCheckMode, HealthStatus, ServerId, Timestamp};
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::health::alerts::{AlertStats, Alerts};

/// Counters of the worker's work, for metrics and tests.
#[derive(Debug)]
pub struct HealthStats {
    /// Probes finished.
    pub probes: AtomicU64,
    /// Probes whose outcome was not healthy.
    pub probe_failures: AtomicU64,
    /// Status transitions.
    pub transitions: AtomicU64,
    /// Entries removed after staying down too long.
    pub deregistered: AtomicU64,
    /// Whether TTL expiry is suspended by the expiry guard.
    pub expiry_suspended: AtomicBool,
    /// How long probes took.
    pub(crate) probe_seconds: Histogram,
    /// Transitions by the status entered, in [`HealthStatus::ALL`] order.
    pub(super) transitions_to: [AtomicU64; 4],
    /// This replica's id, which its health leases name.
    pub replica: std::sync::OnceLock<String>,
    /// Shards of the health work this replica holds a lease on.
    pub leases_held: AtomicU64,
    /// Replicas sharing the health work, this one included, as its last renewal counted them.
    pub replicas: AtomicU64,
    /// Entries in the shards this replica holds.
    pub entries_owned: AtomicU64,
    /// Entries this replica took over from replicas whose leases expired.
    pub takeovers: AtomicU64,
    /// Catalogs listed (tools, prompts, resources).
    pub catalogs_listed: AtomicU64,
    /// Tools found changed under an unchanged version (`tool-changed` events this replica wrote).
    pub tools_changed: AtomicU64,
}

impl Default for HealthStats {
    fn default() -> Self {
        Self {
            probes: AtomicU64::default(),
            probe_failures: AtomicU64::default(),
            transitions: AtomicU64::default(),
            deregistered: AtomicU64::default(),
            expiry_suspended: AtomicBool::default(),
            probe_seconds: Histogram::new(crate::metrics::PROBE_BUCKETS),
            transitions_to: Default::default(),
            replica: std::sync::OnceLock::new(),
            leases_held: AtomicU64::default(),
            replicas: AtomicU64::default(),
            entries_owned: AtomicU64::default(),
            takeovers: AtomicU64::default(),
            catalogs_listed: AtomicU64::default(),
            tools_changed: AtomicU64::default(),
        }
    }
}

impl HealthStats {
    /// Transitions into `status`.
    pub fn transitions_to(&self, status: HealthStatus) -> u64 {
        self.transitions_to[status_index(status)].load(Ordering::Relaxed)
    }

    pub(super) fn count_transition(&self, to: HealthStatus) {
        self.transitions.fetch_add(1, Ordering::Relaxed);
        self.transitions_to[status_index(to)].fetch_add(1, Ordering::Relaxed);
    }
}

pub(super) fn status_index(status: HealthStatus) -> usize {
    HealthStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or_default()
}

/// What `POST /servers/{id}/check` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckReport {
    pub(crate) id: String,
    /// `healthy`, `degraded` or `down`: this probe's own finding.
    pub(crate) outcome: HealthStatus,
    /// The entry's status after damping.
    pub(crate) status: HealthStatus,
    /// `null` when the server did not answer.
    pub(crate) latency_ms: Option<u32>,
    /// The short cause, as in the entry's `lastError`.
    pub(crate) error: Option<String>,
    /// The whole error chain, as in the entry's `lastErrorDetail`.
    pub(crate) error_detail: Option<String>,
    #[serde(with = "ts")]
    #[schema(value_type = String, format = DateTime)]
    pub(crate) checked_at: Timestamp,
}

mod ts {
    use mcp_fleet_model::{Timestamp, format_timestamp};
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_timestamp(t))
    }
}

/// Why an on-demand check could not run.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// No such entry.
    NotFound,
    /// The entry's mode (`ttl`, `none`) is not probed.
    NotProbed(HealthCheckMode),
    /// The worker stopped.
    Stopped,
}

pub(super) struct CheckRequest {
    pub(super) id: ServerId,
    /// List the entry's catalog in this probe too.
    pub(super) list: bool,
    pub(super) reply: oneshot::Sender<Result<CheckReport, CheckError>>,
}

/// A handle on a running worker: wake it after a registration, ask for a check now.
#[derive(Clone)]
pub struct HealthHandle {
    pub(super) wake: Arc<Notify>,
    /// Whether the worker lists catalogs at all.
    pub(super) lists_catalogs: bool,
    pub(super) checks: mpsc::Sender<CheckRequest>,
    pub(super) stats: Arc<HealthStats>,
    pub(super) alerts: Alerts,
}

impl HealthHandle {
    /// Tells the worker that entries changed, so new ones are probed within moments.
    pub fn registered(&self) {
        self.wake.notify_one();
    }

    /// Whether the worker lists servers' catalogs (not `--no-catalog`).
    pub fn lists_catalogs(&self) -> bool {
        self.lists_catalogs
    }

    /// The worker's counters.
    pub fn stats(&self) -> &HealthStats {
        &self.stats
    }

    /// Its webhooks' counters.
    pub(crate) fn alert_stats(&self) -> AlertStats {
        self.alerts.stats()
    }

    /// Probes `id` now, listing its catalog too when `list` (and its mode has a catalog);
    /// answers once the result, and the listing, are written.
    pub(crate) async fn check_now(
        &self,
        id: ServerId,
        list: bool,
    ) -> Result<CheckReport, CheckError> {
        let (reply, answer) = oneshot::channel();
        self.checks
            .send(CheckRequest { id, list, reply })
            .await
            .map_err(|_| CheckError::Stopped)?;
        answer.await.map_err(|_| CheckError::Stopped)?
    }
}
