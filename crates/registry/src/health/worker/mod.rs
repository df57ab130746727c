//! The health worker: keeps a schedule of every entry, runs due probes concurrently (bounded),
//! damps their outcomes into statuses, expires TTL entries, deregisters long-dead ones, and
//! writes results in batches.
//!
//! It reads entries from the store, not from the API, so it runs the same inside `serve` or as
//! a separate `health-worker` process against the same database. Every such process is a
//! replica that probes only the entries of the shards it holds a lease on (`lease.rs`), so each
//! entry is probed by one of them.

mod db;
mod expiry;
mod flush;
mod handle;
mod lease;

use db::Db;
use expiry::ttl_expired;
use handle::CheckRequest;
pub(crate) use handle::{CheckError, CheckReport};
pub use handle::{HealthHandle, HealthStats};

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use mcp_fleet_model::{HealthCheckMode, HealthStatus, ServerId, Timestamp};
use mcp_fleet_store::{CatalogRecord, CheckRecord, HealthRow, Store, shard_of};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::alerts::Alerts;
use super::damping::{Damping, Outcome, Streak};
use super::probe::{ProbeResult, Prober};
use super::ssrf::AddressPolicy;
use super::{HealthConfig, HealthError};

/// Most results kept while the database is unreachable; older ones are dropped first.
const MAX_PENDING: usize = 100_000;
/// A batch is written at least this often, or when it reaches [`FLUSH_AT`] results.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_AT: usize = 512;
/// While probes queue for a slot (a sweep's burst, when the fleet outnumbers
/// `--health-concurrency`), results are written at most this often: the writes' CPU then goes
/// to starting the queued probes, which finishes the burst sooner (docs/perf.md, health sweep).
const BURST_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The waits before trying the database again after it failed: 250 ms, doubled at each failure
/// up to 5 s (without jitter: one worker per process, nothing to spread).
const DB_RETRY: mcp_fleet_net::Backoff =
    mcp_fleet_net::Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
/// How soon a failed listing of an MCP-checked server's catalog is tried again (at most).
const CATALOG_RETRY: Duration = Duration::from_secs(60);
/// Fewest TTL entries for the expiry guard to apply: one or two silent servers are not a
/// network partition.
const GUARD_MIN_ENTRIES: usize = 3;

/// One entry under watch.
struct Tracked {
    row: HealthRow,
    streak: Streak,
    due: Instant,
    in_flight: bool,
    waiting: Vec<oneshot::Sender<Result<CheckReport, CheckError>>>,
    /// When its next probe is to list its catalog too; `None`: never.
    catalog_due: Option<Instant>,
}

impl Tracked {
    fn new(row: HealthRow, due: Instant) -> Self {
        let streak = Streak {
            status: row.status,
            successes: row.successes,
            failures: row.failures,
        };
        Self {
            row,
            streak,
            due,
            in_flight: false,
            waiting: Vec::new(),
            catalog_due: None,
        }
    }

    fn probed(&self) -> bool {
        matches!(
            self.row.mode.resolve(self.row.health_url.is_some()),
            HealthCheckMode::Http | HealthCheckMode::Mcp
        )
    }

    fn ttl_expired(&self, now: Timestamp) -> bool {
        self.ttl_late(now, 1.0)
    }

    /// Whether the last heartbeat is older than `fraction` of the TTL.
    fn ttl_late(&self, now: Timestamp, fraction: f64) -> bool {
        match (self.row.ttl_seconds, self.row.heartbeat_at) {
            (Some(ttl), Some(beat)) => {
                let allowed =
                    chrono::Duration::milliseconds((f64::from(ttl) * 1000.0 * fraction) as i64);
                beat + allowed < now
            }
            (Some(_), None) => true,
            _ => false,
        }
    }
}

type ProbeDone = (ServerId, i64, ProbeResult);

