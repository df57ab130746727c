//! How calls travel: on an open session the library posts `tools/call` itself, and still does
//! what rmcp's client would with what the server sends back on the call's stream; with
//! `rmcp_only` (or `MCP_FLEET_RMCP_ONLY=1`) everything goes through rmcp's client. The tests of
//! one path name it, so that they test it whatever the environment says.

use std::time::{Duration, Instant};

use mcp_fleet_discovery::Discovery;
use serde_json::json;

use crate::common::server::{CHATTY, CHATTY_ADDS, Speaks, TestServer};
use crate::common::{TestRegistry, echoed, eventually, registration, request_id};

#[tokio::test]
async fn calls_skip_the_rmcp_service_and_answer_the_server_on_the_way() {
    let registry = TestRegistry::start().await;
    // Pinging the client mid-call takes a session: before 2026-07-28.
    let server = TestServer::start_speaking("talker", &["search", CHATTY], Speaks::session()).await;
    registry
        .register(&registration(
            "talker",
            &server.base_url,
            &["calls"],
            json!({"type": "none"}),
        ))
        .await;
    let fleet = Discovery::builder(&registry.url)
        .tags(["calls"])
        .call_timeout(Duration::from_secs(5))
        .rmcp_only(false)
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert_eq!(report.connected.len(), 1, "{report:?}");

    // The request ids are the library's own strings, not rmcp's numbers.
    let plain = fleet
        .call_tool("talker__search", json!({"query": "q"}))
        .await
        .expect("a plain call");
    let id = request_id(&plain);
    assert!(
        id.as_str().is_some_and(|s| s.starts_with("fleet-")),
        "request id {id}"
    );
    // Borrowed arguments (for a caller that may send the call again) travel the same.
    let arguments = json!({"query": "q"});
    let borrowed = fleet
        .call_tool_ref("talker__search", &arguments)
        .await
        .expect("a call with borrowed arguments");
    assert_eq!(echoed(&borrowed), echoed(&plain));
    let e = fleet
        .call_tool_ref("talker__search", &json!([1]))
        .await
        .expect_err("arguments must be an object");
    assert!(
        matches!(
            e,
            mcp_fleet_discovery::DiscoveryError::InvalidArguments {
                found: "an array",
                ..
            }
        ),
        "{e:?}"
    );

    // A server that pings back mid-call is answered (unanswered, this call would time out),
    // and the tool it announces on the call's stream is indexed.
    let chatty = fleet
        .call_tool(&format!("talker__{CHATTY}"), json!({}))
        .await
        .expect("the chatty call completes");
    assert_eq!(echoed(&chatty)["tool"], CHATTY);
    let added = format!("talker__{CHATTY_ADDS}");
    eventually("the announced tool in tools()", || async {
        fleet
            .tools()
            .iter()
            .any(|t| t.qualified_name == added)
            .then_some(())
    })
    .await;
    let result = fleet
        .call_tool(&added, json!({}))
        .await
        .expect("the announced tool is callable");
    assert_eq!(echoed(&result)["tool"], CHATTY_ADDS);
    fleet.shutdown().await;
}

