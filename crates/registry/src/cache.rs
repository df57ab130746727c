//! A short-lived cache of rendered read responses (`GET /servers`, `GET /status`).
//!
//! Many agents and dashboards ask the same few questions; answering them from memory keeps
//! reads cheap. Each write through this process, and each commit the database announces from
//! another (PostgreSQL), bumps a generation that voids every cached answer at once; a TTL bounds
//! how stale an answer can be after writes the process hears of only by polling (SQLite). When an answer is missing, one request per
//! question renders it and the others asking meanwhile wait for it (single flight), so an
//! expiry does not send every concurrent request to the database at once. Each answer keeps
//! a hash of its bytes, computed once, for `ETag`s.
//!
//! The last good answer to each question is kept whatever its age ([`LastKnown`]), and so is the
//! last rendering of each entry read or written: while the database is away, reads are answered
//! from them, marked stale, rather than failing. A fresh answer is simply a last good one of the
//! current generation younger than the TTL, so each answer is held once. All of it is bounded
//! by bytes (`--read-cache-max-bytes`): past the bound the least recently stored go first.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (252 of 694 lines).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcp_fleet_model::ServerId;
use mcp_fleet_store::ListQuery;
use tokio::sync::watch;

/// Most answers, and most entries, kept; past it the oldest go first.
pub(crate) const MAX_LAST_KNOWN: usize = 10_000;

/// The default bound of everything the cache holds (`--read-cache-max-bytes`, 24 MiB): room for
/// `/status` of 100,000 entries (14.4 MiB) and the most read pages, with the registry's RSS
/// under 150 MB at its peak (docs/perf.md).
pub const DEFAULT_READ_CACHE_MAX_BYTES: usize = 24 * 1024 * 1024;

/// What a kept value costs, in bytes (its buffers; the bookkeeping is small and bounded by key
/// count).
pub(crate) trait Weigh {
    fn bytes(&self) -> usize;
}

impl Weigh for Bytes {
    fn bytes(&self) -> usize {
        self.len()
    }
}

/// The newest value per key, whatever its age, at most `max` keys and `max_bytes` bytes: the
/// least recently stored go first; a value larger than `max_bytes` alone is not kept.
pub(crate) struct LastKnown<K, V> {
    max: usize,
    max_bytes: usize,
    /// The weight of the values held.
    bytes: usize,
    /// The counter that orders stores.
    next: u64,
    /// Value by key, with the store's number.
    values: HashMap<K, (u64, V)>,
    /// Keys by store number, oldest first.
    order: BTreeMap<u64, K>,
}

impl<K: Clone + Eq + std::hash::Hash, V: Clone + Weigh> LastKnown<K, V> {
    pub(crate) fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            max: max.max(1),
            max_bytes,
            bytes: 0,
            next: 0,
            values: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// Keeps `value` as the newest for `key`, dropping the oldest keys while over a bound.
    pub(crate) fn put(&mut self, key: K, value: V) {
        self.remove(&key);
        let weight = value.bytes();
        if weight > self.max_bytes {
            return;
        }
        let n = self.next;
        self.next += 1;
        self.bytes += weight;
        self.values.insert(key.clone(), (n, value));
        self.order.insert(n, key);
        while self.values.len() > self.max || self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, v)) = self.values.remove(&oldest) {
                self.bytes -= v.bytes();
            }
        }
    }

    /// The newest value kept for `key`.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.values.get(key).map(|(_, v)| v.clone())
    }

    /// Forgets `key` (an entry deleted must not come back in an outage).
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some((n, v)) = self.values.remove(key) {
            self.order.remove(&n);
            self.bytes -= v.bytes();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.values.len()
    }
}

/// While the database is away, how long reads answer from the last known state without asking
/// it; then one read tries it again.
const OUTAGE_RETRY: Duration = Duration::from_secs(1);

/// What a cached answer answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    List(ListQuery),
    Status,
    V01(crate::api::v01::Key),
}

/// A rendered answer and its entity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) body: Bytes,
    /// A hash of `body`. The seed is fixed, so equal bodies have equal tags in every process:
    /// an `ETag` from one replica is good at another.
    pub(crate) etag: u64,
}

impl Answer {
    pub(crate) fn new(body: Bytes) -> Self {
        let etag = foldhash::fast::FixedState::with_seed(0).hash_one(&body[..]);
        Self { body, etag }
    }
}

/// An answer kept: the generation its rendering began in, and when it was kept.
#[derive(Clone)]
struct Kept {
    generation: u64,
    at: Instant,
    answer: Answer,
}

