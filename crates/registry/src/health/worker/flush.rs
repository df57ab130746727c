//! Writing probe results, transitions and replies to the store in batches.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::*;
use crate::health::alerts::{ToolChangedAlert, Transition};

/// Most listings kept while the database is unreachable; older ones are dropped first.
const MAX_PENDING_CATALOGS: usize = 1000;

impl Worker {
    /// Whether to write queued results now, `ready` (a full batch, or the tick) permitting: at
    /// once when an on-demand check waits for its answer; during a burst (probes queue for a
    /// slot), at most every [`BURST_FLUSH_EVERY`].
    pub(super) fn flush_due(&self, ready: bool) -> bool {
        if !self.replies.is_empty() {
            return true;
        }
        ready
            && (self.queued.load(Ordering::Relaxed) == 0
                || self.last_flush.elapsed() >= BURST_FLUSH_EVERY)
    }

    /// Writes queued results in one transaction, then publishes their transitions; then the
    /// listings taken, publishing the silent tool changes they show.
    pub(super) async fn flush(&mut self) {
        self.flush_catalogs().await;
        self.flush_checks().await;
    }

    /// Writes queued listings in one transaction, before the checks of the probes that took
    /// them: an on-demand check is answered (with the checks) once its listing is written.
    async fn flush_catalogs(&mut self) {
        if self.pending_catalogs.is_empty() || !self.db.ready() {
            return;
        }
        match self.store.put_catalogs(&self.pending_catalogs).await {
            Ok(written) => {
                self.db.succeeded();
                let mut changed = false;
                for w in written {
                    changed |= w.changed;
                    for c in w.tools_changed {
                        self.stats.tools_changed.fetch_add(1, Ordering::Relaxed);
                        let name = self
                            .entries
                            .get(&c.id)
                            .map_or_else(|| c.id.to_string(), |t| t.row.name.clone());
                        let at = self
                            .pending_catalogs
                            .iter()
                            .find(|r| r.id == c.id)
                            .map_or_else(chrono::Utc::now, |r| r.at);
                        self.alerts.publish_tool_changed(ToolChangedAlert {
                            event: "tool-changed",
                            id: c.id.to_string(),
                            name,
                            service: c.service.to_string(),
                            version: c.version,
                            tool: c.tool,
                            from: c.from,
                            to: c.to,
                            at,
                        });
                    }
                }
                self.pending_catalogs.clear();
                if changed && let Some(f) = &self.on_change {
                    f();
                }
            }
            Err(e) => {
                let what = format!("write {} catalogs", self.pending_catalogs.len());
                self.db.failed(&what, &e);
                // Listings are taken again at the next refresh: keep only the newest few.
                if self.pending_catalogs.len() > MAX_PENDING_CATALOGS {
                    let excess = self.pending_catalogs.len() - MAX_PENDING_CATALOGS;
                    self.pending_catalogs.drain(..excess);
                }
            }
        }
    }

    async fn flush_checks(&mut self) {
        if self.pending.is_empty() || !self.db.ready() {
            return;
        }
        self.last_flush = Instant::now();
        match self.store.record_checks(&self.pending).await {
            Ok(written) => {
                self.db.succeeded();
                // The store says which writes changed a status: those transitions are this
                // replica's to publish (another replica writing the same finding learns of none).
                let mut transitions = Vec::new();
                let mut told = written.iter().peekable();
                for c in &self.pending {
                    let Some(w) = told.next_if(|w| w.id == c.id) else {
                        continue;
                    };
                    if let Some(from) = w.changed_from {
                        transitions.push(Transition {
                            id: c.id.to_string(),
                            name: self
                                .entries
                                .get(&c.id)
                                .map_or_else(|| c.id.to_string(), |t| t.row.name.clone()),
                            from,
                            to: c.status,
                            at: c.checked_at,
                            last_error: c.last_error.clone(),
                            last_error_detail: c.last_error_detail.clone(),
                        });
                    }
                }
                // A result the store skipped belongs to an entry deleted (or re-registered)
                // since it was loaded: forget that entry, answer its checks with "not found",
                // and raise no alert about it. A re-registered one comes back with the next
                // refresh, as its revision is newer than any seen.
                let written: HashSet<String> = written.iter().map(|w| w.id.to_string()).collect();
                for c in self.pending.drain(..) {
                    if !written.contains(c.id.as_str())
                        && let Some(t) = self.entries.get(&c.id)
                        && t.row.reg_rev == c.reg_rev
                        && let Some(mut t) = self.entries.remove(&c.id)
                    {
                        for reply in t.waiting.drain(..) {
                            let _ = reply.send(Err(CheckError::NotFound));
                        }
                    }
                }
                let changed = !transitions.is_empty();
                for t in transitions {
                    self.stats.count_transition(t.to);
                    self.alerts.publish(t);
                }
                if changed && let Some(f) = &self.on_change {
                    f();
                }
                for (reply, report) in self.replies.drain(..) {
                    let answer = if written.contains(&report.id) {
                        Ok(report)
                    } else {
                        Err(CheckError::NotFound)
                    };
                    let _ = reply.send(answer);
                }
            }
            Err(e) => {
                self.db
                    .failed(&format!("write {} health results", self.pending.len()), &e);
                if self.pending.len() > MAX_PENDING {
                    let excess = self.pending.len() - MAX_PENDING;
                    self.pending.drain(..excess);
                }
            }
        }
    }
}
