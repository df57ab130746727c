//! `tools/call` of a known session is answered in front of rmcp, as one JSON message; what is
//! not such a call, or names no session the gateway opened, is rmcp's to answer; with
//! `rmcp_only` every call is. Spoken over plain HTTP, as any MCP client would. Each test names
//! the path it tests, whatever `MCP_FLEET_RMCP_ONLY` says.

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use crate::common::{
    JsonSession, TestGateway, TestRegistry, Upstream, eventually, sse_message, upstream_request_id,
};
use crate::front::open_session;

const BOTH: &str = "application/json, text/event-stream";

/// POSTs `body` to `/mcp`, in `session` when given.
async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    accept: &str,
    body: &Value,
) -> reqwest::Response {
    let mut request = http
        .post(format!("{url}/mcp"))
        .header("accept", accept)
        .header("mcp-protocol-version", "2025-11-25")
        .json(body);
    if let Some(id) = session {
        request = request.header("mcp-session-id", id);
    }
    request.send().await.expect("the gateway answers")
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn tool_calls_of_known_sessions_are_answered_as_json() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    let config = TestGateway::config(&registry);
    let gw = TestGateway::start(mcp_fleet_gateway::GatewayConfig {
        rmcp_only: Some(false),
        ..config
    })
    .await;
    let http = reqwest::Client::new();

    let session = open_session(&http, &gw.url).await;
    gw.wait_for_sessions(1).await;

    let call = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "alpha__search", "arguments": {"query": "q"}}});
    let answered = post(&http, &gw.url, Some(&session), BOTH, &call).await;
    assert_eq!(answered.status().as_u16(), 200);
    assert_eq!(content_type(&answered), "application/json");
    let answer: Value = answered.json().await.expect("a JSON-RPC message");
    assert_eq!(answer["jsonrpc"], "2.0");
    assert_eq!(answer["id"], "call-1");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert!(answer["result"]["content"].is_array(), "{answer}");
    // Upstream, the discovery library posted the call itself (its ids are strings).
    let upstream_id = upstream_request_id(&answer["result"]);
    assert!(
        upstream_id
            .as_str()
            .is_some_and(|s| s.starts_with("fleet-")),
        "upstream request id {upstream_id}"
    );
    assert_eq!(
        alpha.state.calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // An unknown tool is the caller's mistake, answered as a JSON-RPC error with its id.
    let unknown = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "nope__search"}});
    let refused: Value = post(&http, &gw.url, Some(&session), BOTH, &unknown)
        .await
        .json()
        .await
        .expect("a JSON-RPC message");
    assert_eq!(refused["id"], 7);
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown tool")),
        "{refused}"
    );

    // A session id the gateway never gave out reaches rmcp, which does not know it either.
    let stranger = post(&http, &gw.url, Some("not-a-session"), BOTH, &call).await;
    assert!(stranger.status().is_client_error(), "{}", stranger.status());
    // A client that takes only event streams is answered by rmcp, as before.
    let streams_only = post(&http, &gw.url, Some(&session), "text/event-stream", &call).await;
    assert_ne!(content_type(&streams_only), "application/json");
    assert_eq!(
        alpha.state.calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    // A closed session is forgotten: its id no longer gets a call through.
    let closed = http
        .delete(format!("{}/mcp", gw.url))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("the gateway answers");
    assert!(closed.status().is_success(), "{}", closed.status());
    eventually("the closed session to be refused", || async {
        let after = post(&http, &gw.url, Some(&session), BOTH, &call).await;
        after.status().is_client_error().then_some(())
    })
    .await;
}

#[tokio::test]
async fn with_rmcp_only_rmcp_answers_every_call() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    let config = TestGateway::config(&registry);
    let gw = TestGateway::start(mcp_fleet_gateway::GatewayConfig {
        rmcp_only: Some(true),
        ..config
    })
    .await;
    eventually("the gateway to offer alpha__search", || async {
        gw.gateway
            .tools()
            .iter()
            .any(|t| t.name == "alpha__search")
            .then_some(())
    })
    .await;
    let session = JsonSession::open(&gw.url).await;
    gw.wait_for_sessions(1).await;
    for _ in 0..3 {
        // rmcp's server answers with an event stream, where the fast path sends JSON.
        let (content_type, body) = session.call_answer("alpha__search").await;
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}: not rmcp's answer"
        );
        let answer: Value = serde_json::from_slice(&sse_message(&body)).expect("JSON-RPC");
        assert_eq!(answer["result"]["isError"], false, "{answer}");
        // Upstream, rmcp's client sent the call (its ids are numbers).
        let upstream_id = upstream_request_id(&answer["result"]);
        assert!(upstream_id.is_u64(), "upstream request id {upstream_id}");
    }
    assert_eq!(alpha.calls(), 3);
}
