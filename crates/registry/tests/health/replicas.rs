//! Several registries on one PostgreSQL database share the health work: each entry is probed by
//! one replica once per interval, the entries of a replica that stops go to the others, and a
//! status change raises one event and one webhook call however many replicas watch it. (A
//! replica killed without a chance to hand over: `cli/tests/replicas.rs`.)

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::routing::post;
use mcp_fleet_registry::{Config, HealthConfig, HealthHandle};
use mcp_fleet_sample_servers::Sample;
use mcp_fleet_store::EventKind;
use mcp_fleet_test_support::{poll, postgres};
use tokio_util::sync::CancellationToken;

use super::{Hook, Switch, entry, hook, register, serve, status_is};
use crate::common::{start_checked_with, start_replica};

/// Two seconds: leases of one, which a loaded machine still renews in time.
const INTERVAL: Duration = Duration::from_secs(2);

/// Fast settings for replica `name`.
fn replica(name: &str) -> HealthConfig {
    HealthConfig {
        interval: INTERVAL,
        timeout: Duration::from_secs(1),
        refresh: Duration::from_millis(100),
        rise: 1,
        fall: 1,
        replica_id: Some(name.into()),
        ..HealthConfig::default()
    }
}

/// MCP servers, one per entry at `/<id>/mcp`, noting when each is probed (an `initialize`, the
/// one POST without a session, or a `server/discover`).
#[derive(Clone, Default)]
struct Probes(Arc<Mutex<Vec<(String, Instant)>>>);

impl Probes {
    async fn serve(&self, ids: &[String], shutdown: CancellationToken) -> String {
        let mut app = Router::new();
        for id in ids {
            app = app.nest(&format!("/{id}"), Sample::Catalog.router(shutdown.clone()));
        }
        let probes = self.clone();
        let app = app.layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let probes = probes.clone();
                async move {
                    // 2026-07-28 requests name their method in a header: a probe is the
                    // `server/discover`, not the catalog listing that may follow it.
                    let method = req.headers().get("mcp-method");
                    if req.method() == Method::POST
                        && !req.headers().contains_key("mcp-session-id")
                        && method.is_none_or(|m| m == "server/discover")
                        && let Some(id) = req.uri().path().split('/').nth(1)
                    {
                        let mut seen = probes.0.lock().expect("not poisoned");
                        seen.push((id.to_owned(), Instant::now()));
                    }
                    next.run(req).await
                }
            },
        ));
        mcp_fleet_test_support::serve(app, shutdown).await
    }

    /// When each entry was probed since `from`.
    fn since(&self, from: Instant) -> HashMap<String, Vec<Instant>> {
        let mut by_id: HashMap<String, Vec<Instant>> = HashMap::new();
        for (id, at) in self.0.lock().expect("not poisoned").iter() {
            if *at >= from {
                by_id.entry(id.clone()).or_default().push(*at);
            }
        }
        by_id
    }
}

/// Every entry was probed about once per interval: never twice within half an interval (two
/// replicas probing it), never left for two (give or take a loaded machine's scheduling).
fn assert_once_per_interval(seen: &HashMap<String, Vec<Instant>>) {
    for (id, times) in seen {
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= INTERVAL / 2 && gap <= INTERVAL * 5 / 2,
                "{id} probed {gap:?} after its previous probe: {times:?}"
            );
        }
    }
}

fn held(workers: &[&HealthHandle]) -> Vec<u64> {
    workers
        .iter()
        .map(|w| w.stats().leases_held.load(Relaxed))
        .collect()
}

