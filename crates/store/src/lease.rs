//! Health work shared by the replicas on one database: entries fall into [`LEASE_SHARDS`] shards
//! by a hash of their id ([`shard_of`]), and each replica probes the entries of the shards it
//! holds a lease on. A lease lasts until renewed or expired, so a replica that dies leaves no
//! lease behind for longer than one time-to-live; each renewal also takes the replica's fair
//! share (the shards over the replicas alive), releasing shards past it for the others. Times
//! are the database's clock, so replicas' clocks need not agree.

use std::time::Duration;

use mcp_fleet_model::ServerId;

/// How many shards the health work is split into (the rows of `health_leases`, migration 0008).
pub const LEASE_SHARDS: u32 = 64;

/// The shard of entry `id`: FNV-1a of its bytes, which every replica (of any version) computes
/// alike.
pub fn shard_of(id: &ServerId) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % LEASE_SHARDS
}

/// What one renewal of a replica's leases did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leases {
    /// The shards the replica holds now, in order.
    pub held: Vec<u32>,
    /// Shards it took this time (part of `held`).
    pub claimed: Vec<u32>,
    /// Of `claimed`, those whose lease another replica had let expire, with that replica's id.
    pub taken_over: Vec<(u32, String)>,
    /// Shards it gave up for other replicas to take (past its fair share).
    pub released: Vec<u32>,
    /// Replicas alive, this one included.
    pub replicas: u32,
}

/// Whole milliseconds of `d`, as the lease columns keep them.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// A replica's fair share of the shards among `replicas` (rounded up, so the shares cover them all).
pub(crate) fn fair_share(replicas: i64) -> usize {
    let replicas = u32::try_from(replicas.max(1)).unwrap_or(u32::MAX);
    LEASE_SHARDS.div_ceil(replicas) as usize
}

/// The lease functions, the same SQL on both backends but for `$now` (the database clock in
/// milliseconds since 1970) and `$skip_locked` (what a claim appends so that replicas claiming
/// at once skip each other's rows instead of waiting on them).
macro_rules! leases {
    ($store:ty, $now:literal, $skip_locked:literal) => {
        pub(super) async fn renew_leases(
            store: &$store,
            replica: &str,
            ttl: std::time::Duration,
            grace: std::time::Duration,
            busy: &[u32],
        ) -> Result<$crate::Leases, $crate::StoreError> {
            let (ttl, grace) = ($crate::lease::millis(ttl), $crate::lease::millis(grace));
            let mut tx = store.begin_write().await?;
            let now: i64 = sqlx::query_scalar(concat!("SELECT ", $now))
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM health_replicas WHERE until_ms < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO health_replicas (id, until_ms) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET until_ms = excluded.until_ms",
            )
            .bind(replica)
            .bind(now + ttl)
            .execute(&mut *tx)
            .await?;
            let replicas: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM health_replicas")
                .fetch_one(&mut *tx)
                .await?;
            let mut held: Vec<i64> = sqlx::query_scalar(
                "UPDATE health_leases SET until_ms = $1 WHERE owner = $2 RETURNING shard",
            )
            .bind(now + ttl)
            .bind(replica)
            .fetch_all(&mut *tx)
            .await?;
            held.sort_unstable();
            let share = $crate::lease::fair_share(replicas);
            let mut out = $crate::Leases {
                replicas: u32::try_from(replicas).unwrap_or(u32::MAX),
                ..$crate::Leases::default()
            };
            // The highest shards go, busy or not: handing over the idle ones first would keep the
            // shards that have entries and give the others only empty ones (with a few entries,
            // one replica would probe them all). While one of them is `busy`, all of them wait
            // out `grace` (this replica's probes in flight write their results meanwhile), so
            // whoever takes them next schedules from those results, and takes them together.
            let is_busy = |shard: i64| busy.iter().any(|b| i64::from(*b) == shard);
            let released = held.split_off(share.min(held.len()));
            let until = if released.iter().any(|s| is_busy(*s)) {
                now + grace
            } else {
                now
            };
            for shard in released {
                sqlx::query("UPDATE health_leases SET owner = '', until_ms = $1 WHERE shard = $2")
                    .bind(until)
                    .bind(shard)
                    .execute(&mut *tx)
                    .await?;
                out.released.push(shard as u32);
            }
            if held.len() < share {
                let free: Vec<(i64, String)> = sqlx::query_as(concat!(
                    "SELECT shard, owner FROM health_leases WHERE until_ms < $1 \
                     ORDER BY shard LIMIT $2",
                    $skip_locked
                ))
                .bind(now)
                .bind((share - held.len()) as i64)
                .fetch_all(&mut *tx)
                .await?;
                for (shard, was) in free {
                    sqlx::query(
                        "UPDATE health_leases SET owner = $1, until_ms = $2 WHERE shard = $3",
                    )
                    .bind(replica)
                    .bind(now + ttl)
                    .bind(shard)
                    .execute(&mut *tx)
                    .await?;
                    held.push(shard);
                    out.claimed.push(shard as u32);
                    if !was.is_empty() && was != replica {
                        out.taken_over.push((shard as u32, was));
                    }
                }
            }
            tx.commit().await?;
            held.sort_unstable();
            out.held = held.into_iter().map(|s| s as u32).collect();
            Ok(out)
        }

        pub(super) async fn release_leases(
            store: &$store,
            replica: &str,
        ) -> Result<(), $crate::StoreError> {
            let mut tx = store.begin_write().await?;
            sqlx::query("UPDATE health_leases SET owner = '', until_ms = 0 WHERE owner = $1")
                .bind(replica)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM health_replicas WHERE id = $1")
                .bind(replica)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }
    };
}
pub(crate) use leases;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        let id = |s: &str| s.parse::<ServerId>().expect("id");
        // Fixed values: every replica, of any version, must agree on them.
        assert_eq!(shard_of(&id("a")), 0xe40c292c % LEASE_SHARDS);
        let mut counts = [0u32; LEASE_SHARDS as usize];
        for i in 0..6400 {
            counts[shard_of(&id(&format!("server-{i}"))) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&n| (50..=150).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn fair_shares_cover_every_shard() {
        assert_eq!(fair_share(0), 64);
        assert_eq!(fair_share(1), 64);
        assert_eq!(fair_share(3), 22);
        assert_eq!(fair_share(100), 1);
    }
}
