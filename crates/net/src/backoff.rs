//! The one backoff of the workspace: capped exponential delays with "equal jitter".

use std::time::Duration;

/// How long to wait between attempts: `initial · 2^attempt`, capped at `max`, of which a random
/// half is kept, so clients that failed together do not all retry in the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay (before jitter).
    pub initial: Duration,
    /// The longest delay (before jitter).
    pub max: Duration,
}

impl Default for Backoff {
    /// 500 ms, doubling up to 30 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Delays from `initial`, doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay before attempt `attempt` (0-based) without jitter: `initial · 2^attempt`,
    /// capped at `max`.
    pub fn base(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max)
    }

    /// The delay before attempt `attempt` (0-based): a random point of
    /// `[base / 2, base]` (see [`Backoff::base`]).
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self.base(attempt);
        let half = base / 2;
        let spread = u64::try_from((base - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_max_with_jitter() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let bases_ms = [
            100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000,
        ];
        for (attempt, base_ms) in (0..).zip(bases_ms) {
            let base = Duration::from_millis(base_ms);
            assert_eq!(b.base(attempt), base);
            for _ in 0..20 {
                let d = b.delay(attempt);
                assert!(
                    base / 2 <= d && d <= base,
                    "attempt {attempt}: {d:?} outside [{:?}, {base:?}]",
                    base / 2
                );
            }
        }
        assert_eq!(b.base(u32::MAX), Duration::from_secs(30));
        let spread: std::collections::HashSet<Duration> = (0..50).map(|_| b.delay(3)).collect();
        assert!(spread.len() > 1, "no jitter");
    }

    #[test]
    fn zero_delays_stay_zero() {
        let b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(b.delay(5), Duration::ZERO);
        let capped = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert!(capped.delay(0) <= Duration::from_secs(1));
    }
}