#[tokio::test]
async fn calls_keep_their_connection_and_do_not_wait_for_delayed_acks() {
    let registry = TestRegistry::start().await;
    // The test server leaves Nagle's algorithm on: every piece of an answer after the first
    // waits for our acknowledgement of the one before.
    let server = TestServer::start("kept", &["search"]).await;
    registry
        .register(&registration(
            "kept",
            &server.base_url,
            &["kept"],
            json!({"type": "none"}),
        ))
        .await;
    let fleet = Discovery::builder(&registry.url)
        .tags(["kept"])
        .rmcp_only(false)
        .build()
        .expect("builds");
    fleet.connect().await.expect("connects");
    fleet
        .call_tool("kept__search", json!({}))
        .await
        .expect("a first call");

    let before = server.connections();
    let mut took = Vec::new();
    for _ in 0..CALLS {
        let started = Instant::now();
        fleet
            .call_tool("kept__search", json!({}))
            .await
            .expect("a call");
        took.push(started.elapsed());
    }
    let opened = server.connections() - before;
    assert!(
        opened <= CALLS / 4,
        "{CALLS} calls in a row opened {opened} connections"
    );
    took.sort();
    let median = took[took.len() / 2];
    // A delayed acknowledgement holds an answer back 40 ms or more.
    assert!(
        median < Duration::from_millis(25),
        "median call {median:?}: answers waited for delayed ACKs"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn the_sessions_own_requests_keep_their_connection_too() {
    let registry = TestRegistry::start().await;
    // Nagle's algorithm on, as above: a reused connection would stall without quick ACKs.
    let server = TestServer::start("relist", &["search"]).await;
    registry
        .register(&registration(
            "relist",
            &server.base_url,
            &["relist"],
            json!({"type": "none"}),
        ))
        .await;
    let fleet = Discovery::builder(&registry.url)
        .tags(["relist"])
        .rmcp_only(false)
        .build()
        .expect("builds");
    fleet.connect().await.expect("connects");
    let (connections, lists) = (server.connections(), server.list_requests());

    // Each announced tool makes rmcp's client post a `tools/list` of its own.
    for i in 0..RELISTS {
        let name = format!("added_{i}");
        server.add_tool(&name).await;
        let qualified = format!("relist__{name}");
        eventually("the announced tool in tools()", || async {
            fleet
                .tools()
                .iter()
                .any(|t| t.qualified_name == qualified)
                .then_some(())
        })
        .await;
    }
    let listed = server.list_requests() - lists;
    let opened = server.connections() - connections;
    assert!(listed >= RELISTS, "{listed} tools/list requests");
    // One connection per request would be at least one per listing.
    assert!(
        opened <= RELISTS / 4,
        "{RELISTS} listings in a row opened {opened} connections"
    );
    let result = fleet
        .call_tool("relist__added_0", json!({}))
        .await
        .expect("an announced tool is callable");
    assert_eq!(echoed(&result)["tool"], "added_0");
    fleet.shutdown().await;
}

#[tokio::test]
async fn with_rmcp_only_every_request_goes_through_rmcps_client() {
    let registry = TestRegistry::start().await;
    // Pinging the client mid-call takes a session: before 2026-07-28.
    let server = TestServer::start_speaking("plain", &["search", CHATTY], Speaks::session()).await;
    registry
        .register(&registration(
            "plain",
            &server.base_url,
            &["plain"],
            json!({"type": "none"}),
        ))
        .await;
    let fleet = Discovery::builder(&registry.url)
        .tags(["plain"])
        .call_timeout(Duration::from_secs(5))
        .rmcp_only(true)
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert_eq!(report.connected.len(), 1, "{report:?}");

    // rmcp's client numbers its requests; the library's own path sends strings.
    let before = server.connections();
    for _ in 0..CALLS {
        let result = fleet
            .call_tool("plain__search", json!({"query": "q"}))
            .await
            .expect("a call");
        let id = request_id(&result);
        assert!(id.is_u64(), "request id {id}: not rmcp's");
    }
    // rmcp's client keeps no connection between requests: one (at least) per call.
    let opened = server.connections() - before;
    assert!(
        opened >= CALLS,
        "{CALLS} calls opened {opened} connections: kept connections are in use"
    );
    // rmcp's client answers the server's ping mid-call and hears the new tool.
    let chatty = fleet
        .call_tool(&format!("plain__{CHATTY}"), json!({}))
        .await
        .expect("the chatty call completes");
    assert_eq!(echoed(&chatty)["tool"], CHATTY);
    let added = format!("plain__{CHATTY_ADDS}");
    eventually("the announced tool in tools()", || async {
        fleet
            .tools()
            .iter()
            .any(|t| t.qualified_name == added)
            .then_some(())
    })
    .await;
    fleet.shutdown().await;
}

/// Listings the connection test waits for, one after another.
const RELISTS: usize = 12;

/// Calls made one after another in the connection test.
const CALLS: usize = 20;
