//! An agent host built on the discovery library: finds the fleet's product servers by tag,
//! shows the tools an LLM would be offered, and calls one, as the seed's usage snippet does.
//!
//! Start the demo first, in another terminal (a registry on 127.0.0.1:4000 and sample MCP
//! servers that register themselves):
//!
//! ```sh
//! cargo run --release -- demo
//! ```
//!
//! Run with: cargo run -p mcp-fleet-discovery --example agent_host
//!
//! (`MCP_FLEET_REGISTRY=http://127.0.0.1:PORT` points it at another registry.)

use mcp_fleet_discovery::{Discovery, IndexEvent};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry =
        std::env::var("MCP_FLEET_REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:4000".into());

    // Every server tagged "products", connected concurrently; later registrations followed.
    let fleet = Discovery::builder(&registry)
        .tags(["products"])
        .client_info("agent-host-example", env!("CARGO_PKG_VERSION"))
        .watch(true)
        .build()?;
    let report = fleet.connect().await?;
    for (server, error) in &report.failed {
        eprintln!("not connected: {server}: {error}");
    }

    // What an LLM would be offered: unique names, each with its server.
    println!(
        "{} tools from {} servers:",
        fleet.tools().len(),
        report.connected.len()
    );
    for tool in fleet.tools() {
        let description = tool.tool.description.as_deref().unwrap_or_default();
        println!("  {:<32} {}", tool.qualified_name, description);
    }

    // A bare name works while one service offers it; the qualified name always does.
    let result = fleet
        .call_tool("search_products", json!({"query": "laptop", "limit": 3}))
        .await?;
    println!("\nsearch_products(\"laptop\"):");
    for block in &result.content {
        if let Some(text) = block.as_text() {
            println!("{}", text.text);
        }
    }

    // Changes arrive as deltas; the first event is the whole index.
    let mut updates = fleet.subscribe();
    if let Some(IndexEvent::Reset(tools)) = updates.next().await {
        println!("\nsubscribed: {} tools in the index", tools.len());
    }

    fleet.shutdown().await;
    Ok(())
}