impl Weigh for Kept {
    fn bytes(&self) -> usize {
        self.answer.body.len()
    }
}

/// An answer being rendered: those who ask for it meanwhile subscribe and wait.
struct Flight {
    /// The generation the renderer read before it asked the store.
    generation: u64,
    /// Gets the answer once rendered; dropped without one if rendering failed or was cancelled.
    done: Arc<watch::Sender<Option<Answer>>>,
}

#[derive(Default)]
struct Answers {
    in_flight: HashMap<CacheKey, Flight>,
}

/// Rendered answers by question, fresh for one generation and at most `ttl`.
pub(crate) struct ReadCache {
    ttl: Duration,
    generation: AtomicU64,
    answers: Mutex<Answers>,
    /// The last good answer to each question: fresh while of the current generation and younger
    /// than the TTL, the fallback in an outage whatever its age.
    last_answers: Mutex<LastKnown<CacheKey, Kept>>,
    /// The last rendering of each entry read or written (`GET /servers/{id}` bodies).
    last_entries: Mutex<LastKnown<ServerId, Bytes>>,
    /// When a read last tried the database, while it is known to be away (`None` while it
    /// answers): other reads then answer stale at once instead of each waiting for a timeout.
    outage: Mutex<Option<Instant>>,
}

/// What a request that found no answer does.
enum Role<'a> {
    /// Render the answer and hand it to those waiting.
    Render(FlightGuard<'a>),
    /// Wait for the request already rendering it.
    Wait(watch::Receiver<Option<Answer>>),
}

/// Held by the request rendering an answer. Dropping it ends the flight, also when the request
/// is cancelled midway, so waiters never hang: without an answer they render it themselves.
struct FlightGuard<'a> {
    cache: &'a ReadCache,
    key: CacheKey,
    generation: u64,
    done: Arc<watch::Sender<Option<Answer>>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut answers = self.cache.lock();
        // A write may have started a newer flight for the same key: leave that one alone.
        if answers
            .in_flight
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(&f.done, &self.done))
        {
            answers.in_flight.remove(&self.key);
        }
    }
}

impl ReadCache {
    /// A cache whose answers are fresh for `ttl` and which holds at most `max_bytes` of
    /// answers and entries: an eighth for entries, the rest for answers.
    pub(crate) fn new(ttl: Duration, max_bytes: usize) -> Self {
        let for_entries = max_bytes / 8;
        Self {
            ttl,
            generation: AtomicU64::new(0),
            answers: Mutex::new(Answers::default()),
            last_answers: Mutex::new(LastKnown::new(MAX_LAST_KNOWN, max_bytes - for_entries)),
            last_entries: Mutex::new(LastKnown::new(MAX_LAST_KNOWN, for_entries)),
            outage: Mutex::new(None),
        }
    }

