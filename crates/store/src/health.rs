//! What the health worker reads and writes: per-entry probe targets and batched check results.

use crate::events::NewEvent;
use mcp_fleet_model::{AuthType, HealthCheckMode, HealthStatus, HttpUrl, ServerId, Timestamp};

/// An entry as the health worker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow {
    /// Entry id.
    pub id: ServerId,
    /// Entry name, for alerts.
    pub name: String,
    /// Base URL (MCP at `<url>/mcp`).
    pub url: HttpUrl,
    /// Health-check URL.
    pub health_url: Option<HttpUrl>,
    /// How clients authenticate (an MCP probe answered 401/403 counts as reachable unless `none`).
    pub auth: AuthType,
    /// How to check it.
    pub mode: HealthCheckMode,
    /// Heartbeat TTL.
    pub ttl_seconds: Option<u32>,
    /// Last heartbeat (or registration).
    pub heartbeat_at: Option<Timestamp>,
    /// Current status.
    pub status: HealthStatus,
    /// Since when.
    pub status_since: Option<Timestamp>,
    /// Consecutive healthy probes.
    pub successes: u32,
    /// Consecutive unhealthy probes.
    pub failures: u32,
    /// Revision of the registration this row describes.
    pub reg_rev: i64,
    /// When it was last checked (by any replica): a replica taking it over schedules from this.
    pub last_checked_at: Option<Timestamp>,
}

/// A check [`crate::Store::record_checks`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Entry id.
    pub id: ServerId,
    /// The status the check replaced, when it changed it (a `status` event was logged).
    pub changed_from: Option<HealthStatus>,
}

/// The result of checking one entry, to be written in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    /// Entry id.
    pub id: ServerId,
    /// Only applies while the entry is still this registration (not re-registered since).
    pub reg_rev: i64,
    /// Damped status.
    pub status: HealthStatus,
    /// Consecutive healthy probes.
    pub successes: u32,
    /// Consecutive unhealthy probes.
    pub failures: u32,
    /// When the check finished.
    pub checked_at: Timestamp,
    /// Set when the probe succeeded: the new `lastSeen`.
    pub seen_at: Option<Timestamp>,
    /// Why it failed, when it did: a short cause for people.
    pub last_error: Option<String>,
    /// The whole error chain behind `last_error`.
    pub last_error_detail: Option<String>,
    /// How long the probe took (none for TTL-only checks).
    pub latency_ms: Option<u32>,
}

/// A TTL entry's last heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRow {
    /// Entry id.
    pub id: ServerId,
    /// Last heartbeat (or registration).
    pub heartbeat_at: Option<Timestamp>,
}

pub(crate) fn u32_of(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

/// Builds a [`HeartbeatRow`] from its stored columns, shared by both backends.
pub(crate) fn heartbeat_row(
    id: String,
    heartbeat_at: Option<Timestamp>,
) -> Result<HeartbeatRow, crate::StoreError> {
    Ok(HeartbeatRow {
        id: crate::row::server_id(id)?,
        heartbeat_at,
    })
}

/// Builds a [`HealthRow`] from its stored columns, shared by both backends.
#[allow(clippy::too_many_arguments)]
pub(crate) fn health_row(
    id: String,
    name: String,
    url: String,
    health_url: Option<String>,
    auth_type: String,
    mode: String,
    ttl_seconds: Option<i64>,
    heartbeat_at: Option<Timestamp>,
    status: String,
    status_since: Option<Timestamp>,
    successes: i64,
    failures: i64,
    reg_rev: i64,
    last_checked_at: Option<Timestamp>,
) -> Result<HealthRow, crate::StoreError> {
    let bad = |reason: String| crate::StoreError::Corrupt {
        id: id.clone(),
        reason,
    };
    Ok(HealthRow {
        id: crate::row::server_id(id.clone())?,
        name,
        url: HttpUrl::from_stored(&url).map_err(|e| bad(format!("url {e}")))?,
        health_url: health_url
            .map(|u| HttpUrl::from_stored(&u))
            .transpose()
            .map_err(|e| bad(format!("healthUrl {e}")))?,
        auth: auth_type
            .parse()
            .map_err(|e| bad(format!("auth.type {e}")))?,
        mode: mode
            .parse()
            .map_err(|e| bad(format!("healthCheck.mode {e}")))?,
        ttl_seconds: u32_of(ttl_seconds),
        heartbeat_at,
        status: status.parse().map_err(|e| bad(format!("status {e}")))?,
        status_since,
        successes: u32::try_from(successes).unwrap_or(0),
        failures: u32::try_from(failures).unwrap_or(0),
        reg_rev,
        last_checked_at,
    })
}

/// Splits a batch of checks into runs that each name an entry at most once and hold at most
/// `max` checks, in order: one run is written with one statement, which can apply only one check
/// per row, and a later check of the same entry must still win.
pub(crate) fn runs(checks: &[CheckRecord], max: usize) -> Vec<&[CheckRecord]> {
    let mut runs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut start = 0;
    for (i, c) in checks.iter().enumerate() {
        if i - start == max || !seen.insert(c.id.as_str()) {
            runs.push(&checks[start..i]);
            start = i;
            seen.clear();
            seen.insert(c.id.as_str());
        }
    }
    if start < checks.len() {
        runs.push(&checks[start..]);
    }
    runs
}

/// Folds one run's outcome into a batch's: the checks whose rows the statement `updated` are
/// `written`, and each that changes its entry's status (`status`, kept current as the run goes)
/// logs a `status` event.
pub(crate) fn note_written(
    run: &[CheckRecord],
    updated: &[String],
    status: &mut std::collections::HashMap<String, String>,
    written: &mut Vec<Written>,
    events: &mut Vec<NewEvent>,
) {
    let updated: std::collections::HashSet<&str> = updated.iter().map(String::as_str).collect();
    for c in run.iter().filter(|c| updated.contains(c.id.as_str())) {
        let mut changed_from = None;
        if let Some(was) = status.get_mut(c.id.as_str())
            && was != c.status.as_str()
        {
            events.push(NewEvent::status(c, was));
            changed_from = was.parse().ok();
            c.status.as_str().clone_into(was);
        }
        written.push(Written {
            id: c.id.clone(),
            changed_from,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str) -> CheckRecord {
        CheckRecord {
            id: id.parse().unwrap(),
            reg_rev: 1,
            status: HealthStatus::Healthy,
            successes: 1,
            failures: 0,
            checked_at: chrono::Utc::now(),
            seen_at: None,
            last_error: None,
            last_error_detail: None,
            latency_ms: None,
        }
    }

    fn ids(runs: &[&[CheckRecord]]) -> Vec<Vec<String>> {
        runs.iter()
            .map(|r| r.iter().map(|c| c.id.to_string()).collect())
            .collect()
    }

    #[test]
    fn runs_never_repeat_an_entry_and_keep_the_order() {
        let checks: Vec<_> = ["a", "b", "a", "c", "b", "b"].map(check).into();
        assert_eq!(
            ids(&runs(&checks, 100)),
            [vec!["a", "b"], vec!["a", "c", "b"], vec!["b"]]
        );
    }

    #[test]
    fn runs_hold_at_most_max_checks() {
        let checks: Vec<_> = ["a", "b", "c", "d", "e"].map(check).into();
        assert_eq!(
            ids(&runs(&checks, 2)),
            [vec!["a", "b"], vec!["c", "d"], vec!["e"]]
        );
        assert!(runs(&[], 2).is_empty());
    }
}
