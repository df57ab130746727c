//! Sharing the health work with the other replicas on the database: this replica renews its
//! leases at every refresh (`Store::renew_leases`), probes only the entries of the shards it
//! holds, stops probing once it cannot renew in time, and hands its shards over at shutdown.

use std::sync::atomic::Ordering;

use mcp_fleet_store::LEASE_SHARDS;

use super::*;

/// This process's replica id when none is given: the host name, the process id and a random
/// suffix (a restarted process is a new replica, and two containers with the same host name
/// and pid 1 still differ).
pub(crate) fn default_replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let mut suffix = [0u8; 3];
    let _ = getrandom::getrandom(&mut suffix);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{}-{suffix}", std::process::id())
}

impl Worker {
    /// How long a lease lasts unrenewed: half an interval, so the entries of a replica that
    /// died are probed by another within about one and a half intervals of their last probe
    /// (at least three ticks of the worker, which renews at most once a tick).
    fn lease_ttl(&self) -> Duration {
        (self.cfg.interval / 2).max(FLUSH_EVERY * 3)
    }

    /// How often to renew: three times per lease, and at least at every refresh.
    pub(super) fn renew_every(&self) -> Duration {
        (self.lease_ttl() / 3)
            .min(self.cfg.refresh)
            .max(FLUSH_EVERY)
    }

    /// How long a busy shard released to another replica stays untaken: time for this
    /// replica's probes in flight to finish and be written, so the next holder schedules from
    /// them.
    fn release_grace(&self) -> Duration {
        self.cfg.timeout + BURST_FLUSH_EVERY + FLUSH_EVERY
    }

    /// Renews this replica's leases and takes its fair share; returns the shards just claimed
    /// (their entries are to be read afresh).
    pub(super) async fn renew_leases(&mut self) -> HashSet<u32> {
        if !self.db.ready() {
            self.note_lapse();
            return HashSet::new();
        }
        // Shards with probes in flight or results unwritten: released only after the grace, so
        // that the next holder schedules from their results.
        let busy: HashSet<u32> = self
            .entries
            .iter()
            .filter(|(_, t)| t.in_flight)
            .map(|(id, _)| shard_of(id))
            .chain(self.pending.iter().map(|c| shard_of(&c.id)))
            .collect();
        let busy: Vec<u32> = busy.into_iter().collect();
        let started = Instant::now();
        let ttl = self.lease_ttl();
        let renewed = self
            .store
            .renew_leases(&self.replica, ttl, self.release_grace(), &busy)
            .await;
        let Some(leases) = self.db.note("renew leases", renewed) else {
            self.note_lapse();
            return HashSet::new();
        };
        self.held_until = started + ttl;
        self.held = leases.held.iter().copied().collect();
        self.owned_stale = true;
        self.stats
            .replicas
            .store(u64::from(leases.replicas), Ordering::Relaxed);
        self.stats
            .leases_held
            .store(self.held.len() as u64, Ordering::Relaxed);
        if !leases.released.is_empty() {
            let released: HashSet<u32> = leases.released.iter().copied().collect();
            tracing::info!(
                replica = %self.replica,
                shards = released.len(),
                entries = self.count_in(&released),
                replicas = leases.replicas,
                "released {} of {LEASE_SHARDS} shards to the other replicas: {} replicas share the health work",
                released.len(),
                leases.replicas
            );
        }
        self.taken_over = leases.taken_over;
        leases.claimed.into_iter().collect()
    }

