//! The database as the worker last found it, and the backoff while it is away.

use mcp_fleet_store::StoreError;
use tokio::time::Instant;

use super::*;

/// The database as the worker last found it. While it is away the worker leaves it alone
/// between tries (which back off as [`DB_RETRY`] says) rather than failing
/// every tick, logs the outage once when it begins and once when it ends, and keeps probing
/// while its leases last: results wait in `pending` (at most [`MAX_PENDING`]) until they can be
/// written.
#[derive(Debug, Default)]
pub(super) struct Db {
    pub(super) down: Option<Down>,
}

#[derive(Debug)]
pub(super) struct Down {
    pub(super) since: Instant,
    /// Failures since the outage began, less one: the wait before the next try is
    /// `DB_RETRY.base(attempt)`.
    pub(super) attempt: u32,
    pub(super) retry_at: Instant,
}

impl Db {
    /// Whether to use the database now: always while it answers, at each retry while not.
    pub(super) fn ready(&self) -> bool {
        self.down
            .as_ref()
            .is_none_or(|d| Instant::now() >= d.retry_at)
    }

    pub(super) fn failed(&mut self, what: &str, e: &StoreError) {
        let now = Instant::now();
        match &mut self.down {
            None => {
                tracing::warn!(error = %e, "health worker cannot {what}: database unavailable; retrying with backoff");
                self.down = Some(Down {
                    since: now,
                    attempt: 0,
                    retry_at: now + DB_RETRY.base(0),
                });
            }
            Some(d) => {
                tracing::debug!(error = %e, "health worker cannot {what}: still unavailable");
                d.attempt = d.attempt.saturating_add(1);
                d.retry_at = now + DB_RETRY.base(d.attempt);
            }
        }
    }

    pub(super) fn succeeded(&mut self) {
        if let Some(d) = self.down.take() {
            tracing::warn!(
                down_ms = d.since.elapsed().as_millis() as u64,
                "health worker: database is back"
            );
        }
    }

    /// Notes how a database call went; passes its value on.
    pub(super) fn note<T>(&mut self, what: &str, r: Result<T, StoreError>) -> Option<T> {
        match r {
            Ok(v) => {
                self.succeeded();
                Some(v)
            }
            Err(e) => {
                self.failed(what, &e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_backs_off_and_ends_with_the_first_success() {
        let mut db = Db::default();
        assert!(db.ready());
        let e = || StoreError::Unavailable("connection refused".into());
        let mut delays = Vec::new();
        for _ in 0..8 {
            db.failed("read entries", &e());
            assert!(!db.ready(), "retried at once");
            delays.push(db.down.as_ref().map(|d| DB_RETRY.base(d.attempt)));
        }
        let ms = |ms| Some(Duration::from_millis(ms));
        assert_eq!(
            delays,
            [
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(5000),
                ms(5000),
                ms(5000)
            ]
        );
        assert_eq!(db.note("read entries", Ok(1)), Some(1));
        assert!(db.ready());
        assert!(db.down.is_none());
    }
}
