//! `mcp-fleet demo`: a registry and sample servers that register themselves.

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
    demo.terminate().await;
}
