//! Acceptance 2: a server that adds a tool and sends `tools/list_changed` is re-listed alone;
//! the others get no extra `tools/list`.

use mcp_fleet_discovery::{Discovery, IndexEvent};
use serde_json::json;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, eventually, registration};

#[tokio::test]
async fn list_changed_relists_only_that_server() {
    let registry = TestRegistry::start().await;
    let alpha = TestServer::start("alpha", &["search"]).await;
    let beta = TestServer::start("beta", &["lookup"]).await;
    let gamma = TestServer::start("gamma", &["count"]).await;
    for (id, server) in [("alpha", &alpha), ("beta", &beta), ("gamma", &gamma)] {
        registry
            .register(&registration(
                id,
                &server.base_url,
                &["live"],
                json!({"type": "none"}),
            ))
            .await;
    }
    let fleet = Discovery::builder(&registry.url)
        .tags(["live"])
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert_eq!(report.connected.len(), 3, "{report:?}");
    let mut updates = fleet.subscribe();
    match updates.next().await {
        Some(IndexEvent::Reset(tools)) => assert_eq!(tools.len(), 3),
        other => panic!("expected a reset first, got {other:?}"),
    }

    // Notifications travel on the session's event stream (on 2026-07-28, a
    // `subscriptions/listen` stream): wait until it is open.
    eventually("alpha's event stream to open", || async {
        (alpha.event_streams() > 0 || alpha.subscriptions() > 0).then_some(())
    })
    .await;
    let before = [
        alpha.list_requests(),
        beta.list_requests(),
        gamma.list_requests(),
    ];
    assert_eq!(before, [1, 1, 1], "one listing each at connect");

    alpha.add_tool("fresh").await;
    eventually("alpha__fresh in tools()", || async {
        fleet
            .tools()
            .iter()
            .any(|t| t.qualified_name == "alpha__fresh")
            .then_some(())
    })
    .await;
    let result = fleet
        .call_tool("alpha__fresh", json!({"query": "x"}))
        .await
        .expect("the new tool is callable");
    assert_eq!(echoed(&result)["tool"], "fresh");

    assert!(alpha.list_requests() > before[0], "alpha was re-listed");
    assert_eq!(
        beta.list_requests(),
        before[1],
        "beta got no extra tools/list"
    );
    assert_eq!(
        gamma.list_requests(),
        before[2],
        "gamma got no extra tools/list"
    );
    assert_eq!(fleet.tools().len(), 4);

    // Subscribers see the addition as a delta.
    let deadline = tokio::time::Instant::now() + crate::common::DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, updates.next()).await {
            Ok(Some(IndexEvent::Add(tools)))
                if tools.iter().any(|t| t.qualified_name == "alpha__fresh") =>
            {
                break;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the update stream ended"),
            Err(_) => panic!("no Add event for alpha__fresh"),
        }
    }
    fleet.shutdown().await;
}
