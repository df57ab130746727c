//! TTL expiry (with the guard against a network partition) and deregistering long-dead entries.

use std::sync::atomic::Ordering;

use chrono::Utc;
use mcp_fleet_model::{HealthCheckMode, HealthStatus, ServerId};
use mcp_fleet_store::CheckRecord;

use super::*;
use crate::health::cause::Failure;
use crate::health::damping::Streak;

/// Why a TTL entry is down.
pub(super) fn ttl_expired(ttl_seconds: Option<u32>) -> Failure {
    let detail = match ttl_seconds {
        Some(ttl) => format!("no heartbeat within ttlSeconds ({ttl} s)"),
        None => "no heartbeat within ttlSeconds".to_owned(),
    };
    Failure::new("ttl expired", detail, false)
}

impl Worker {
    /// TTL entries: reads heartbeats, applies the expiry guard, marks expired entries down (and
    /// `ttl`-mode entries healthy while they heartbeat).
    pub(super) async fn expire_ttls(&mut self) {
        if !self.entries.values().any(|t| t.row.ttl_seconds.is_some()) {
            // The silent entries may have been deleted while expiry was suspended: nothing is
            // left to guard, and deregistration must not stay off for good.
            if self.stats.expiry_suspended.swap(false, Ordering::Relaxed) {
                tracing::warn!("no TTL entries left: TTL expiry resumed");
            }
            return;
        }
        if !self.db.ready() {
            return;
        }
        let read = self.store.heartbeats().await;
        let Some(beats) = self.db.note("read heartbeats", read) else {
            return;
        };
        for b in beats {
            if let Some(t) = self.entries.get_mut(&b.id) {
                t.row.heartbeat_at = b.heartbeat_at;
            }
        }
        let now = Utc::now();
        let ttl_total = self
            .entries
            .values()
            .filter(|t| t.row.ttl_seconds.is_some())
            .count();
        // An entry "at risk" has not heartbeaten for half its TTL: it will expire within the
        // other half. Counting those (not only the expired ones) trips the guard in a network
        // split before the first entries expire, however their heartbeats were spread. Servers
        // should heartbeat at least every third of their TTL, so healthy ones are never at risk.
        let at_risk = self
            .entries
            .values()
            .filter(|t| t.ttl_late(now, 0.5))
            .count();
        let expired = self.entries.values().filter(|t| t.ttl_expired(now)).count();
        let suspend = ttl_total >= GUARD_MIN_ENTRIES
            && at_risk as f64 > self.cfg.expiry_guard * ttl_total as f64;
        let was = self.stats.expiry_suspended.swap(suspend, Ordering::Relaxed);
        if suspend && !was {
            tracing::error!(
                at_risk,
                expired,
                ttl_total,
                "most TTL entries stopped heartbeating at once: assuming the registry's own network is at fault; TTL expiry and deregistration are suspended"
            );
        } else if was && !suspend {
            tracing::warn!(
                expired,
                ttl_total,
                "heartbeats are back: TTL expiry resumed"
            );
        }
        if suspend {
            return;
        }
        let mut updates = Vec::new();
        for (id, t) in &self.entries {
            if t.row.ttl_seconds.is_none() || t.row.mode == HealthCheckMode::None || !self.holds(id)
            {
                continue;
            }
            let expired = t.ttl_expired(now);
            let wanted = if expired {
                HealthStatus::Down
            } else if t.row.mode == HealthCheckMode::Ttl {
                HealthStatus::Healthy
            } else {
                continue; // probed entries recover through their probes
            };
            if t.streak.status != wanted {
                updates.push((id.clone(), wanted, expired));
            }
        }
        for (id, wanted, expired) in updates {
            let Some(t) = self.entries.get_mut(&id) else {
                continue;
            };
            t.streak = Streak {
                status: wanted,
                successes: u32::from(!expired),
                failures: u32::from(expired),
            };
            t.row.status = wanted;
            t.row.status_since = Some(now);
            let (error, detail) = expired
                .then(|| ttl_expired(t.row.ttl_seconds))
                .map(|f| (f.cause, f.detail))
                .unzip();
            self.pending.push(CheckRecord {
                id: id.clone(),
                reg_rev: t.row.reg_rev,
                status: wanted,
                successes: t.streak.successes,
                failures: t.streak.failures,
                checked_at: now,
                seen_at: None,
                last_error: error,
                last_error_detail: detail,
                latency_ms: None,
            });
        }
    }

    /// Removes entries that have been `down` longer than `deregister_after`.
    pub(super) async fn deregister(&mut self) {
        if self.cfg.deregister_after.is_zero()
            || self.stats.expiry_suspended.load(Ordering::Relaxed)
        {
            return;
        }
        let Ok(after) = chrono::Duration::from_std(self.cfg.deregister_after) else {
            return;
        };
        let cutoff = Utc::now() - after;
        let stale: Vec<ServerId> = self
            .entries
            .iter()
            .filter(|(id, t)| {
                self.holds(id)
                    && t.streak.status == HealthStatus::Down
                    && t.row.status_since.is_some_and(|since| since <= cutoff)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if stale.is_empty() || !self.db.ready() {
            return;
        }
        // Results not yet written may carry the `down` that makes an entry eligible.
        self.flush().await;
        for id in stale {
            match self.store.deregister_if_down(&id, cutoff).await {
                Ok(true) => {
                    self.entries.remove(&id);
                    self.stats.deregistered.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%id, after = ?self.cfg.deregister_after, "deregistered: down for too long");
                    if let Some(f) = &self.on_change {
                        f();
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    self.db.failed("deregister", &e);
                    return;
                }
            }
        }
    }
}
