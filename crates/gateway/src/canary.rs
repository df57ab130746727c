//! Canary analysis: per-version call outcomes over a sliding window, and the decision to roll a
//! canary back when its error rate exceeds the stable version's by more than the policy allows.
//! Judged on this replica's windows alone, or (`report.rs`) on every replica's counts as the
//! registry sums them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use mcp_fleet_model::{
    Observations, SlotCounts, Version, VersionTotals, WINDOW_SLOTS, slot_ms, slot_of,
};

use crate::routing::{Policy, RollbackRule};

/// How a call ended, as the canary analysis counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A result without `isError`.
    Ok,
    /// A result with `isError: true`: the tool ran and failed.
    ToolError,
    /// No result: transport failure, timeout, JSON-RPC error.
    Error,
}

impl Outcome {
    /// The label used in metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ToolError => "tool_error",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    index: u64,
    calls: u64,
    errors: u64,
    tool_errors: u64,
    latency_us: u64,
    /// Calls counted when the slot was last reported to the registry.
    reported: u64,
}

/// Totals over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Totals {
    /// Calls.
    pub(crate) calls: u64,
    /// Calls without a result.
    pub(crate) errors: u64,
    /// Results with `isError`.
    pub(crate) tool_errors: u64,
    /// Sum of latencies, in microseconds.
    pub(crate) latency_us: u64,
}

impl Totals {
    /// Share of calls that failed either way (0 without calls).
    pub(crate) fn error_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            (self.errors + self.tool_errors) as f64 / self.calls as f64
        }
    }
}

impl From<&VersionTotals> for Totals {
    fn from(t: &VersionTotals) -> Self {
        Self {
            calls: t.calls,
            errors: t.errors,
            tool_errors: t.tool_errors,
            latency_us: 0,
        }
    }
}

/// Outcomes of one version's calls over a sliding window, in fixed memory. Slots are cut from
/// wall-clock time (`slot_of`), so that every gateway replica's slot `n` is the same stretch
/// of time and the registry can add them up.
#[derive(Debug)]
pub(crate) struct Window {
    /// The length asked for.
    requested: Duration,
    slot_ms: u64,
    slots: Vec<Slot>,
}

impl Window {
    /// A window of `span`.
    pub(crate) fn new(span: Duration) -> Self {
        Self {
            requested: span,
            slot_ms: slot_ms(span),
            slots: vec![Slot::default(); WINDOW_SLOTS as usize],
        }
    }

    /// The window's length.
    #[cfg(test)]
    pub(crate) fn span(&self) -> Duration {
        Duration::from_millis(self.slot_ms * WINDOW_SLOTS)
    }

    /// Whether it was made for windows of length `span`.
    pub(crate) fn covers(&self, span: Duration) -> bool {
        self.requested == span
    }

    fn index(&self, now: SystemTime) -> u64 {
        slot_of(now.into(), self.slot_ms)
    }

    /// Whether slot `s` is within the window ending in slot `index`.
    fn within(s: &Slot, index: u64) -> bool {
        s.calls > 0 && s.index <= index && index - s.index < WINDOW_SLOTS
    }

    /// Counts one call.
    pub(crate) fn record(&mut self, now: SystemTime, outcome: Outcome, latency: Duration) {
        let index = self.index(now);
        let slot = &mut self.slots[(index % WINDOW_SLOTS) as usize];
        if slot.index != index {
            *slot = Slot {
                index,
                ..Slot::default()
            };
        }
        slot.calls += 1;
        match outcome {
            Outcome::Ok => {}
            Outcome::ToolError => slot.tool_errors += 1,
            Outcome::Error => slot.errors += 1,
        }
        slot.latency_us += u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    }

    /// The calls of the last window's length.
    pub(crate) fn totals(&self, now: SystemTime) -> Totals {
        let index = self.index(now);
        let mut t = Totals::default();
        for s in self.slots.iter().filter(|s| Self::within(s, index)) {
            t.calls += s.calls;
            t.errors += s.errors;
            t.tool_errors += s.tool_errors;
            t.latency_us += s.latency_us;
        }
        t
    }

    /// The slots within the window whose counts changed since they were last reported, each
    /// with its whole count.
    pub(crate) fn unreported(&self, now: SystemTime) -> Vec<SlotCounts> {
        let index = self.index(now);
        let mut out: Vec<SlotCounts> = self
            .slots
            .iter()
            .filter(|s| Self::within(s, index) && s.calls != s.reported)
            .map(|s| SlotCounts {
                slot: s.index,
                calls: s.calls,
                errors: s.errors,
                tool_errors: s.tool_errors,
            })
            .collect();
        out.sort_by_key(|c| c.slot);
        out
    }

