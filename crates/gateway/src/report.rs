//! Canary decisions across gateway replicas: each replica reports its counts per version and
//! window slot to the registry (`POST /services/{service}/routing/observations`), which keeps
//! every replica's and answers their sum; the replica judges the service's canaries on that sum.
//! A verdict is recorded with `POST …/routing/rollback`, which changes nothing for a version
//! already rolled back: the replica whose rollback the registry recorded (its reason, naming
//! it, is the one stored) logs, counts and alerts it; the others only follow the policy.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use mcp_fleet_discovery::ClientError;
use mcp_fleet_model::{ObservedTotals, Version};

use crate::canary::{Totals, judge};
use crate::gateway::Inner;
use crate::routing::Policy;

impl Inner {
    /// Reports every `interval` the counts that changed, and judges on the sums.
    pub(crate) async fn report_canaries(self: Arc<Self>, interval: std::time::Duration) {
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            self.report_once().await;
        }
    }

    /// One round of reports: a request per service whose counts changed.
    pub(crate) async fn report_once(&self) {
        for (service, report) in self.canaries.unreported(&self.config.replica_id) {
            match self.registry.report_observations(&service, &report).await {
                Ok(totals) => {
                    if self.canaries.reports_failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(%service, "canary counts reach the registry again");
                    }
                    self.canaries.reported(&service, &report);
                    self.judge_cluster(&service, &totals).await;
                }
                // Counts stay unreported: the next round sends them again.
                Err(e) if !self.canaries.reports_failing.swap(true, Ordering::Relaxed) => {
                    tracing::warn!(%service, error = %e,
                        "cannot report canary counts to the registry; retrying every round, \
                         canaries are not judged meanwhile");
                }
                Err(e) => tracing::debug!(%service, error = %e, "canary report failed"),
            }
        }
    }

    /// Judges `service`'s canaries on every replica's counts, `totals`.
    async fn judge_cluster(&self, service: &str, totals: &ObservedTotals) {
        let Some(policy) = self.policy(service) else {
            return;
        };
        let Some(rule) = policy.rollback else {
            return;
        };
        let verdict = judge(&policy, &rule, |v| {
            totals.versions.get(v).map(Totals::from).unwrap_or_default()
        });
        if let Some(verdict) = verdict {
            let reason = format!(
                "{}; counted by {} gateway replica(s), judged by {}",
                verdict.reason, totals.replicas, self.config.replica_id
            );
            self.roll_back_reported(service, &policy, verdict.canary, reason)
                .await;
        }
    }

    /// Records the rollback of `canary` in the registry, then follows the policy it answers;
    /// announces it only if this replica's rollback is the one recorded.
    async fn roll_back_reported(
        &self,
        service: &str,
        policy: &Policy,
        canary: Version,
        reason: String,
    ) {
        match self.registry.rollback(service, &canary, &reason).await {
            Ok(doc) => {
                let ours = doc
                    .rolled_back
                    .as_ref()
                    .is_some_and(|r| r.version == canary && r.reason == reason);
                let after = Policy::from(&doc);
                self.policies
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(service.to_owned(), Arc::new(after.clone()));
                self.canaries.forget(service, &canary);
                if ours {
                    let at = doc.rolled_back.as_ref().map_or_else(Utc::now, |r| r.at);
                    self.announce_rollback(service, &canary, &reason, &after, at);
                } else {
                    tracing::info!(%service, version = %canary,
                        "canary already rolled back by another gateway replica");
                }
            }
            // The registry refuses it (a policy changed meanwhile, or the versions left with
            // traffic cannot take it): as a gateway without reports, here only.
            Err(ClientError::Problem { status, .. }) if (400..500).contains(&status) => {
                self.roll_back(service, policy, canary, reason);
            }
            Err(e) => tracing::warn!(%service, version = %canary, error = %e,
                "cannot record the rollback in the registry; judging again at the next report"),
        }
    }
}
