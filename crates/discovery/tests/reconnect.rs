//! Acceptance 4: killing a server makes its tools fail fast with a clear error; restarting it
//! restores them, without touching the other servers.

use std::time::{Duration, Instant};

use mcp_fleet_discovery::{Backoff, Discovery, DiscoveryError, ServerState};
use serde_json::json;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, eventually, registration};

#[tokio::test]
async fn a_killed_server_fails_fast_and_comes_back() {
    let registry = TestRegistry::start().await;
    let mut alpha = TestServer::start("alpha", &["search"]).await;
    let beta = TestServer::start("beta", &["lookup"]).await;
    for (id, server) in [("alpha", &alpha), ("beta", &beta)] {
        registry
            .register(&registration(
                id,
                &server.base_url,
                &["r"],
                json!({"type": "none"}),
            ))
            .await;
    }
    let fleet = Discovery::builder(&registry.url)
        .tags(["r"])
        .backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
        })
        .build()
        .expect("builds");
    fleet.connect().await.expect("connects");
    fleet
        .call_tool("search", json!({}))
        .await
        .expect("alpha works");
    eventually("alpha's event stream to open", || async {
        (alpha.event_streams() > 0 || alpha.subscriptions() > 0).then_some(())
    })
    .await;

    alpha.stop().await;
    // Noticed without any call: the session's event stream (or subscription) broke.
    eventually("alpha's tools to be marked unavailable", || async {
        fleet
            .tools()
            .iter()
            .any(|t| t.server_id == "alpha" && !t.available)
            .then_some(())
    })
    .await;
    let started = Instant::now();
    let e = fleet
        .call_tool("alpha__search", json!({}))
        .await
        .expect_err("alpha is down");
    let took = started.elapsed();
    match &e {
        DiscoveryError::Unavailable { what, server, .. } => {
            assert_eq!(what, "tool alpha__search");
            assert_eq!(server, "alpha");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let text = e.to_string();
    assert!(text.contains("reconnected in the background"), "{text}");
    assert!(
        took < Duration::from_millis(100),
        "failing took {took:?}: not fast"
    );
    let alpha_state = fleet
        .servers()
        .into_iter()
        .find(|s| s.id == "alpha")
        .expect("still followed")
        .state;
    assert!(
        matches!(alpha_state, ServerState::Unavailable { .. }),
        "{alpha_state:?}"
    );
    // The tool stays listed, marked unavailable, and the other server is untouched.
    assert_eq!(fleet.tools().len(), 2);
    fleet
        .call_tool("lookup", json!({}))
        .await
        .expect("beta still works");

    alpha.restart().await;
    let result = eventually("alpha__search to work again", || async {
        fleet
            .call_tool("alpha__search", json!({"query": "q"}))
            .await
            .ok()
    })
    .await;
    assert_eq!(echoed(&result)["server"], "alpha");
    assert!(fleet.tools().iter().all(|t| t.available));
    fleet.shutdown().await;
}
