//! Outlier ejection: instances that fail call after call are taken out of routing for a while
//! that grows with each ejection, never more than a set share of a service at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::OutlierConfig;

#[derive(Debug, Default, Clone)]
struct State {
    consecutive: u32,
    ejections: u32,
    until: Option<Instant>,
}

/// Each instance's run of errors and ejection.
#[derive(Debug)]
pub(crate) struct Outliers {
    config: OutlierConfig,
    states: HashMap<String, State>,
}

impl Outliers {
    /// No instance ejected.
    pub(crate) fn new(config: OutlierConfig) -> Self {
        Self {
            config,
            states: HashMap::new(),
        }
    }

    /// Whether `instance` is out of routing at `now`.
    pub(crate) fn is_ejected(&self, instance: &str, now: Instant) -> bool {
        self.states
            .get(instance)
            .and_then(|s| s.until)
            .is_some_and(|until| now < until)
    }

    /// Counts a call of `instance`, one of `service_instances`. Returns how long it is ejected
    /// for when this call ejects it.
    pub(crate) fn record(
        &mut self,
        instance: &str,
        service_instances: &[&str],
        failed: bool,
        now: Instant,
    ) -> Option<Duration> {
        let threshold = self.config.consecutive_errors;
        if !failed {
            if let Some(s) = self.states.get_mut(instance) {
                s.consecutive = 0;
            }
            return None;
        }
        if threshold == 0 {
            return None;
        }
        let ejected_now = service_instances
            .iter()
            .filter(|i| **i != instance && self.is_ejected(i, now))
            .count();
        let cap = service_instances.len() * usize::from(self.config.max_ejected_percent) / 100;
        let state = self.states.entry(instance.to_owned()).or_default();
        if state.until.is_some_and(|until| now < until) {
            return None;
        }
        state.consecutive += 1;
        if state.consecutive < threshold || ejected_now + 1 > cap {
            return None;
        }
        state.consecutive = 0;
        state.ejections += 1;
        let length = self
            .config
            .base_ejection
            .saturating_mul(state.ejections)
            .min(self.config.max_ejection);
        state.until = Some(now + length);
        Some(length)
    }

    /// Forgets instances that are gone.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.states.retain(|id, _| keep(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutlierConfig {
        OutlierConfig {
            consecutive_errors: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejected_percent: 50,
        }
    }

    #[test]
    fn ejections_grow_and_end() {
        let mut o = Outliers::new(config());
        let all = ["a", "b"];
        let t0 = Instant::now();
        assert_eq!(o.record("a", &all, true, t0), None);
        assert_eq!(o.record("a", &all, true, t0), None);
        // A success breaks the run.
        assert_eq!(o.record("a", &all, false, t0), None);
        assert_eq!(o.record("a", &all, true, t0), None);
        assert_eq!(o.record("a", &all, true, t0), None);
        assert_eq!(o.record("a", &all, true, t0), Some(Duration::from_secs(10)));
        assert!(o.is_ejected("a", t0 + Duration::from_secs(9)));
        let t1 = t0 + Duration::from_secs(10);
        assert!(!o.is_ejected("a", t1));
        for _ in 0..2 {
            assert_eq!(o.record("a", &all, true, t1), None);
        }
        assert_eq!(o.record("a", &all, true, t1), Some(Duration::from_secs(20)));
        let t2 = t1 + Duration::from_secs(20);
        for _ in 0..2 {
            o.record("a", &all, true, t2);
        }
        // Capped.
        assert_eq!(o.record("a", &all, true, t2), Some(Duration::from_secs(25)));
    }

    #[test]
    fn at_most_half_of_a_service_is_ejected() {
        let mut o = Outliers::new(config());
        let all = ["a", "b"];
        let t0 = Instant::now();
        for _ in 0..3 {
            o.record("a", &all, true, t0);
        }
        assert!(o.is_ejected("a", t0));
        for _ in 0..10 {
            assert_eq!(o.record("b", &all, true, t0), None);
        }
        assert!(!o.is_ejected("b", t0));
        // A lone instance is never ejected.
        let one = ["c"];
        for _ in 0..10 {
            assert_eq!(o.record("c", &one, true, t0), None);
        }
    }
}
