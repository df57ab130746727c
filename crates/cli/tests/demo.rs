//! `mcp-fleet demo`: a registry, sample servers that register themselves, and the gateway.

use mcp_fleet_discovery::{ListOptions, RegistryClient};

use crate::common::spawn_listening;

#[tokio::test]
async fn demo_servers_register_themselves_and_serve_mcp() {
    let demo = spawn_listening(&["demo", "--listen", "127.0.0.1:0"]).await;
    let client = RegistryClient::new(&demo.url).expect("client");
    // The default listing shows healthy servers: the demo's worker probes them within moments.
    let products = mcp_fleet_test_support::eventually(
        std::time::Duration::from_secs(15),
        "both product servers to be healthy",
        || async {
            let page = client
                .list(&ListOptions {
                    tags: vec!["products".into()],
                    ..ListOptions::default()
                })
                .await
                .expect("list");
            (page.servers.len() == 2).then_some(page)
        },
    )
    .await;
    let ids: Vec<String> = products.servers.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["catalog", "inventory"]);
    let all = client.status().await.expect("status");
    assert_eq!(all.summary.total, 3);

    // Each registered URL really serves MCP: an initialize request gets a JSON-RPC answer.
    let http = reqwest::Client::new();
    for entry in &products.servers {
        let res = http
            .post(format!("{}/mcp", entry.url.as_str().trim_end_matches('/')))
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "demo-test", "version": "0"}}
            }))
            .send()
            .await
            .expect("POST /mcp");
        assert!(res.status().is_success(), "{}: {}", entry.id, res.status());
        let text = res.text().await.expect("body");
        assert!(text.contains("\"serverInfo\""), "{}: {text}", entry.id);
    }
    assert!(
        demo.banner.iter().any(|l| l.contains("catalog")),
        "{:?}",
        demo.banner
    );

    // The demo's gateway: one MCP endpoint listing every sample's tools under qualified names.
    let gateway = demo
        .banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("gateway"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no gateway line in {:?}", demo.banner))
        .to_owned();
    let rpc = |id: u64, method: &str, params: serde_json::Value| serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let res = http
        .post(&gateway)
        .header("accept", "application/json, text/event-stream")
        .json(&rpc(
            1,
            "initialize",
            serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "demo-test", "version": "0"}}),
        ))
        .send()
        .await
        .expect("initialize through the gateway");
    assert!(res.status().is_success(), "{}", res.status());
    let session = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session")
        .to_owned();
    let _ = res.text().await;
    let notified = http
        .post(&gateway)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .expect("initialized");
    assert!(notified.status().is_success(), "{}", notified.status());
    let listed = http
        .post(&gateway)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&rpc(2, "tools/list", serde_json::json!({})))
        .send()
        .await
        .expect("tools/list through the gateway")
        .text()
        .await
        .expect("body");
    for tool in ["catalog__search_products", "inventory__", "analytics__"] {
        assert!(listed.contains(tool), "{tool} in {listed}");
    }
    demo.terminate().await;
}
