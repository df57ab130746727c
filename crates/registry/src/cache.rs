//! A short-lived cache of rendered read responses (`GET /servers`, `GET /status`).
//!
//! Many agents and dashboards ask the same few questions; answering them from memory keeps
//! reads cheap. Each write through this process bumps a generation that voids every cached
//! answer at once (read-your-writes); a TTL bounds how stale an answer can be after writes
//! made by another process on the same database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcp_fleet_store::ListQuery;

/// Most answers kept; past it the cache starts over (the keys are few in practice).
const MAX_KEYS: usize = 1024;

/// What a cached answer answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    List(ListQuery),
    Status,
}

struct Cached {
    generation: u64,
    at: Instant,
    body: Bytes,
}

/// Rendered answers by question, valid for one generation and at most `ttl`.
pub(crate) struct ReadCache {
    ttl: Duration,
    generation: AtomicU64,
    answers: Mutex<HashMap<CacheKey, Cached>>,
}

impl ReadCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// The current generation: read it before querying the store, pass it to [`Self::put`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self, key: &CacheKey) -> Option<Bytes> {
        if self.ttl.is_zero() {
            return None;
        }
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let hit = answers.get(key)?;
        (hit.generation == self.generation() && hit.at.elapsed() < self.ttl)
            .then(|| hit.body.clone())
    }

    /// Keeps `body` unless a write happened since `generation` was read (it may be stale).
    pub(crate) fn put(&self, key: CacheKey, generation: u64, body: Bytes) {
        if self.ttl.is_zero() || generation != self.generation() {
            return;
        }
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= MAX_KEYS {
            answers.clear();
        }
        answers.insert(
            key,
            Cached {
                generation,
                at: Instant::now(),
                body,
            },
        );
    }

    /// Voids every cached answer: call after each committed write.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_voids_answers_read_before_it() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let g = cache.generation();
        cache.put(CacheKey::Status, g, Bytes::from_static(b"a"));
        assert_eq!(cache.get(&CacheKey::Status), Some(Bytes::from_static(b"a")));
        cache.invalidate();
        assert_eq!(cache.get(&CacheKey::Status), None);
        // An answer computed before the write must not be kept after it.
        cache.put(CacheKey::Status, g, Bytes::from_static(b"old"));
        assert_eq!(cache.get(&CacheKey::Status), None);
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let cache = ReadCache::new(Duration::ZERO);
        cache.put(
            CacheKey::Status,
            cache.generation(),
            Bytes::from_static(b"a"),
        );
        assert_eq!(cache.get(&CacheKey::Status), None);
    }
}
