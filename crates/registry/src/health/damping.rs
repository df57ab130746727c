//! Flap damping: turns a stream of probe outcomes into a status that changes only after
//! `rise` consecutive successes or `fall` consecutive failures.

use mcp_fleet_model::HealthStatus;

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered correctly and fast enough.
    Healthy,
    /// Answered, but with an error status, a JSON-RPC error, or slowly.
    Degraded,
    /// Did not answer: refused, reset, timed out, or the address is denied.
    Down,
}

impl Outcome {
    fn status(self) -> HealthStatus {
        match self {
            Self::Healthy => HealthStatus::Healthy,
            Self::Degraded => HealthStatus::Degraded,
            Self::Down => HealthStatus::Down,
        }
    }
}

/// An entry's damped status and its current streaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Streak {
    /// The status shown to clients.
    pub(crate) status: HealthStatus,
    /// Consecutive healthy outcomes.
    pub(crate) successes: u32,
    /// Consecutive unhealthy (degraded or down) outcomes.
    pub(crate) failures: u32,
}

impl Streak {
    /// A newly registered entry: `unknown` until its first probe.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self {
            status: HealthStatus::Unknown,
            successes: 0,
            failures: 0,
        }
    }
}

/// The damping thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damping {
    /// Consecutive successes needed to become healthy.
    pub(crate) rise: u32,
    /// Consecutive failures needed to leave healthy.
    pub(crate) fall: u32,
}

impl Damping {
    /// The streak after one more outcome. The first outcome of an `unknown` entry sets its status
    /// at once: there is no earlier state worth protecting.
    pub(crate) fn apply(&self, s: Streak, outcome: Outcome) -> Streak {
        let (successes, failures) = match outcome {
            Outcome::Healthy => (s.successes.saturating_add(1), 0),
            _ => (0, s.failures.saturating_add(1)),
        };
        let status = if s.status == HealthStatus::Unknown {
            outcome.status()
        } else if outcome == Outcome::Healthy {
            if successes >= self.rise.max(1) {
                HealthStatus::Healthy
            } else {
                s.status
            }
        } else if failures >= self.fall.max(1) {
            outcome.status()
        } else {
            s.status
        };
        Streak {
            status,
            successes,
            failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::{Degraded, Down, Healthy, Unknown};

    fn run(d: Damping, outcomes: &[Outcome]) -> Vec<HealthStatus> {
        let mut s = Streak::new();
        outcomes
            .iter()
            .map(|&o| {
                s = d.apply(s, o);
                s.status
            })
            .collect()
    }

    #[test]
    fn first_probe_sets_the_status() {
        let d = Damping { rise: 3, fall: 3 };
        assert_eq!(Streak::new().status, Unknown);
        assert_eq!(run(d, &[Outcome::Down]), [Down]);
        assert_eq!(run(d, &[Outcome::Healthy]), [Healthy]);
    }

    #[test]
    fn one_failure_does_not_mark_down_with_fall_2() {
        let d = Damping { rise: 1, fall: 2 };
        use Outcome as O;
        assert_eq!(
            run(
                d,
                &[
                    O::Healthy,
                    O::Down,
                    O::Healthy,
                    O::Down,
                    O::Down,
                    O::Healthy
                ]
            ),
            [Healthy, Healthy, Healthy, Healthy, Down, Healthy]
        );
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let d = Damping { rise: 2, fall: 1 };
        use Outcome as O;
        assert_eq!(
            run(d, &[O::Down, O::Healthy, O::Down, O::Healthy, O::Healthy]),
            [Down, Down, Down, Down, Healthy]
        );
    }

    #[test]
    fn degraded_counts_as_a_failure_and_shows_as_degraded() {
        let d = Damping { rise: 1, fall: 2 };
        use Outcome as O;
        assert_eq!(
            run(d, &[O::Healthy, O::Degraded, O::Degraded, O::Down, O::Down]),
            [Healthy, Healthy, Degraded, Down, Down]
        );
    }
}
