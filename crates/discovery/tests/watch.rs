//! Acceptance 3: with `watch(true)`, a newly registered server's tools become callable and a
//! deregistered one's disappear, each within a bounded time. The watcher follows the
//! registry's change feed; a registry without one (the seed's) is polled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::get;
use mcp_fleet_discovery::{
    Discovery, DiscoveryError, FeedWatch, IndexEvent, RegistryClient, RegistryWatch,
};
use serde_json::Value;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, eventually, registration};

#[tokio::test]
async fn registering_and_deregistering_is_followed() {
    let registry = TestRegistry::start().await;
    let alpha = TestServer::start("alpha", &["search"]).await;
    registry
        .register(&registration(
            "alpha",
            &alpha.base_url,
            &["w"],
            json!({"type": "none"}),
        ))
        .await;
    let fleet = Discovery::builder(&registry.url)
        .tags(["w"])
        .watch(true)
        // Longer than the test's deadline: only the change feed can explain what follows.
        .poll_interval(Duration::from_secs(3600))
        .build()
        .expect("builds");
    fleet.connect().await.expect("connects");
    let mut updates = fleet.subscribe();
    assert!(matches!(updates.next().await, Some(IndexEvent::Reset(t)) if t.len() == 1));

    let beta = TestServer::start("beta", &["lookup"]).await;
    let registered = Instant::now();
    registry
        .register(&registration(
            "beta",
            &beta.base_url,
            &["w"],
            json!({"type": "none"}),
        ))
        .await;
    let result = eventually("beta__lookup to be callable", || async {
        fleet.call_tool("beta__lookup", json!({})).await.ok()
    })
    .await;
    assert_eq!(echoed(&result)["server"], "beta");
    let appeared = registered.elapsed();

    // A server with other tags is not picked up.
    let other = TestServer::start("other", &["x"]).await;
    registry
        .register(&registration(
            "other",
            &other.base_url,
            &["nope"],
            json!({"type": "none"}),
        ))
        .await;

    let deregistered = Instant::now();
    registry.deregister("beta").await;
    eventually("beta's tools to be gone", || async {
        (!fleet.tools().iter().any(|t| t.server_id == "beta")).then_some(())
    })
    .await;
    let vanished = deregistered.elapsed();
    let e = fleet
        .call_tool("beta__lookup", json!({}))
        .await
        .expect_err("gone");
    assert!(matches!(e, DiscoveryError::ToolNotFound { .. }), "{e:?}");
    assert!(fleet.servers().iter().all(|s| s.id != "other"));
    fleet
        .call_tool("alpha__search", json!({}))
        .await
        .expect("alpha untouched");

    // The stream told the same story: beta added, then removed.
    let mut seen_add = false;
    let mut seen_remove = false;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(100), updates.next()).await
    {
        match event {
            IndexEvent::Add(tools) if tools.iter().any(|t| t.qualified_name == "beta__lookup") => {
                seen_add = true;
            }
            IndexEvent::Remove(names) if names.iter().any(|n| n == "beta__lookup") => {
                assert!(seen_add, "removed before added");
                seen_remove = true;
            }
            _ => {}
        }
    }
    assert!(
        seen_add && seen_remove,
        "add {seen_add}, remove {seen_remove}"
    );
    // Both waits are bounded by `eventually`'s deadline; the figures are for the log.
    eprintln!("watch: appeared after {appeared:?}, vanished after {vanished:?}");
    fleet.shutdown().await;
}

/// A registry with only the seed's `GET /servers`: no revision header, no blocking queries.
async fn seed_registry(servers: Arc<Mutex<Vec<Value>>>, shutdown: CancellationToken) -> String {
    let app = axum::Router::new().route(
        "/servers",
        get(move || {
            let servers = servers.clone();
            async move {
                let list = servers.lock().expect("lock").clone();
                Json(json!({ "servers": list }))
            }
        }),
    );
    mcp_fleet_test_support::serve(app, shutdown).await
}

/// Entry `id` as a registry renders it.
async fn rendered(registry: &TestRegistry, id: &str) -> Value {
    registry
        .register(&registration(
            id,
            "http://127.0.0.1:9",
            &["w"],
            json!({"type": "none"}),
        ))
        .await;
    reqwest::get(format!("{}/servers/{id}", registry.url))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn a_registry_without_a_feed_is_polled() {
    let registry = TestRegistry::start().await;
    let (one, two) = (
        rendered(&registry, "one").await,
        rendered(&registry, "two").await,
    );
    let shutdown = CancellationToken::new();
    let servers = Arc::new(Mutex::new(vec![one]));
    let url = seed_registry(servers.clone(), shutdown.clone()).await;
    let client = RegistryClient::new(&url).expect("client");
    let mut watch = FeedWatch::new(client, vec!["w".into()], Duration::from_millis(50));

    let first = watch.next().await.expect("first listing");
    assert_eq!(first.len(), 1);
    servers.lock().expect("lock").push(two);
    // Polling, not a tight loop of blocking queries a seed registry would answer at once.
    let started = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a polled listing within 5 s")
        .expect("listing");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    let ids: Vec<_> = second.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["one", "two"]);
    shutdown.cancel();
}

#[tokio::test]
async fn the_feed_watch_blocks_until_the_matching_servers_change() {
    let registry = TestRegistry::start().await;
    registry
        .register(&registration(
            "a",
            "http://127.0.0.1:9",
            &["w"],
            json!({"type": "none"}),
        ))
        .await;
    let client = RegistryClient::new(&registry.url).expect("client");
    // A fallback far beyond the test's deadline: the feed must do the work.
    let mut watch = FeedWatch::new(client, vec!["w".into()], Duration::from_secs(3600));
    assert_eq!(watch.next().await.expect("now").len(), 1);

    let mut pending = Box::pin(async move {
        let next = watch.next().await;
        (watch, next)
    });
    // An entry with other tags changes the registry, not this listing: the query keeps waiting.
    registry
        .register(&registration(
            "z",
            "http://127.0.0.1:9",
            &["other"],
            json!({"type": "none"}),
        ))
        .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut pending)
            .await
            .is_err(),
        "answered although the matching servers did not change"
    );
    let registered = Instant::now();
    registry
        .register(&registration(
            "b",
            "http://127.0.0.1:9",
            &["w"],
            json!({"type": "none"}),
        ))
        .await;
    let (_watch, next) = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("answered after the change");
    let ids: Vec<_> = next.expect("listing").into_iter().map(|e| e.id).collect();
    assert_eq!(
        ids.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    eprintln!("feed watch: change seen after {:?}", registered.elapsed());
}