    /// Notes that `sent` reached the registry.
    pub(crate) fn reported(&mut self, sent: &[SlotCounts]) {
        for c in sent {
            let slot = &mut self.slots[(c.slot % WINDOW_SLOTS) as usize];
            if slot.index == c.slot {
                slot.reported = c.calls;
            }
        }
    }
}

/// Every service's windows, by version: what this replica counted of its calls.
#[derive(Debug, Default)]
pub(crate) struct Canaries {
    windows: Mutex<HashMap<String, HashMap<Version, Window>>>,
    /// Whether the last report failed: a failure is logged at `warn` once, until one succeeds.
    pub(crate) reports_failing: std::sync::atomic::AtomicBool,
}

impl Canaries {
    /// Counts a call of `version` of `service`, whose policy has the rollback `rule`; with
    /// `judge_here`, judges the service's canaries on this replica's windows alone.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &self,
        service: &str,
        version: &Version,
        policy: &Policy,
        rule: &RollbackRule,
        outcome: Outcome,
        latency: Duration,
        judge_here: bool,
    ) -> Option<Verdict> {
        let now = SystemTime::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let versions = windows.entry(service.to_owned()).or_default();
        match versions.get_mut(version) {
            // A window of another length (the policy changed) starts over.
            Some(window) if window.covers(rule.window) => {}
            _ => {
                versions.insert(version.clone(), Window::new(rule.window));
            }
        }
        if let Some(window) = versions.get_mut(version) {
            window.record(now, outcome, latency);
        }
        if !judge_here {
            return None;
        }
        let totals = |v: &Version| versions.get(v).map_or(Totals::default(), |w| w.totals(now));
        judge(policy, rule, totals)
    }

    /// Forgets `version` of `service`: should it be given traffic again, it starts over.
    pub(crate) fn forget(&self, service: &str, version: &Version) {
        if let Some(versions) = self
            .windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(service)
        {
            versions.remove(version);
        }
    }

    /// A report per service (and slot length) whose counts changed since the last one.
    pub(crate) fn unreported(&self, replica: &str) -> Vec<(String, Observations)> {
        let now = SystemTime::now();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, Observations)> = Vec::new();
        for (service, versions) in windows.iter() {
            for (version, window) in versions {
                let slots = window.unreported(now);
                if slots.is_empty() {
                    continue;
                }
                let at = out
                    .iter()
                    .position(|(s, r)| s == service && r.slot_ms == window.slot_ms)
                    .unwrap_or_else(|| {
                        out.push((
                            service.clone(),
                            Observations {
                                replica: replica.to_owned(),
                                slot_ms: window.slot_ms,
                                versions: BTreeMap::new(),
                            },
                        ));
                        out.len() - 1
                    });
                out[at].1.versions.insert(version.clone(), slots);
            }
        }
        out
    }

    /// Notes that `report` of `service` reached the registry.
    pub(crate) fn reported(&self, service: &str, report: &Observations) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let Some(versions) = windows.get_mut(service) else {
            return;
        };
        for (version, sent) in &report.versions {
            if let Some(window) = versions
                .get_mut(version)
                .filter(|w| w.slot_ms == report.slot_ms)
            {
                window.reported(sent);
            }
        }
    }
}

/// Why a canary is to be rolled back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// The canary version.
    pub(crate) canary: Version,
    /// A sentence for the registry, the log and the alert.
    pub(crate) reason: String,
}

