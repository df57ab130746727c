//! Health checking: probes every entry concurrently on a schedule, damps flapping, expires TTL
//! entries, refuses to probe denied addresses, and publishes status transitions.
//!
//! `worker.rs` schedules and runs probes, `probe.rs` is one probe (HTTP or MCP), `damping.rs`
//! turns probe results into statuses, `ssrf.rs` decides which addresses may be probed, and
//! `alerts.rs` delivers transitions to webhooks.

pub(crate) mod alerts;
pub(crate) mod ssrf;
