//! The gateway at each MCP revision: clients on `2025-06-18`, `2025-11-25` and `2026-07-28`
//! (stateless) × real rmcp upstreams limited to each of those revisions, listing and calling
//! every upstream's tool, with the gateway's fast paths (which answer a 2026-07-28 client's
//! calls) and with rmcp alone.

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};

use crate::common::{Speaks, TestGateway, TestRegistry, Upstream, eventually, server_of};

/// The revisions of the matrix, oldest first.
const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

/// An upstream's id for `version`: `v20250618`.
fn upstream_id(version: &ProtocolVersion) -> String {
    format!("v{}", version.as_str().replace('-', ""))
}

/// Only `version`, as an rmcp server's list of supported revisions.
fn only(version: &ProtocolVersion) -> &'static [ProtocolVersion] {
    match version.as_str() {
        "2025-06-18" => &[ProtocolVersion::V_2025_06_18],
        "2025-11-25" => &[ProtocolVersion::V_2025_11_25],
        _ => &[ProtocolVersion::V_2026_07_28],
    }
}

/// A client of the gateway at `url` on `version`: a session opened with `initialize` before
/// 2026-07-28, `server/discover` and no session from it.
async fn client(url: &str, version: &ProtocolVersion) -> RunningService<RoleClient, ClientConfig> {
    let transport = StreamableHttpClientTransport::from_uri(format!("{url}/mcp"));
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("versions-test", "1.0.0"),
    )
    .with_protocol_version(version.clone());
    let opened = if version.has_initialize() {
        info.serve(transport).await
    } else {
        info.serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![version.clone()],
            },
        )
        .await
    };
    let running = opened.unwrap_or_else(|e| panic!("a {version} client connects: {e}"));
    let agreed = running
        .peer_info()
        .map(|info| info.protocol_version.clone());
    assert_eq!(
        agreed.as_ref(),
        Some(version),
        "the client speaks {version}"
    );
    running
}

/// Calls the gateway answered on its fast path so far.
async fn fast_calls(gateway: &TestGateway) -> usize {
    gateway
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("mcp_fleet_gateway_fast_calls_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn every_client_revision_lists_and_calls_every_upstream_revision() {
    let registry = TestRegistry::start().await;
    let mut upstreams = Vec::new();
    for version in &VERSIONS {
        let id = upstream_id(version);
        let upstream =
            Upstream::start_speaking(&id, &["search"], Speaks::only(only(version))).await;
        registry
            .register(&id, &id, "1.0.0", &upstream.base_url)
            .await;
        upstreams.push((version, id, upstream));
    }
    let mut wanted: Vec<String> = upstreams
        .iter()
        .map(|(_, id, _)| format!("{id}__search"))
        .collect();
    wanted.sort();

    for rmcp_only in [false, true] {
        let mut config = TestGateway::config(&registry);
        config.rmcp_only = Some(rmcp_only);
        let gateway = TestGateway::start(config).await;
        for client_version in &VERSIONS {
            let case = format!("client {client_version}, rmcp_only {rmcp_only}");
            let session = client(&gateway.url, client_version).await;
            // The gateway connects to its upstreams in the background: wait for all three.
            let names = eventually("every upstream's tool", || async {
                let mut names: Vec<String> = session
                    .list_all_tools()
                    .await
                    .ok()?
                    .into_iter()
                    .map(|t| t.name.to_string())
                    .collect();
                names.sort();
                (names == wanted).then_some(names)
            })
            .await;
            assert_eq!(names, wanted, "{case}");
            let fast_before = fast_calls(&gateway).await;
            for (upstream_version, id, upstream) in &upstreams {
                let result = session
                    .call_tool(CallToolRequestParams::new(format!("{id}__search")))
                    .await
                    .unwrap_or_else(|e| panic!("{case}, upstream {upstream_version}: {e}"));
                assert_eq!(server_of(&result), *id, "{case}");
                let seen = upstream.call_versions();
                assert_eq!(
                    seen.last().map(String::as_str),
                    Some(upstream_version.as_str()),
                    "{case}: the gateway speaks the upstream's revision"
                );
            }
            // A 2026-07-28 client's calls are answered on the gateway's fast path, statelessly
            // (a session's first calls may reach rmcp before the fast path knows the session).
            if !client_version.has_initialize() {
                let fast = fast_calls(&gateway).await - fast_before;
                let expected = if rmcp_only { 0 } else { upstreams.len() };
                assert_eq!(fast, expected, "{case}: calls on the fast path");
            }
            session.cancel().await.expect("the client closes");
        }
    }
}