/// The worker's state; runs on one task, probes on others.
struct Worker {
    store: Arc<dyn Store>,
    db: Db,
    cfg: HealthConfig,
    damping: Damping,
    prober: Prober,
    alerts: Alerts,
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
    stats: Arc<HealthStats>,
    entries: HashMap<ServerId, Tracked>,
    seen_rev: Option<i64>,
    pending: Vec<CheckRecord>,
    /// Listings taken, to write after the checks.
    pending_catalogs: Vec<CatalogRecord>,
    /// When each entry's catalog was last listed, as the database said at start-up; entries
    /// learnt of later are listed at their first probe.
    catalog_times: Option<HashMap<ServerId, Timestamp>>,
    /// This replica's id, which its leases name.
    replica: String,
    /// The shards whose entries this replica probes, as its last renewal found them.
    held: HashSet<u32>,
    /// Until when those leases are surely ours: a replica that cannot renew stops probing
    /// before another may take over.
    held_until: Instant,
    /// Shards the last renewal took over from expired leases, with their former holders.
    taken_over: Vec<(u32, String)>,
    /// Entries were loaded since `entries_owned` was last counted.
    owned_stale: bool,
    replies: Vec<(
        oneshot::Sender<Result<CheckReport, CheckError>>,
        CheckReport,
    )>,
    semaphore: Arc<Semaphore>,
    /// Probes launched that wait for a slot of `semaphore`.
    queued: Arc<AtomicUsize>,
    /// When results were last written (or the worker started).
    last_flush: Instant,
    probes: JoinSet<()>,
    done_tx: mpsc::UnboundedSender<ProbeDone>,
    jitter: RandomState,
}

/// Starts the worker on the current runtime. `on_change` runs after every batch that changed a
/// status (the API uses it to drop cached answers).
pub(crate) fn spawn(
    store: Arc<dyn Store>,
    cfg: HealthConfig,
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
    shutdown: CancellationToken,
) -> Result<(HealthHandle, tokio::task::JoinHandle<()>), HealthError> {
    let policy = Arc::new(AddressPolicy::new(
        cfg.policy,
        cfg.deny.clone(),
        cfg.allow.clone(),
    ));
    tracing::info!(%policy, "address policy of probes and alerts");
    let prober = Prober::new(policy.clone(), cfg.timeout, cfg.degraded_latency)
        .map_err(|e| HealthError(e.to_string()))?;
    for url in &cfg.webhooks {
        if let Err(refused) = policy.check_url(url) {
            return Err(HealthError(format!(
                "--alert-webhook {}: {refused} (the address policy applies to webhooks too; \
                 allow it with --probe-allow-cidr)",
                url.origin().ascii_serialization()
            )));
        }
    }
    let alerts = Alerts::start(cfg.webhooks.clone(), policy.clone(), shutdown.clone());
    let replica = cfg
        .replica_id
        .clone()
        .unwrap_or_else(lease::default_replica_id);
    let stats = Arc::new(HealthStats::default());
    let _ = stats.replica.set(replica.clone());
    let wake = Arc::new(Notify::new());
    let (checks_tx, checks_rx) = mpsc::channel(64);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let worker = Worker {
        store,
        db: Db::default(),
        damping: Damping {
            rise: cfg.rise,
            fall: cfg.fall,
        },
        semaphore: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
        queued: Arc::new(AtomicUsize::new(0)),
        last_flush: Instant::now(),
        cfg,
        prober,
        alerts: alerts.clone(),
        on_change,
        stats: stats.clone(),
        entries: HashMap::new(),
        seen_rev: None,
        pending: Vec::new(),
        pending_catalogs: Vec::new(),
        catalog_times: None,
        replica,
        held: HashSet::new(),
        held_until: Instant::now(),
        taken_over: Vec::new(),
        owned_stale: false,
        replies: Vec::new(),
        probes: JoinSet::new(),
        done_tx,
        jitter: RandomState::new(),
    };
    let handle = HealthHandle {
        wake: wake.clone(),
        lists_catalogs: worker.lists_catalogs(),
        checks: checks_tx,
        stats,
        alerts,
    };
    // The worker and its probes run on a runtime of their own: a burst of a thousand probes
    // then queues behind itself, not in front of API requests (docs/perf.md, health sweep),
    // and the OS shares the cores between the two runtimes.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .thread_name("health-worker")
        .on_thread_start(super::priority::lower_this_thread)
        .build()
        .map_err(|e| HealthError(format!("cannot start the health worker's runtime: {e}")))?;
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("health-worker".into())
        .spawn(move || {
            super::priority::lower_this_thread();
            runtime.block_on(async move {
                let mut worker = worker;
                // Connections of the worker's own, opened from its threads: they share its
                // lower priority, and the API's connections keep theirs.
                match worker.store.detached().await {
                    Ok(Some(own)) => worker.store = own,
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        error = %e,
                        "health worker: cannot open connections of its own; sharing the API's"
                    ),
                }
                worker.run(wake, checks_rx, done_rx, shutdown).await;
            });
            let _ = done.send(());
        })
        .map_err(|e| HealthError(format!("cannot start the health worker's thread: {e}")))?;
    let task = tokio::spawn(async move {
        let _ = finished.await;
    });
    Ok((handle, task))
}