/// Judges each canary of `policy` against its stable version, reading windows with `totals`.
pub(crate) fn judge(
    policy: &Policy,
    rule: &RollbackRule,
    totals: impl Fn(&Version) -> Totals,
) -> Option<Verdict> {
    let stable = policy.stable()?;
    let base = totals(stable);
    for canary in policy.canaries() {
        let t = totals(canary);
        if t.calls < u64::from(rule.min_requests.max(1)) {
            continue;
        }
        let delta = t.error_rate() - base.error_rate();
        if delta > rule.max_error_rate_delta {
            return Some(Verdict {
                canary: canary.clone(),
                reason: format!(
                    "error rate of {canary} {:.3} vs {:.3} for {stable} over {}s \
                     ({} vs {} calls; at most +{} allowed)",
                    t.error_rate(),
                    base.error_rate(),
                    rule.window.as_secs(),
                    t.calls,
                    base.calls,
                    rule.max_error_rate_delta
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_forgets_old_calls() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut w = Window::new(Duration::from_secs(60));
        assert_eq!(w.span(), Duration::from_secs(60));
        w.record(t0, Outcome::Ok, Duration::from_millis(2));
        w.record(
            t0 + Duration::from_secs(30),
            Outcome::Error,
            Duration::from_millis(2),
        );
        w.record(
            t0 + Duration::from_secs(31),
            Outcome::ToolError,
            Duration::from_millis(2),
        );
        let t = w.totals(t0 + Duration::from_secs(40));
        assert_eq!((t.calls, t.errors, t.tool_errors), (3, 1, 1));
        assert!((t.error_rate() - 2.0 / 3.0).abs() < 1e-9);
        // 60 s on, the first call has left the window; 100 s on, all have.
        assert_eq!(w.totals(t0 + Duration::from_secs(60)).calls, 2);
        assert_eq!(w.totals(t0 + Duration::from_secs(100)).calls, 0);
        // A slot reused after a lap starts from zero.
        w.record(t0 + Duration::from_secs(120), Outcome::Ok, Duration::ZERO);
        assert_eq!(w.totals(t0 + Duration::from_secs(120)).calls, 1);
    }

    #[test]
    fn only_slots_changed_since_the_last_report_are_reported_each_whole() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut w = Window::new(Duration::from_secs(60));
        w.record(t0, Outcome::Ok, Duration::ZERO);
        w.record(t0, Outcome::Error, Duration::ZERO);
        w.record(
            t0 + Duration::from_secs(1),
            Outcome::ToolError,
            Duration::ZERO,
        );
        let first = w.unreported(t0 + Duration::from_secs(1));
        assert_eq!(
            first,
            vec![
                SlotCounts {
                    slot: 1_800_000_000,
                    calls: 2,
                    errors: 1,
                    tool_errors: 0
                },
                SlotCounts {
                    slot: 1_800_000_001,
                    calls: 1,
                    errors: 0,
                    tool_errors: 1
                },
            ]
        );
        w.reported(&first);
        assert!(w.unreported(t0 + Duration::from_secs(1)).is_empty());
        // One more call in the second slot: that slot again, with its whole count.
        w.record(t0 + Duration::from_secs(1), Outcome::Ok, Duration::ZERO);
        let next = w.unreported(t0 + Duration::from_secs(2));
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].slot, next[0].calls), (1_800_000_001, 2));
        // Slots that left the window are not reported.
        w.record(t0 + Duration::from_secs(2), Outcome::Ok, Duration::ZERO);
        assert!(w.unreported(t0 + Duration::from_secs(200)).is_empty());
    }

    fn policy() -> Policy {
        Policy {
            weights: vec![
                ("1.0.0".parse().expect("v"), 90),
                ("2.0.0".parse().expect("v"), 10),
            ],
            rollback: None,
            updated_at: None,
        }
    }

    #[test]
    fn a_canary_is_judged_only_with_enough_calls_and_a_large_enough_excess() {
        let rule = RollbackRule {
            max_error_rate_delta: 0.05,
            window: Duration::from_secs(60),
            min_requests: 50,
        };
        let p = policy();
        let totals = |stable: (u64, u64), canary: (u64, u64)| {
            move |v: &Version| {
                let (calls, errors) = if v.to_string() == "1.0.0" {
                    stable
                } else {
                    canary
                };
                Totals {
                    calls,
                    errors,
                    ..Totals::default()
                }
            }
        };
        // 30% errors but only 49 calls: not yet.
        assert_eq!(judge(&p, &rule, totals((500, 0), (49, 15))), None);
        // 30% vs 0%: rolled back.
        let verdict = judge(&p, &rule, totals((500, 0), (50, 15))).expect("verdict");
        assert_eq!(verdict.canary.to_string(), "2.0.0");
        assert!(
            verdict.reason.contains("0.300 vs 0.000"),
            "{}",
            verdict.reason
        );
        // 1% vs 0%, or 30% vs 28%: within the allowed excess.
        assert_eq!(judge(&p, &rule, totals((500, 0), (100, 1))), None);
        assert_eq!(judge(&p, &rule, totals((500, 140), (100, 30))), None);
    }
}
