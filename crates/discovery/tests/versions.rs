//! The library at each MCP revision: real rmcp servers limited to `2025-06-18`, `2025-11-25` or
//! `2026-07-28`, listed and called through the library's own paths and through rmcp's client
//! alone; and, on `2026-07-28`, listings reused for their `ttlMs` and changes heard over
//! `subscriptions/listen`.

use std::time::{Duration, Instant};

use mcp_fleet_discovery::Discovery;
use rmcp::model::ProtocolVersion;
use serde_json::json;

use crate::common::server::{Speaks, TestServer};
use crate::common::{TestRegistry, echoed, eventually, registration, request_id};

/// The revisions of the matrix, oldest first.
const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

/// A fleet of one server, `id`, connected through the library's own paths or rmcp's alone.
async fn connect(
    registry: &TestRegistry,
    id: &str,
    server: &TestServer,
    rmcp_only: bool,
) -> Discovery {
    registry
        .register(&registration(
            id,
            &server.base_url,
            &[id],
            json!({"type": "none"}),
        ))
        .await;
    let fleet = Discovery::builder(&registry.url)
        .tags([id])
        .call_timeout(Duration::from_secs(5))
        .rmcp_only(rmcp_only)
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert_eq!(report.connected.len(), 1, "{id}: {report:?}");
    fleet
}

#[tokio::test]
async fn every_revision_is_listed_and_called_both_ways() {
    let registry = TestRegistry::start().await;
    for version in VERSIONS {
        for rmcp_only in [false, true] {
            let versions: &'static [ProtocolVersion] = match version.as_str() {
                "2025-06-18" => &[ProtocolVersion::V_2025_06_18],
                "2025-11-25" => &[ProtocolVersion::V_2025_11_25],
                _ => &[ProtocolVersion::V_2026_07_28],
            };
            let case = format!("{version}, rmcp_only {rmcp_only}");
            let id = format!(
                "v{}{}",
                version.as_str().replace('-', ""),
                if rmcp_only { "r" } else { "d" }
            );
            let server = TestServer::start_speaking(
                &id,
                &["search"],
                Speaks {
                    versions,
                    ..Speaks::default()
                },
            )
            .await;
            let fleet = connect(&registry, &id, &server, rmcp_only).await;

            let names: Vec<String> = fleet.tools().into_iter().map(|t| t.service_name).collect();
            assert_eq!(names, [format!("{id}__search")], "{case}");
            let result = fleet
                .call_tool(&format!("{id}__search"), json!({"query": "q"}))
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(
                echoed(&result),
                json!({"server": id, "tool": "search", "arguments": {"query": "q"}}),
                "{case}"
            );

            // The server saw the revision it speaks, in a session before 2026-07-28 only.
            assert_eq!(server.call_versions(), [version.as_str()], "{case}");
            let sessions = usize::from(version.has_initialize());
            assert_eq!(server.sessions(), sessions, "{case}: sessions");
            // The library's own path names its requests `fleet-N`; rmcp numbers them.
            let direct = request_id(&result)
                .as_str()
                .is_some_and(|s| s.starts_with("fleet-"));
            assert_eq!(
                direct,
                !rmcp_only,
                "{case}: request id {}",
                request_id(&result)
            );
            fleet.shutdown().await;
        }
    }
}

#[tokio::test]
async fn a_listing_is_reused_for_its_ttl_and_read_again_after() {
    const TTL: Duration = Duration::from_secs(2);
    let registry = TestRegistry::start().await;
    // No subscriptions: the listing's freshness is all the library has to go by.
    let server = TestServer::start_speaking(
        "ttl",
        &["first"],
        Speaks {
            versions: &[ProtocolVersion::V_2026_07_28],
            ttl_ms: Some(u64::try_from(TTL.as_millis()).expect("small")),
            listen: false,
        },
    )
    .await;
    let fleet = connect(&registry, "ttl", &server, false).await;
    let listed_at = Instant::now();
    assert_eq!(server.list_requests(), 1);
    server.add_tool("second").await;

    // Used within its ttlMs, the listing is not read again.
    for _ in 0..3 {
        assert_eq!(fleet.tools().len(), 1);
        fleet
            .call_tool("ttl__first", json!({}))
            .await
            .expect("a call");
    }
    assert!(listed_at.elapsed() < TTL, "the test ran too slowly to tell");
    assert_eq!(server.list_requests(), 1, "re-listed within the ttl");

    // Used after it, the listing is read again (and the new tool shows).
    eventually("the second tool, after the ttl", || async {
        fleet
            .tools()
            .iter()
            .any(|t| t.service_name == "ttl__second")
            .then_some(())
    })
    .await;
    assert!(listed_at.elapsed() >= TTL, "re-listed before the ttl");
    fleet.shutdown().await;
}

#[tokio::test]
async fn changes_are_heard_over_subscriptions_listen() {
    let registry = TestRegistry::start().await;
    let server = TestServer::start_speaking(
        "listener",
        &["first"],
        Speaks {
            versions: &[ProtocolVersion::V_2026_07_28],
            // Fresh for longer than the test: only the notification can bring the change.
            ttl_ms: Some(600_000),
            listen: true,
        },
    )
    .await;
    let fleet = connect(&registry, "listener", &server, false).await;
    eventually("the subscription", || async {
        (server.subscriptions() == 1).then_some(())
    })
    .await;
    assert_eq!(server.sessions(), 0, "no initialize on 2026-07-28");

    server.add_tool("second").await;
    eventually("the announced tool", || async {
        fleet
            .tools()
            .iter()
            .any(|t| t.service_name == "listener__second")
            .then_some(())
    })
    .await;
    assert_eq!(server.list_requests(), 2);
    fleet.shutdown().await;
}
