//! Errors echo at most a short part of what the client sent: a 1,000,000-character tool name
//! gets an answer of a few hundred bytes, over both of the gateway's paths.

use serde_json::json;

use crate::common::{JsonSession, TestGateway, TestRegistry, Upstream, call, connect};

#[tokio::test]
async fn an_unknown_tools_name_is_cut_in_the_error() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    let gw = TestGateway::start(TestGateway::config(&registry)).await;
    let name = "é".repeat(1_000_000);

    let fast = JsonSession::open(&gw.url).await;
    let answer = fast.call_raw(&name).await;
    assert!(answer.len() < 1024, "{} bytes", answer.len());
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unknown tool") && message.contains(&format!("{}…", "é".repeat(128))),
        "{message}"
    );

    let (rmcp, _client) = connect(&gw.url).await;
    let e = call(&rmcp, &name).await.expect_err("an unknown tool");
    let rmcp::ServiceError::McpError(e) = e else {
        panic!("a JSON-RPC error: {e}");
    };
    assert!(e.message.len() < 1024, "{} bytes", e.message.len());
    assert!(e.message.contains("unknown tool"), "{}", e.message);
}

#[tokio::test]
async fn resource_uris_prompt_names_and_methods_are_cut_in_errors() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    let gw = TestGateway::start(TestGateway::config(&registry)).await;
    let session = JsonSession::open(&gw.url).await;
    let long = "x".repeat(1_000_000);
    for (method, params) in [
        ("resources/read", json!({"uri": long})),
        ("prompts/get", json!({"name": long})),
        (long.as_str(), json!({})),
    ] {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let method = &method[..method.len().min(40)];
        let (status, answer) = session.post_raw(&request).await;
        assert_eq!(status, 200, "{method}");
        assert!(answer.len() < 1024, "{method}: {} bytes", answer.len());
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.contains(r#""error""#) && text.contains(&format!("{}…", "x".repeat(128))),
            "{method}: {text}"
        );
    }
}

#[tokio::test]
async fn long_ids_and_protocol_versions_are_refused_not_echoed() {
    let registry = TestRegistry::start().await;
    let gw = TestGateway::start(TestGateway::config(&registry)).await;
    let http = reqwest::Client::new();
    let long = "9".repeat(1_000_000);
    for (what, body) in [
        (
            "initialize with a long protocolVersion",
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": long, "capabilities": {},
                "clientInfo": {"name": "echo", "version": "1.0.0"}}}),
        ),
        (
            "a long string id",
            json!({"jsonrpc": "2.0", "id": long, "method": "ping"}),
        ),
    ] {
        let answer = http
            .post(format!("{}/mcp", gw.url))
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(answer.status().as_u16(), 400, "{what}");
        let answer = answer.bytes().await.expect("the answer");
        assert!(answer.len() < 1024, "{what}: {} bytes", answer.len());
        let answer: serde_json::Value = serde_json::from_slice(&answer).expect("JSON-RPC");
        assert!(answer["error"]["code"].is_i64(), "{what}: {answer}");
    }
}
