//! Acceptance 3: with `watch(true)`, a newly registered server's tools become callable and a
//! deregistered one's disappear, each within a bounded time.

use std::time::{Duration, Instant};

use mcp_fleet_discovery::{Discovery, DiscoveryError, IndexEvent};
use serde_json::json;

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
        .poll_interval(Duration::from_millis(100))
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