impl Worker {
    async fn run(
        mut self,
        wake: Arc<Notify>,
        mut checks: mpsc::Receiver<CheckRequest>,
        mut done: mpsc::UnboundedReceiver<ProbeDone>,
        shutdown: CancellationToken,
    ) {
        tracing::info!(
            replica = %self.replica,
            concurrency = self.cfg.concurrency,
            timeout_ms = self.cfg.timeout.as_millis() as u64,
            interval_s = self.cfg.interval.as_secs(),
            "health worker started"
        );
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_refresh = Instant::now() - self.cfg.refresh;
        let mut last_full = Instant::now() - self.cfg.interval;
        let mut last_renew = Instant::now() - self.renew_every();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => self.refresh(false, &HashSet::new()).await,
                Some(done) = done.recv() => {
                    self.apply(done);
                    if self.flush_due(self.pending.len() >= FLUSH_AT) {
                        self.flush().await;
                    }
                }
                Some(req) = checks.recv() => self.check_now(req).await,
                _ = tick.tick() => {
                    let now = Instant::now();
                    let mut claimed = HashSet::new();
                    if now.duration_since(last_renew) >= self.renew_every() {
                        last_renew = now;
                        claimed = self.renew_leases().await;
                    }
                    let full = now.duration_since(last_full) >= self.cfg.interval;
                    if full
                        || !claimed.is_empty()
                        || now.duration_since(last_refresh) >= self.cfg.refresh
                    {
                        if full {
                            last_full = now;
                        }
                        last_refresh = now;
                        self.refresh(full || !claimed.is_empty(), &claimed).await;
                        self.note_claims(&claimed);
                        self.expire_ttls().await;
                        self.deregister().await;
                    }
                    if self.owned_stale {
                        self.note_owned();
                    }
                    self.launch_due();
                    if self.flush_due(true) {
                        self.flush().await;
                    }
                    while self.probes.try_join_next().is_some() {}
                }
            }
        }
        self.finish_probes(&mut done).await;
        self.flush().await;
        self.probes.abort_all();
        self.release_leases().await;
        tracing::info!(replica = %self.replica, "health worker stopped");
    }

    /// Loads entries registered since the last look (all of them when `full`, which also drops
    /// deleted ones). Re-registered entries, and new ones never checked, are due at once. Entries another replica
    /// probes, and those of the shards just `claimed`, take their streak from the database and
    /// are due one interval after their last check there.
    async fn refresh(&mut self, full: bool, claimed: &HashSet<u32>) {
        if !self.db.ready() {
            return;
        }
        let after = if full { None } else { self.seen_rev };
        let read = self.store.health_rows(after).await;
        let Some((rows, rev)) = self.db.note("read entries", read) else {
            return;
        };
        if self.catalog_times.is_none() && self.lists_catalogs() {
            let read = self.store.catalog_times().await;
            let Some(times) = self.db.note("read catalog times", read) else {
                return;
            };
            self.catalog_times = Some(times.into_iter().collect());
        }
        let now = Instant::now();
        if full {
            let present: std::collections::HashSet<&ServerId> =
                rows.iter().map(|r| &r.id).collect();
            self.entries.retain(|id, _| present.contains(id));
        }
        for row in rows {
            let shard = shard_of(&row.id);
            let ours = self.held.contains(&shard) && !claimed.contains(&shard);
            match self.entries.get_mut(&row.id) {
                Some(t) if t.row.reg_rev == row.reg_rev && ours => {
                    // Same registration: keep our schedule and streak, take fresh heartbeat data.
                    t.row.heartbeat_at = row.heartbeat_at;
                }
                Some(t) if t.row.reg_rev == row.reg_rev => {
                    let due = self.due_after(row.last_checked_at);
                    let Some(t) = self.entries.get_mut(&row.id) else {
                        continue;
                    };
                    let mut fresh = Tracked::new(row, due);
                    fresh.in_flight = t.in_flight;
                    fresh.waiting = std::mem::take(&mut t.waiting);
                    fresh.catalog_due = t.catalog_due;
                    *t = fresh;
                }
                // Re-registered: due at once, and listed again.
                Some(_) => {
                    let mut fresh = Tracked::new(row, now);
                    fresh.catalog_due = self.catalog_period(&fresh.row).map(|_| now);
                    if let Some(t) = self.entries.get_mut(&fresh.row.id) {
                        *t = fresh;
                    }
                }
                // New here: at once unless another replica has checked it (a replica learning
                // of an entry after the shard changed hands must not probe it again).
                None => {
                    let due = self.due_after(row.last_checked_at);
                    let mut fresh = Tracked::new(row, due);
                    fresh.catalog_due = self.catalog_period(&fresh.row).and_then(|period| {
                        let listed = self
                            .catalog_times
                            .as_ref()
                            .and_then(|times| times.get(&fresh.row.id));
                        match listed {
                            Some(at) => {
                                let age = (Utc::now() - *at).to_std().unwrap_or_default();
                                now.checked_add(period.saturating_sub(age))
                            }
                            None => Some(now),
                        }
                    });
                    self.entries.insert(fresh.row.id.clone(), fresh);
                }
            }
        }
        self.seen_rev = Some(rev);
        self.owned_stale = true;
    }

    /// Whether this worker lists catalogs at all.
    fn lists_catalogs(&self) -> bool {
        self.cfg.catalog_refresh.is_some() || self.cfg.catalog_refresh_slow.is_some()
    }

    /// How often `row`'s catalog is listed; `None`: never.
    fn catalog_period(&self, row: &HealthRow) -> Option<Duration> {
        match row.mode.resolve(row.health_url.is_some()) {
            HealthCheckMode::Mcp => self.cfg.catalog_refresh,
            HealthCheckMode::Http => self.cfg.catalog_refresh_slow,
            _ => None,
        }
    }

    /// When an entry is next due: one interval on, give or take 10%, so the fleet spreads out.
    fn next_due(&self, id: &ServerId) -> Instant {
        self.jittered(self.jitter.hash_one((id, Instant::now())))
    }

    pub(super) fn jittered(&self, h: u64) -> Instant {
        let frac = (h % 2001) as f64 / 1000.0 - 1.0; // -1.0 ..= 1.0
        let interval = self.cfg.interval.as_secs_f64();
        Instant::now() + Duration::from_secs_f64((interval * (1.0 + 0.1 * frac)).max(0.05))
    }

    fn launch_due(&mut self) {
        let now = Instant::now();
        let due: Vec<ServerId> = self
            .entries
            .iter()
            .filter(|(id, t)| !t.in_flight && t.due <= now && t.probed() && self.holds(id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.launch(&id);
        }
    }

    fn launch(&mut self, id: &ServerId) {
        let next = self.next_due(id);
        let Some(t) = self.entries.get_mut(id) else {
            return;
        };
        t.in_flight = true;
        t.due = next;
        let list = t.catalog_due.is_some_and(|due| due <= Instant::now());
        let row = t.row.clone();
        let prober = self.prober.clone();
        let semaphore = self.semaphore.clone();
        let queued = self.queued.clone();
        let done = self.done_tx.clone();
        queued.fetch_add(1, Ordering::Relaxed);
        self.probes.spawn(async move {
            let permit = semaphore.acquire_owned().await;
            queued.fetch_sub(1, Ordering::Relaxed);
            let Ok(_permit) = permit else {
                return;
            };
            if let Some(result) = prober.probe(&row, list).await {
                let _ = done.send((row.id, row.reg_rev, result));
            }
        });
    }

    /// Folds one probe result into its entry's streak and queues the write.
    fn apply(&mut self, (id, reg_rev, result): ProbeDone) {
        let now = Utc::now();
        let suspended = self.stats.expiry_suspended.load(Ordering::Relaxed);
        let Some(t) = self.entries.get_mut(&id) else {
            return;
        };
        if t.row.reg_rev != reg_rev {
            return; // re-registered while the probe ran: its result describes the old entry
        }
        t.in_flight = false;
        self.stats.probes.fetch_add(1, Ordering::Relaxed);
        self.stats
            .probe_seconds
            .observe(f64::from(result.elapsed_ms) / 1000.0);
        if result.outcome != Outcome::Healthy {
            self.stats.probe_failures.fetch_add(1, Ordering::Relaxed);
        }
        let before = t.streak.status;
        let mut streak = self.damping.apply(t.streak, result.outcome);
        let mut error = result.error.clone();
        if t.ttl_expired(now) && !suspended {
            streak.status = HealthStatus::Down;
            error = Some(ttl_expired(t.row.ttl_seconds));
        }
        let (cause, detail) = error.map(|f| (f.cause, f.detail)).unzip();
        t.streak = streak;
        let record = CheckRecord {
            id: id.clone(),
            reg_rev,
            status: streak.status,
            successes: streak.successes,
            failures: streak.failures,
            checked_at: now,
            seen_at: (result.outcome == Outcome::Healthy).then_some(now),
            last_error: cause.clone(),
            last_error_detail: detail.clone(),
            latency_ms: result.latency_ms,
        };
        let report = CheckReport {
            id: id.to_string(),
            outcome: match result.outcome {
                Outcome::Healthy => HealthStatus::Healthy,
                Outcome::Degraded => HealthStatus::Degraded,
                Outcome::Down => HealthStatus::Down,
            },
            status: streak.status,
            latency_ms: result.latency_ms,
            error: cause.clone(),
            error_detail: detail.clone(),
            checked_at: now,
        };
        for reply in t.waiting.drain(..) {
            self.replies.push((reply, report.clone()));
        }
        match result.catalog {
            Some(Ok(catalog)) => {
                let period = match t.row.mode.resolve(t.row.health_url.is_some()) {
                    HealthCheckMode::Mcp => self.cfg.catalog_refresh,
                    _ => self.cfg.catalog_refresh_slow,
                };
                t.catalog_due = period.and_then(|p| Instant::now().checked_add(p));
                self.stats.catalogs_listed.fetch_add(1, Ordering::Relaxed);
                self.pending_catalogs.push(CatalogRecord {
                    id: id.clone(),
                    reg_rev,
                    catalog,
                    at: now,
                });
            }
            // Tried again within a minute (MCP-checked), or at the slow refresh (HTTP-checked:
            // its URL need not serve MCP at all).
            Some(Err(error)) => {
                tracing::debug!(%id, %error, "listing the catalog failed");
                let retry = match t.row.mode.resolve(t.row.health_url.is_some()) {
                    HealthCheckMode::Mcp => self.cfg.catalog_refresh.map(|p| p.min(CATALOG_RETRY)),
                    _ => self.cfg.catalog_refresh_slow,
                };
                t.catalog_due = retry.and_then(|p| Instant::now().checked_add(p));
            }
            None => {}
        }
        // The transition, if any, is the database's to tell (`flush`): only the replica whose
        // write changes the status alerts.
        if before != streak.status {
            t.row.status = streak.status;
            t.row.status_since = Some(now);
        }
        self.pending.push(record);
    }

    async fn check_now(&mut self, req: CheckRequest) {
        if !self.entries.contains_key(&req.id) {
            self.refresh(false, &HashSet::new()).await;
        }
        let Some(t) = self.entries.get_mut(&req.id) else {
            let _ = req.reply.send(Err(CheckError::NotFound));
            return;
        };
        if !t.probed() {
            let _ = req.reply.send(Err(CheckError::NotProbed(t.row.mode)));
            return;
        }
        t.waiting.push(req.reply);
        if req.list {
            let row = t.row.clone();
            if self.catalog_period(&row).is_some()
                && let Some(t) = self.entries.get_mut(&req.id)
            {
                t.catalog_due = Some(Instant::now());
            }
        }
        let Some(t) = self.entries.get(&req.id) else {
            return;
        };
        if !t.in_flight {
            self.launch(&req.id);
        }
    }
}
