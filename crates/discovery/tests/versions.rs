//! The library at each MCP revision: real rmcp servers limited to `2025-06-18`, `2025-11-25` or
//! `2026-07-28`, listed and called through the library's own paths and through rmcp's client
//! alone; and, on `2026-07-28`, listings reused for their `ttlMs` and changes heard over
//! `subscriptions/listen`; servers written with the Python and TypeScript SDKs (the fixtures of
//! `mcp-fleet announce`'s tests, skipped without the SDKs except under `CI=true`).

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

            // The library says what it speaks, and that rmcp's 2026-07-28 listings are private
            // (rmcp's servers default to it).
            let summary = &fleet.servers()[0];
            assert_eq!(
                summary.protocol_version.as_deref(),
                Some(version.as_str()),
                "{case}"
            );
            assert_eq!(summary.private_listing, !version.has_initialize(), "{case}");
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
    const TTL: Duration = Duration::from_secs(3);
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
    // Before the listing: the time since it is at least the time since this.
    let listed_at = Instant::now();
    let fleet = connect(&registry, "ttl", &server, false).await;
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

/// A server written before 2026-07-28, by hand: `server/discover` is an unknown method answered
/// with a plain-text `400`, as some SDKs do; `initialize` (at 2025-06-18), the listing and calls
/// are JSON. Records the methods it is sent.
async fn predating(stop: &tokio_util::sync::CancellationToken) -> (String, Methods) {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let methods = Methods::default();
    let seen = methods.clone();
    let handler = move |axum::Json(message): axum::Json<serde_json::Value>| {
        let seen = seen.clone();
        async move {
            let method = message["method"].as_str().unwrap_or_default().to_owned();
            seen.lock().expect("methods lock").push(method.clone());
            let id = message["id"].clone();
            let result = match method.as_str() {
                "initialize" => json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "predating", "version": "0.1.0"},
                }),
                "tools/list" => json!({"tools": [{
                    "name": "search",
                    "inputSchema": {"type": "object"},
                }]}),
                "tools/call" => json!({
                    "content": [],
                    "structuredContent": {"server": "predating", "tool": message["params"]["name"]},
                }),
                "ping" => json!({}),
                m if m.starts_with("notifications/") => {
                    return StatusCode::ACCEPTED.into_response();
                }
                _ => {
                    return (
                        StatusCode::BAD_REQUEST,
                        [(header::CONTENT_TYPE, "text/plain")],
                        "unknown method",
                    )
                        .into_response();
                }
            };
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": result});
            // A session id, as a session-based server gives one.
            ([("mcp-session-id", "s1")], axum::Json(answer)).into_response()
        }
    };
    let app = axum::Router::new().route("/mcp", axum::routing::post(handler));
    (
        mcp_fleet_test_support::serve(app, stop.clone()).await,
        methods,
    )
}

/// The methods a hand-written server was sent.
type Methods = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

#[tokio::test]
async fn a_server_that_answers_server_discover_with_a_plain_400_gets_initialize() {
    let registry = TestRegistry::start().await;
    let stop = tokio_util::sync::CancellationToken::new();
    for rmcp_only in [false, true] {
        let id = if rmcp_only {
            "predating-r"
        } else {
            "predating-d"
        };
        let (url, methods) = predating(&stop).await;
        registry
            .register(&registration(id, &url, &[id], json!({"type": "none"})))
            .await;
        let fleet = Discovery::builder(&registry.url)
            .tags([id])
            .rmcp_only(rmcp_only)
            .build()
            .expect("builds");
        let report = fleet.connect().await.expect("connects");
        assert_eq!(
            report.connected.len(),
            1,
            "rmcp_only {rmcp_only}: {report:?}"
        );
        let result = fleet
            .call_tool(&format!("{id}__search"), json!({}))
            .await
            .expect("a call");
        assert_eq!(echoed(&result)["tool"], "search");
        let methods = methods.lock().expect("methods lock").clone();
        assert_eq!(
            methods[..3],
            ["server/discover", "initialize", "notifications/initialized"],
            "rmcp_only {rmcp_only}: {methods:?}"
        );
        fleet.shutdown().await;
    }
    stop.cancel();
}

/// The path in `var`, naming an MCP SDK that `scripts/test` installed; `None` (the test skips)
/// when unset, except under `CI=true`.
fn sdk(var: &str) -> Option<std::ffi::OsString> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("{var} is not set under CI=true: scripts/test installs the SDK and sets it")
        }
        _ => {
            eprintln!("skipped: {var} is not set (scripts/test installs the SDK and sets it)");
            None
        }
    }
}

/// Runs an SDK's echo server (the fixtures of `mcp-fleet announce`'s tests) and checks that the
/// library lists and calls it, both ways, speaking `speaks`.
async fn sdk_server_round_trip(
    id: &str,
    speaks: &str,
    program: std::ffi::OsString,
    script: &str,
    env: &[(&str, std::ffi::OsString)],
) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/tests/fixtures/announce")
        .join(script);
    let mut command = tokio::process::Command::new(program);
    command
        .arg(fixture)
        .arg(port.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let _child = command.spawn().expect("the SDK server starts");
    eventually("the SDK server to listen", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let registry = TestRegistry::start().await;
    let url = format!("http://127.0.0.1:{port}");
    registry
        .register(&registration(id, &url, &[id], json!({"type": "none"})))
        .await;
    for rmcp_only in [false, true] {
        let fleet = Discovery::builder(&registry.url)
            .tags([id])
            .rmcp_only(rmcp_only)
            .build()
            .expect("builds");
        let report = fleet.connect().await.expect("connects");
        assert_eq!(
            report.connected.len(),
            1,
            "{id}, rmcp_only {rmcp_only}: {report:?}"
        );
        let names: Vec<String> = fleet.tools().into_iter().map(|t| t.service_name).collect();
        assert_eq!(names, [format!("{id}__echo")], "{id}");
        let spoken = fleet.servers()[0].protocol_version.clone();
        assert_eq!(
            spoken.as_deref(),
            Some(speaks),
            "{id}, rmcp_only {rmcp_only}"
        );
        let result = fleet
            .call_tool(&format!("{id}__echo"), json!({"text": "hi"}))
            .await
            .unwrap_or_else(|e| panic!("{id}, rmcp_only {rmcp_only}: {e}"));
        let text = result
            .content
            .first()
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone());
        assert_eq!(text.as_deref(), Some("hi"), "{id}: {result:?}");
        fleet.shutdown().await;
    }
}

#[tokio::test]
async fn a_typescript_sdk_server_is_listed_and_called_through_the_fallback() {
    let Some(node_path) = sdk("MCP_FLEET_TEST_NODE_PATH") else {
        return;
    };
    sdk_server_round_trip(
        "node-echo",
        "2025-11-25",
        "node".into(),
        "server.cjs",
        &[("NODE_PATH", node_path)],
    )
    .await;
}

#[tokio::test]
async fn a_python_sdk_server_is_listed_and_called_on_2026_07_28() {
    let Some(python) = sdk("MCP_FLEET_TEST_PYTHON") else {
        return;
    };
    sdk_server_round_trip("py-echo", "2026-07-28", python, "server.py", &[]).await;
}