#[tokio::test]
async fn replicas_probe_each_entry_once_per_interval_and_take_over_a_stopped_ones() {
    let Some(db) = postgres().await else { return };
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let probes = Probes::default();
    let ids: Vec<String> = (0..24).map(|i| format!("probed-{i}")).collect();
    let base = probes.serve(&ids, servers.clone()).await;
    let (a, a_worker) = start_checked_with(db, Config::default(), replica("a")).await;
    let (_b, b_worker) = start_replica(&a, Config::default(), replica("b")).await;
    let (c, c_worker) = start_replica(&a, Config::default(), replica("c")).await;
    for id in &ids {
        register(&a, &entry(id, &format!("{base}/{id}"), None, "none")).await;
    }
    for id in &ids {
        status_is(&a, id, "healthy").await;
    }
    let workers = [&a_worker, &b_worker, &c_worker];
    // A fair share of the shards each, and some of the entries each.
    let owned = poll("the replicas to take a fair share each", || async {
        let held = held(&workers);
        let owned: Vec<u64> = workers
            .iter()
            .map(|w| w.stats().entries_owned.load(Relaxed))
            .collect();
        (held.iter().sum::<u64>() == 64
            && held.iter().all(|&n| n >= 20)
            && owned.iter().sum::<u64>() == ids.len() as u64)
            .then_some(owned)
    })
    .await;
    assert!(
        owned.iter().all(|&n| n > 0),
        "every replica probes: {owned:?}"
    );

    let from = Instant::now();
    let seen = poll("five probes of every entry", || async {
        let seen = probes.since(from);
        ids.iter()
            .all(|id| seen.get(id).is_some_and(|t| t.len() >= 5))
            .then_some(seen)
    })
    .await;
    assert_once_per_interval(&seen);

    // A replica stops: its shards go to the other two, and no entry misses a beat.
    drop(c);
    let stopped = Instant::now();
    poll("the two left to hold every shard", || async {
        (held(&workers[..2]).iter().sum::<u64>() == 64).then_some(())
    })
    .await;
    let seen = poll("three probes of every entry since the stop", || async {
        let after = probes.since(stopped);
        ids.iter()
            .all(|id| after.get(id).is_some_and(|t| t.len() >= 3))
            .then(|| probes.since(from))
    })
    .await;
    assert_once_per_interval(&seen);
    let stopped_owned = c_worker.stats().entries_owned.load(Relaxed);
    assert!(stopped_owned > 0, "the stopped replica had entries");
}

#[tokio::test]
async fn a_status_change_raises_one_event_and_one_webhook_call_in_the_cluster() {
    let Some(db) = postgres().await else { return };
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let received = Hook::default();
    let hook_url = serve(
        Router::new()
            .route("/hook", post(hook))
            .with_state(received.clone()),
        servers.clone(),
    )
    .await;
    let switch = Switch::open();
    let base = serve(switch.router(), servers.clone()).await;
    let health = |name| HealthConfig {
        webhooks: vec![format!("{hook_url}/hook").parse().expect("url")],
        ..replica(name)
    };
    let (a, a_worker) = start_checked_with(db, Config::default(), health("a")).await;
    let (b, b_worker) = start_replica(&a, Config::default(), health("b")).await;
    let (_c, c_worker) = start_replica(&a, Config::default(), health("c")).await;
    register(
        &b,
        &entry("flip", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    status_is(&a, "flip", "healthy").await;
    switch.set(503);
    status_is(&a, "flip", "degraded").await;
    // Every replica had time to notice the change, had it probed the entry too.
    poll("four failed probes", || async {
        (switch.failed() >= 4).then_some(())
    })
    .await;
    let bodies = poll("two webhook calls", || async {
        let bodies = received.bodies();
        (bodies.len() >= 2).then_some(bodies)
    })
    .await;
    let steps: Vec<(&str, &str)> = bodies
        .iter()
        .map(|b| {
            (
                b["from"].as_str().unwrap_or(""),
                b["to"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [("unknown", "healthy"), ("healthy", "degraded")],
        "{bodies:#?}"
    );
    let published: u64 = [&a_worker, &b_worker, &c_worker]
        .iter()
        .map(|w| w.stats().transitions.load(Relaxed))
        .sum();
    assert_eq!(
        published, 2,
        "transitions published by all replicas together"
    );
    let log = a.store.events_since(0, 1000).await.expect("events");
    let changes = log
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Status)
        .count();
    assert_eq!(changes, 2, "{:#?}", log.events);
}
