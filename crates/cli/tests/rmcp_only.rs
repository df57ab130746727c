//! `gateway --rmcp-only` and `MCP_FLEET_RMCP_ONLY`: the gateway answers every call through
//! rmcp's server (an event stream) instead of its fast path (one JSON message); a value that is
//! neither a yes nor a no stops it with a usage error.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{PROCESS_DEADLINE, binary, run_command, serve};

/// The content type of the gateway's answer to a `tools/call` in a fresh 2025-11-25 session.
async fn call_answer_type(gateway_url: &str) -> String {
    let http = reqwest::Client::new();
    let post = |session: Option<&str>, body: Value| {
        let mut request = http
            .post(format!("{gateway_url}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(id) = session {
            request = request.header("mcp-session-id", id);
        }
        request.send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "cli-test", "version": "1.0.0"}}});
    let opened = post(None, init).await.expect("initialize");
    let session = opened
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    drop(opened);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let noted = post(Some(&session), initialized)
        .await
        .expect("initialized");
    assert_eq!(noted.status().as_u16(), 202);
    // rmcp hands `initialized` to the session in a task of its own, after the 202; the fast
    // path knows the session once the gateway counts it.
    mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "the gateway to count the session",
        || {
            let http = http.clone();
            async move {
                let metrics = http
                    .get(format!("{gateway_url}/metrics"))
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                metrics
                    .lines()
                    .any(|l| l == "mcp_fleet_gateway_sessions 1")
                    .then_some(())
            }
        },
    )
    .await;
    // No upstream offers it: an error either way, from whichever path answers.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "none__such", "arguments": {}}});
    let answer = post(Some(&session), call).await.expect("tools/call");
    assert_eq!(answer.status().as_u16(), 200);
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = answer.text().await.expect("the answer");
    assert!(body.contains("unknown tool"), "{body}");
    content_type
}

#[tokio::test]
async fn the_switch_sends_calls_through_rmcp() {
    let db = mcp_fleet_test_support::sqlite();
    let registry = serve(&db.url).await;
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (&[], None, "application/json"),
        (&["--rmcp-only"], None, "text/event-stream"),
        (&[], Some("1"), "text/event-stream"),
        (&[], Some("off"), "application/json"),
    ];
    for (flags, env, expected) in cases {
        let mut cmd = binary();
        cmd.args([
            "gateway",
            "--registry",
            &registry.url,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(flags)
        .env_remove("MCP_FLEET_RMCP_ONLY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if let Some(value) = env {
            cmd.env("MCP_FLEET_RMCP_ONLY", value);
        }
        let mut gateway = cmd.spawn().expect("spawn gateway");
        let mut lines = BufReader::new(gateway.stdout.take().expect("stdout")).lines();
        let url = tokio::time::timeout(PROCESS_DEADLINE, async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(rest) = line.strip_prefix("gateway listening on ") {
                    let mcp = rest.split_whitespace().next().unwrap_or_default();
                    return mcp.trim_end_matches("/mcp").to_owned();
                }
            }
            panic!("the gateway exited before listening");
        })
        .await
        .expect("the gateway did not start in time");
        let content_type = call_answer_type(&url).await;
        assert!(
            content_type.starts_with(expected),
            "{flags:?}, MCP_FLEET_RMCP_ONLY={env:?}: {content_type}"
        );
        gateway.start_kill().expect("stop the gateway");
        let _ = gateway.wait().await;
    }

    let mut cmd = binary();
    cmd.args([
        "gateway",
        "--registry",
        &registry.url,
        "--listen",
        "127.0.0.1:0",
    ])
    .env("MCP_FLEET_RMCP_ONLY", "banana");
    let (code, _, err) = run_command(cmd).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("banana") && err.contains("--rmcp-only"),
        "{err}"
    );
    registry.terminate().await;
}
