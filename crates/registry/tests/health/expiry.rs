//! TTL heartbeats, deregistration of long-dead entries, and the expiry guard that holds when
//! most heartbeats stop at once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use mcp_fleet_registry::{Config, HealthConfig};
use mcp_fleet_test_support::{eventually, sqlite};
use tokio_util::sync::CancellationToken;

use super::{entry, entry_when, quick, register, status_is, time, ttl_entry};
use crate::common::{TestRegistry, live_server, refused_url, start_checked, start_checked_with};

/// A `ttl` entry is healthy while it heartbeats and goes down `ttlSeconds` after the last
/// heartbeat, not after its registration.
#[tokio::test]
async fn a_ttl_entry_lives_by_its_heartbeats() {
    let reg = start_checked(sqlite(), quick()).await;
    assert_eq!(reg.heartbeat("nobody").await, 404);
    register(&reg, &ttl_entry("beating")).await;
    let first = status_is(&reg, "beating", "healthy").await;
    assert!(first["lastError"].is_null(), "{first}");

    let mut last_beat = Utc::now();
    for _ in 0..3 {
        // Pacing the client, not waiting for the registry.
        tokio::time::sleep(Duration::from_millis(300)).await;
        last_beat = Utc::now();
        assert_eq!(reg.heartbeat("beating").await, 204);
        let (_, e) = reg.get("/servers/beating").await;
        assert_eq!(e["status"], "healthy", "{e}");
        assert!(time(&e["lastSeen"]) >= last_beat - chrono::Duration::milliseconds(1));
    }
    let registered = time(&first["registeredAt"]);
    assert!(last_beat - registered >= chrono::Duration::milliseconds(900));

    let down = entry_when(&reg, "beating", "to expire", |e| e["status"] == "down").await;
    assert_eq!(down["lastError"], "ttl expired", "{down}");
    let expired_at = time(&down["lastCheckedAt"]);
    assert!(
        expired_at >= last_beat + chrono::Duration::milliseconds(4999),
        "expired at {expired_at}, last heartbeat at {last_beat}"
    );
}

/// An entry that stays down longer than `deregister_after` is removed; a healthy one stays.
#[tokio::test]
async fn long_dead_entries_are_deregistered() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let live = live_server(servers.clone()).await;
    let dead = refused_url();
    let health = HealthConfig {
        deregister_after: Duration::from_millis(500),
        ..quick()
    };
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    register(
        &reg,
        &entry("keeper", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    register(
        &reg,
        &entry("goner", &dead, Some(&format!("{dead}/health")), "none"),
    )
    .await;
    let down = status_is(&reg, "goner", "down").await;
    let since = time(&down["statusSince"]);
    eventually(
        Duration::from_secs(10),
        "goner to be deregistered",
        || async { (reg.get("/servers/goner").await.0 == 404).then_some(()) },
    )
    .await;
    assert!(
        Utc::now() - since >= chrono::Duration::milliseconds(500),
        "removed too early: down since {since}"
    );
    assert_eq!(worker.stats().deregistered.load(Ordering::Relaxed), 1);
    let (status, keeper) = reg.get("/servers/keeper").await;
    assert_eq!(status, 200);
    assert_eq!(keeper["status"], "healthy", "{keeper}");
    let (_, listed) = reg.get("/servers?status=any").await;
    assert_eq!(
        listed["servers"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

/// Makes the TTL entries `ids` look as if their last heartbeat was 6 s ago (their TTL is 5 s),
/// all at one instant, as when a partition cuts them off together.
async fn silence(reg: &TestRegistry, ids: &[&str]) {
    let long_ago = Utc::now() - chrono::Duration::seconds(6);
    for id in ids {
        let id = id.parse().expect("id");
        assert!(reg.store.heartbeat(&id, long_ago).await.expect("heartbeat"));
    }
}

/// When most TTL entries stop heartbeating at once, the registry blames its own network: none
/// of them is marked down while expiry is suspended, and one that keeps heartbeating stays
/// healthy. Expiry resumes when heartbeats return.
#[tokio::test]
async fn expiry_guard_holds_when_most_heartbeats_stop() {
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), quick()).await;
    let silent = ["silent-a", "silent-b", "silent-c", "silent-d"];
    let all: Vec<&str> = silent.iter().copied().chain(["steady"]).collect();
    for id in &all {
        register(&reg, &ttl_entry(id)).await;
    }
    for id in &all {
        status_is(&reg, id, "healthy").await;
    }
    let suspended = || worker.stats().expiry_suspended.load(Ordering::Relaxed);
    assert!(!suspended());

    silence(&reg, &silent).await;
    eventually(
        Duration::from_secs(10),
        "expiry to be suspended",
        || async { suspended().then_some(()) },
    )
    .await;
    // Held for several refreshes: nobody goes down, the steady one keeps heartbeating.
    let until = tokio::time::Instant::now() + Duration::from_millis(700);
    while tokio::time::Instant::now() < until {
        assert_eq!(reg.heartbeat("steady").await, 204);
        assert!(suspended());
        for id in &all {
            let (status, e) = reg.get(&format!("/servers/{id}")).await;
            assert_eq!(status, 200, "{id}");
            assert_eq!(e["status"], "healthy", "{id}: {e}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for id in silent {
        assert_eq!(reg.heartbeat(id).await, 204);
    }
    eventually(Duration::from_secs(10), "expiry to resume", || async {
        (!suspended()).then_some(())
    })
    .await;
    // Expiry works again: one silent entry is now alone, and goes down.
    silence(&reg, &["silent-a"]).await;
    let down = status_is(&reg, "silent-a", "down").await;
    assert_eq!(down["lastError"], "ttl expired", "{down}");
    for id in &all[1..] {
        let (_, e) = reg.get(&format!("/servers/{id}")).await;
        assert_eq!(e["status"], "healthy", "{id}: {e}");
    }
}

/// The guard suspends deregistration too, and lifts once the silent entries are deleted: a
/// long-dead probed entry is then deregistered.
#[tokio::test]
async fn expiry_guard_lifts_when_the_silent_entries_are_deleted() {
    let dead = refused_url();
    let health = HealthConfig {
        deregister_after: Duration::from_millis(300),
        ..quick()
    };
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    let silent = ["silent-a", "silent-b", "silent-c"];
    for id in silent {
        register(&reg, &ttl_entry(id)).await;
        status_is(&reg, id, "healthy").await;
    }
    silence(&reg, &silent).await;
    let suspended = || worker.stats().expiry_suspended.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(10),
        "expiry to be suspended",
        || async { suspended().then_some(()) },
    )
    .await;
    register(
        &reg,
        &entry("goner", &dead, Some(&format!("{dead}/health")), "none"),
    )
    .await;
    let down = status_is(&reg, "goner", "down").await;
    let since = time(&down["statusSince"]);
    // Kept throughout, until well past deregister_after.
    eventually(Duration::from_secs(10), "goner down for 1 s", || async {
        assert_eq!(reg.get("/servers/goner").await.0, 200, "deregistered");
        (Utc::now() - since >= chrono::Duration::seconds(1)).then_some(())
    })
    .await;
    assert_eq!(worker.stats().deregistered.load(Ordering::Relaxed), 0);

    for id in silent {
        let res = reg
            .http
            .delete(format!("{}/servers/{id}", reg.url))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(res.status(), 204);
    }
    eventually(
        Duration::from_secs(10),
        "goner to be deregistered",
        || async { (reg.get("/servers/goner").await.0 == 404).then_some(()) },
    )
    .await;
    assert!(!suspended());
    assert_eq!(worker.stats().deregistered.load(Ordering::Relaxed), 1);
}