    /// Whether the database is known to be away, without claiming the next try of it.
    pub(crate) fn database_known_away(&self) -> bool {
        self.outage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Whether a read should skip the database and answer from the last known state: it is
    /// known to be away and another read tried it less than [`OUTAGE_RETRY`] ago. Otherwise the
    /// caller is the one to try it.
    pub(crate) fn database_away(&self) -> bool {
        let mut outage = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        match outage.as_mut() {
            Some(tried) if tried.elapsed() < OUTAGE_RETRY => true,
            Some(tried) => {
                *tried = Instant::now();
                false
            }
            None => false,
        }
    }

    /// Notes that the database failed a read as unavailable.
    pub(crate) fn database_failed(&self) {
        let mut outage = self.outage.lock().unwrap_or_else(|e| e.into_inner());
        outage.get_or_insert_with(Instant::now);
    }

    fn database_answered(&self) {
        *self.outage.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Keeps `answer`, rendered from a read begun in `generation`, as the last good answer to
    /// `key`, unless one from a later read is already kept. It is fresh, for later requests,
    /// while no write happens and the TTL has not passed.
    fn remember(&self, key: &CacheKey, generation: u64, answer: &Answer) {
        self.database_answered();
        let mut last = self.last_known_answers();
        if last.get(key).is_none_or(|k| k.generation <= generation) {
            let kept = Kept {
                generation,
                at: Instant::now(),
                answer: answer.clone(),
            };
            last.put(key.clone(), kept);
        }
    }

    fn last_known_answers(&self) -> MutexGuard<'_, LastKnown<CacheKey, Kept>> {
        self.last_answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The last good answer to `key`, however old: for when rendering a fresh one failed.
    pub(crate) fn last_known(&self, key: &CacheKey) -> Option<Answer> {
        self.last_known_answers().get(key).map(|k| k.answer)
    }

    /// Keeps `body` as the last known rendering of entry `id` (read or just written).
    pub(crate) fn remember_entry(&self, id: &ServerId, body: Bytes) {
        self.database_answered();
        let mut last = self.last_entries.lock().unwrap_or_else(|e| e.into_inner());
        last.put(id.clone(), body);
    }

    /// Forgets entry `id` (deleted).
    pub(crate) fn forget_entry(&self, id: &ServerId) {
        let mut last = self.last_entries.lock().unwrap_or_else(|e| e.into_inner());
        last.remove(id);
    }

    /// The last known rendering of entry `id`, however old.
    pub(crate) fn last_known_entry(&self, id: &ServerId) -> Option<Bytes> {
        let last = self.last_entries.lock().unwrap_or_else(|e| e.into_inner());
        last.get(id)
    }

    /// The current generation: read it before querying the store, pass it to [`Self::put`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer to `key` if it is of the current generation and younger than the TTL.
    fn fresh(&self, key: &CacheKey) -> Option<Answer> {
        let hit = self.last_known_answers().get(key)?;
        (hit.generation == self.generation() && hit.at.elapsed() < self.ttl).then_some(hit.answer)
    }

    /// The fresh answer to `key`, if any (requests use [`Self::get_or_render`]).
    #[cfg(test)]
    fn get(&self, key: &CacheKey) -> Option<Bytes> {
        self.fresh(key).map(|a| a.body)
    }

    /// Keeps `body`, fresh unless a write happened since `generation` was read.
    #[cfg(test)]
    fn put(&self, key: CacheKey, generation: u64, body: Bytes) {
        self.remember(&key, generation, &Answer::new(body));
    }

    /// The bytes held, answers and entries.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.last_known_answers().bytes
            + self
                .last_entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .bytes
    }

    /// The answer to `key`: from memory, from a request already rendering it, or from `render`
    /// (which should query the store), kept for later unless a write happened meanwhile.
    pub(crate) async fn get_or_render<E, Fut>(
        &self,
        key: &CacheKey,
        render: impl FnOnce() -> Fut,
    ) -> Result<Bytes, E>
    where
        Fut: Future<Output = Result<Bytes, E>>,
    {
        Ok(self.get_or_render_answer(key, render).await?.body)
    }

    /// [`Self::get_or_render`] with the answer's entity tag.
    pub(crate) async fn get_or_render_answer<E, Fut>(
        &self,
        key: &CacheKey,
        render: impl FnOnce() -> Fut,
    ) -> Result<Answer, E>
    where
        Fut: Future<Output = Result<Bytes, E>>,
    {
        if self.ttl.is_zero() {
            let generation = self.generation();
            let answer = Answer::new(render().await?);
            self.remember(key, generation, &answer);
            return Ok(answer);
        }
        let role = {
            let mut answers = self.lock();
            // Join only a flight begun in this generation: its query started after every write
            // answered so far, whereas one begun before a write may miss it.
            let generation = self.generation();
            if let Some(answer) = self.fresh(key) {
                return Ok(answer);
            }
            match answers.in_flight.get(key) {
                Some(flight) if flight.generation == generation => {
                    Role::Wait(flight.done.subscribe())
                }
                _ => {
                    let done = Arc::new(watch::Sender::new(None));
                    answers.in_flight.insert(
                        key.clone(),
                        Flight {
                            generation,
                            done: done.clone(),
                        },
                    );
                    Role::Render(FlightGuard {
                        cache: self,
                        key: key.clone(),
                        generation,
                        done,
                    })
                }
            }
        };
        match role {
            Role::Render(guard) => {
                let answer = Answer::new(render().await?);
                self.remember(key, guard.generation, &answer);
                guard.done.send_replace(Some(answer.clone()));
                Ok(answer)
            }
            Role::Wait(mut rx) => {
                if let Ok(answer) = rx.wait_for(Option::is_some).await
                    && let Some(answer) = answer.as_ref()
                {
                    return Ok(answer.clone());
                }
                // The renderer failed or was cancelled: answer this request on its own.
                let generation = self.generation();
                let answer = Answer::new(render().await?);
                self.remember(key, generation, &answer);
                Ok(answer)
            }
        }
    }

    /// Voids every cached answer: call after each committed write.
    pub(crate) fn invalidate(&self) {
        self.database_answered();
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many requests wait for the answer to `key` being rendered; `None` when none is.
    #[cfg(test)]
    fn waiting(&self, key: &CacheKey) -> Option<usize> {
        let answers = self.lock();
        answers.in_flight.get(key).map(|f| f.done.receiver_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_voids_answers_read_before_it() {
        let cache = ReadCache::new(Duration::from_secs(60), DEFAULT_READ_CACHE_MAX_BYTES);
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
        let cache = ReadCache::new(Duration::ZERO, DEFAULT_READ_CACHE_MAX_BYTES);
        cache.put(
            CacheKey::Status,
            cache.generation(),
            Bytes::from_static(b"a"),
        );
        assert_eq!(cache.get(&CacheKey::Status), None);
    }

    impl Weigh for &str {
        fn bytes(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn last_known_keeps_the_newest_and_evicts_the_oldest() {
        let mut last = LastKnown::new(3, usize::MAX);
        for (k, v) in [(1, "a"), (2, "b"), (3, "c"), (1, "a2"), (4, "d")] {
            last.put(k, v);
        }
        // 2 was stored longest ago (1 was stored again since).
        assert_eq!(last.len(), 3);
        assert_eq!(last.get(&2), None);
        assert_eq!(last.get(&1), Some("a2"));
        last.remove(&1);
        assert_eq!(last.get(&1), None);
        assert_eq!(last.len(), 2);
    }

    #[test]
    fn last_known_keeps_within_its_bytes() {
        let mut last = LastKnown::new(100, 10);
        for (k, v) in [(1, "aaaa"), (2, "bbbb"), (3, "cc")] {
            last.put(k, v);
        }
        assert_eq!((last.len(), last.bytes), (3, 10));
        // Two more bytes: the oldest goes.
        last.put(4, "dd");
        assert_eq!((last.get(&1), last.bytes), (None, 8));
        // Replacing a value counts the new one only.
        last.put(2, "b");
        assert_eq!(last.bytes, 5);
        // Too large alone: not kept, and the value it would have replaced is gone too.
        last.put(3, "ccccccccccc");
        assert_eq!((last.get(&3), last.bytes), (None, 3));
        last.remove(&2);
        last.remove(&4);
        assert_eq!((last.len(), last.bytes), (0, 0));
    }

    /// Issue #23, item 11: whatever is read, the cache holds at most its bound, answers and
    /// entries together; the newest answers stay fresh.
    #[tokio::test]
    async fn answers_and_entries_stay_within_the_byte_bound() {
        const MAX: usize = 64 * 1024;
        let cache = ReadCache::new(Duration::from_secs(60), MAX);
        let page = Bytes::from(vec![b'x'; 5000]);
        for n in 0..100 {
            let key = CacheKey::List(ListQuery {
                after: Some(format!("s{n:03}").parse().expect("id")),
                ..ListQuery::default()
            });
            let answer = cache
                .get_or_render(&key, || async { Ok::<_, ()>(page.clone()) })
                .await;
            assert_eq!(answer, Ok(page.clone()));
            let id: ServerId = format!("e{n:03}").parse().expect("id");
            cache.remember_entry(&id, Bytes::from(vec![b'y'; 1000]));
            assert!(
                cache.bytes() <= MAX,
                "{} bytes after {n} pages",
                cache.bytes()
            );
        }
        // The newest answer and entry are kept; the oldest went.
        let newest = CacheKey::List(ListQuery {
            after: Some("s099".parse().expect("id")),
            ..ListQuery::default()
        });
        assert_eq!(cache.get(&newest), Some(page.clone()));
        assert!(
            cache
                .last_known_entry(&"e099".parse().expect("id"))
                .is_some()
        );
        assert!(
            cache
                .last_known_entry(&"e000".parse().expect("id"))
                .is_none()
        );
        // An answer larger than the bound is answered, not kept.
        let huge = Bytes::from(vec![b'z'; MAX]);
        let answer = cache
            .get_or_render(&CacheKey::Status, || async { Ok::<_, ()>(huge.clone()) })
            .await;
        assert_eq!(answer, Ok(huge));
        assert_eq!(cache.get(&CacheKey::Status), None);
        assert!(cache.bytes() <= MAX);
    }

    #[tokio::test]
    async fn the_last_good_answer_outlives_writes_and_failures() {
        let cache = ReadCache::new(Duration::from_secs(60), DEFAULT_READ_CACHE_MAX_BYTES);
        let ok = cache
            .get_or_render(&CacheKey::Status, || async { Ok::<_, ()>(ANSWER) })
            .await;
        assert_eq!(ok, Ok(ANSWER));
        cache.invalidate();
        let failed = cache
            .get_or_render(&CacheKey::Status, || async { Err::<Bytes, _>(()) })
            .await;
        assert_eq!(failed, Err(()));
        assert_eq!(cache.get(&CacheKey::Status), None);
        assert_eq!(
            cache.last_known(&CacheKey::Status).map(|a| a.body),
            Some(ANSWER)
        );
    }

    #[test]
    fn reads_skip_the_database_only_while_it_is_known_away() {
        let cache = ReadCache::new(Duration::from_secs(60), DEFAULT_READ_CACHE_MAX_BYTES);
        assert!(!cache.database_away());
        cache.database_failed();
        assert!(cache.database_away(), "a read just found it away");
        // A committed write (or any good answer) shows it is back.
        cache.invalidate();
        assert!(!cache.database_away());
    }

    const ANSWER: Bytes = Bytes::from_static(b"answer");

    /// Polls until `n` requests wait for the answer to `key`, or fails after a deadline.
    async fn until_waiting(cache: &ReadCache, key: &CacheKey, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while cache.waiting(key) != Some(n) {
            assert!(Instant::now() < deadline, "{n} requests never waited");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn concurrent_misses_query_the_store_once() {
        const REQUESTS: usize = 16;
        let cache = Arc::new(ReadCache::new(
            Duration::from_secs(60),
            DEFAULT_READ_CACHE_MAX_BYTES,
        ));
        let queries = Arc::new(AtomicU64::new(0));
        let (open, gate) = watch::channel(false);
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..REQUESTS {
            let (cache, queries, mut gate) = (cache.clone(), queries.clone(), gate.clone());
            requests.spawn(async move {
                let query = || async move {
                    queries.fetch_add(1, Ordering::SeqCst);
                    // The store answers only once every request has asked.
                    let _ = gate.wait_for(|open| *open).await;
                    Ok::<_, ()>(ANSWER)
                };
                cache.get_or_render(&CacheKey::Status, query).await
            });
        }
        until_waiting(&cache, &CacheKey::Status, REQUESTS - 1).await;
        open.send_replace(true);
        while let Some(answer) = requests.join_next().await {
            assert_eq!(answer.expect("request"), Ok(ANSWER));
        }
        assert_eq!(queries.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get(&CacheKey::Status), Some(ANSWER));
    }

    #[tokio::test]
    async fn a_write_during_a_query_starts_a_new_one_and_voids_the_old() {
        let cache = Arc::new(ReadCache::new(
            Duration::from_secs(60),
            DEFAULT_READ_CACHE_MAX_BYTES,
        ));
        let (open, mut gate) = watch::channel(false);
        let before = tokio::spawn({
            let cache = cache.clone();
            async move {
                let query = || async move {
                    let _ = gate.wait_for(|open| *open).await;
                    Ok::<_, ()>(Bytes::from_static(b"old"))
                };
                cache.get_or_render(&CacheKey::Status, query).await
            }
        });
        until_waiting(&cache, &CacheKey::Status, 0).await;
        cache.invalidate();
        // Asked after the write: must not wait for (or get) the answer read before it.
        let after = cache.get_or_render(&CacheKey::Status, || async { Ok::<_, ()>(ANSWER) });
        let after = tokio::time::timeout(Duration::from_secs(10), after).await;
        assert_eq!(
            after.expect("waited for the query begun before the write"),
            Ok(ANSWER)
        );
        open.send_replace(true);
        assert_eq!(
            before.await.expect("request"),
            Ok(Bytes::from_static(b"old"))
        );
        assert_eq!(cache.get(&CacheKey::Status), Some(ANSWER));
    }

    #[tokio::test]
    async fn waiters_answer_themselves_when_the_query_is_cancelled() {
        let cache = Arc::new(ReadCache::new(
            Duration::from_secs(60),
            DEFAULT_READ_CACHE_MAX_BYTES,
        ));
        let stuck = tokio::spawn({
            let cache = cache.clone();
            async move {
                let query = || std::future::pending::<Result<Bytes, ()>>();
                cache.get_or_render(&CacheKey::Status, query).await
            }
        });
        until_waiting(&cache, &CacheKey::Status, 0).await;
        let waiter = tokio::spawn({
            let cache = cache.clone();
            async move {
                let query = || async { Ok::<_, ()>(ANSWER) };
                cache.get_or_render(&CacheKey::Status, query).await
            }
        });
        until_waiting(&cache, &CacheKey::Status, 1).await;
        stuck.abort();
        assert_eq!(waiter.await.expect("request"), Ok(ANSWER));
        assert_eq!(cache.waiting(&CacheKey::Status), None);
    }
}
