//! Health checking: probes every entry concurrently on a schedule, damps flapping, expires TTL
//! entries, refuses to probe denied addresses, and publishes status transitions.
//!
//! `worker.rs` schedules and runs probes, `probe.rs` is one probe (HTTP, or MCP through
//! `mcp_probe.rs`), `cause.rs` says why one failed, `damping.rs` turns probe outcomes into
//! statuses, `ssrf.rs` decides which addresses may be probed, and `alerts.rs` delivers transitions to webhooks.

pub(crate) mod alerts;
pub(crate) mod cause;
pub(crate) mod damping;
pub(crate) mod mcp_probe;
pub(crate) mod priority;
pub(crate) mod probe;
pub(crate) mod ssrf;
pub(crate) mod worker;

use std::time::Duration;

pub use ssrf::parse_cidr;
pub use worker::{HealthHandle, HealthStats};

/// Settings of the health worker.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Most probes in flight at once.
    pub concurrency: usize,
    /// Time limit of one probe.
    pub timeout: Duration,
    /// Time between two probes of one entry (each entry's schedule is jittered by ±10%).
    pub interval: Duration,
    /// A successful probe slower than this is `degraded`.
    pub degraded_latency: Duration,
    /// Consecutive successes needed to become healthy.
    pub rise: u32,
    /// Consecutive failures needed to leave healthy.
    pub fall: u32,
    /// When more than this fraction of TTL entries (at least 3 of them) have expired, the
    /// registry blames its own network: TTL expiry and deregistration pause until heartbeats
    /// return.
    pub expiry_guard: f64,
    /// Remove entries that stay `down` this long; zero keeps them forever.
    pub deregister_after: Duration,
    /// Addresses never to probe, on top of the defaults (link-local, `0.0.0.0/8`, multicast).
    pub deny: Vec<ipnet::IpNet>,
    /// Addresses to probe even inside a denied range (the more specific range wins).
    pub allow: Vec<ipnet::IpNet>,
    /// `Strict` denies loopback and private ranges too (`--probe-policy strict`).
    pub policy: mcp_fleet_model::PolicyMode,
    /// Webhooks that receive every status transition.
    pub webhooks: Vec<url::Url>,
    /// How often to look for registrations made by other processes, TTL expiry and
    /// deregistration, and to renew this replica's health leases.
    pub refresh: Duration,
    /// This replica's id in the health leases shared with the other replicas on the database;
    /// `None` makes one of the host name, the process id and a random suffix.
    pub replica_id: Option<String>,
    /// How often the catalog (tools, prompts, resources) of an entry checked over MCP is listed
    /// again, in its probe's session, on top of once per registration; `None` never lists it.
    pub catalog_refresh: Option<Duration>,
    /// The same for entries checked over HTTP (`healthUrl`), whose listing costs an MCP session
    /// of its own; `None` never lists them. Entries checked by TTL or not at all are never
    /// listed: nothing says their URL may be connected to.
    pub catalog_refresh_slow: Option<Duration>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            concurrency: 1024,
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(30),
            degraded_latency: Duration::from_secs(1),
            rise: 1,
            fall: 2,
            expiry_guard: 0.5,
            deregister_after: Duration::from_secs(72 * 3600),
            deny: Vec::new(),
            allow: Vec::new(),
            policy: mcp_fleet_model::PolicyMode::Default,
            webhooks: Vec::new(),
            refresh: Duration::from_secs(1),
            replica_id: None,
            catalog_refresh: Some(Duration::from_secs(10 * 60)),
            catalog_refresh_slow: Some(Duration::from_secs(60 * 60)),
        }
    }
}

/// The health worker could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the health worker: {0}")]
pub struct HealthError(pub(crate) String);

impl HealthError {
    pub(crate) fn already_running() -> Self {
        Self("a health worker is already running in this process".into())
    }
}