    /// Logs and counts the shards just claimed, once their entries are loaded.
    pub(super) fn note_claims(&mut self, claimed: &HashSet<u32>) {
        let owned = self.note_owned();
        if claimed.is_empty() {
            return;
        }
        let taken: HashSet<u32> = self.taken_over.iter().map(|(s, _)| *s).collect();
        if !taken.is_empty() {
            let mut from: Vec<&str> = self.taken_over.iter().map(|(_, r)| r.as_str()).collect();
            from.sort_unstable();
            from.dedup();
            let entries = self.count_in(&taken);
            self.stats
                .takeovers
                .fetch_add(entries as u64, Ordering::Relaxed);
            tracing::info!(
                replica = %self.replica,
                entries,
                shards = taken.len(),
                from = %from.join(", "),
                "took over {entries} entries whose lease expired (held by {})",
                from.join(", ")
            );
        }
        let fresh: HashSet<u32> = claimed.difference(&taken).copied().collect();
        if !fresh.is_empty() {
            tracing::info!(
                replica = %self.replica,
                entries = self.count_in(&fresh),
                shards = fresh.len(),
                "took {} free shards: now probes {owned} entries in {} of {LEASE_SHARDS} shards",
                fresh.len(),
                self.held.len()
            );
        }
        self.taken_over.clear();
    }

    /// Warns once when this replica's leases run out unrenewed: it stops probing, as another
    /// replica may take its shards.
    fn note_lapse(&mut self) {
        if !self.held.is_empty() && Instant::now() >= self.held_until {
            tracing::warn!(
                replica = %self.replica,
                shards = self.held.len(),
                "cannot renew the health leases: probing paused until the database answers"
            );
            self.held.clear();
            self.stats.leases_held.store(0, Ordering::Relaxed);
        }
    }

    /// Counts the entries this replica probes (`entries_owned`), once per tick at most: a
    /// refresh can follow every write. Returns the count.
    pub(super) fn note_owned(&mut self) -> usize {
        let owned = self.count_in(&self.held);
        self.stats
            .entries_owned
            .store(owned as u64, Ordering::Relaxed);
        self.owned_stale = false;
        owned
    }

    /// Entries of `shards`.
    fn count_in(&self, shards: &HashSet<u32>) -> usize {
        self.entries
            .keys()
            .filter(|id| shards.contains(&shard_of(id)))
            .count()
    }

    /// When an entry last checked at `last` (by any replica) is next due: one interval on,
    /// jittered as [`Self::next_due`]; at once when never checked or overdue.
    pub(super) fn due_after(&self, last: Option<Timestamp>) -> Instant {
        let Some(last) = last else {
            return Instant::now();
        };
        let since = (Utc::now() - last).to_std().unwrap_or_default();
        let next = self.next_due_from_now();
        next.checked_sub(since).unwrap_or_else(Instant::now)
    }

    fn next_due_from_now(&self) -> Instant {
        self.jittered(self.jitter.hash_one(Instant::now()))
    }

    /// Whether this replica probes `id` now.
    pub(super) fn holds(&self, id: &ServerId) -> bool {
        Instant::now() < self.held_until && self.held.contains(&shard_of(id))
    }

    /// At shutdown, while this replica holds shards: lets the probes in flight finish (each
    /// within the probe timeout) and keeps their results, so that the replica taking the shards
    /// over schedules from them rather than probing those entries again at once.
    pub(super) async fn finish_probes(&mut self, done: &mut mpsc::UnboundedReceiver<ProbeDone>) {
        if self.held.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.cfg.timeout;
        while !self.probes.is_empty() {
            tokio::select! {
                Some(result) = done.recv() => self.apply(result),
                _ = self.probes.join_next() => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        while let Ok(result) = done.try_recv() {
            self.apply(result);
        }
    }

    /// Hands every shard over at shutdown, for the other replicas to take at once.
    pub(super) async fn release_leases(&mut self) {
        if self.held.is_empty() || !self.db.ready() {
            return;
        }
        match self.store.release_leases(&self.replica).await {
            Ok(()) => tracing::info!(
                replica = %self.replica,
                shards = self.held.len(),
                "released the health leases for the other replicas"
            ),
            Err(e) => tracing::warn!(
                replica = %self.replica,
                error = %e,
                "cannot release the health leases: they expire on their own"
            ),
        }
    }
}
