//! Canary analysis: per-version call outcomes over a sliding window, and the decision to roll a
//! canary back when its error rate exceeds the stable version's by more than the policy allows.

use std::time::{Duration, Instant};

use mcp_fleet_model::Version;

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

/// Slots a window is cut into: the window slides by a sixtieth of its length.
const SLOTS: u64 = 60;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    index: u64,
    calls: u64,
    errors: u64,
    tool_errors: u64,
    latency_us: u64,
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

/// Outcomes of one version's calls over a sliding window, in fixed memory.
#[derive(Debug)]
pub(crate) struct Window {
    /// The length asked for.
    requested: Duration,
    epoch: Instant,
    slot: Duration,
    slots: Vec<Slot>,
}

impl Window {
    /// A window of `span` starting at `epoch`.
    pub(crate) fn new(span: Duration, epoch: Instant) -> Self {
        let slot = (span / SLOTS as u32).max(Duration::from_millis(1));
        Self {
            requested: span,
            epoch,
            slot,
            slots: vec![Slot::default(); SLOTS as usize],
        }
    }

    /// The window's length.
    #[cfg(test)]
    pub(crate) fn span(&self) -> Duration {
        self.slot * SLOTS as u32
    }

    /// Whether it was made for windows of length `span`.
    pub(crate) fn covers(&self, span: Duration) -> bool {
        self.requested == span
    }

    fn index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_nanos() / self.slot.as_nanos()) as u64
    }

    /// Counts one call.
    pub(crate) fn record(&mut self, now: Instant, outcome: Outcome, latency: Duration) {
        let index = self.index(now);
        let slot = &mut self.slots[(index % SLOTS) as usize];
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
    pub(crate) fn totals(&self, now: Instant) -> Totals {
        let index = self.index(now);
        let mut t = Totals::default();
        for s in &self.slots {
            if s.calls > 0 && index - s.index.min(index) < SLOTS && s.index <= index {
                t.calls += s.calls;
                t.errors += s.errors;
                t.tool_errors += s.tool_errors;
                t.latency_us += s.latency_us;
            }
        }
        t
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
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(60), t0);
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
        // 61 s on, the first call has left the window; 100 s on, all have.
        assert_eq!(w.totals(t0 + Duration::from_secs(61)).calls, 2);
        assert_eq!(w.totals(t0 + Duration::from_secs(100)).calls, 0);
        // A slot reused after a lap starts from zero.
        w.record(t0 + Duration::from_secs(120), Outcome::Ok, Duration::ZERO);
        assert_eq!(w.totals(t0 + Duration::from_secs(120)).calls, 1);
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
