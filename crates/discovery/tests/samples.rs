//! The seed's flow against the workspace's sample servers (registered and health-checked like
//! in the demo), and aggregation of prompts and resources.

use std::time::Duration;

use mcp_fleet_discovery::{Discovery, HealthStatus};
use mcp_fleet_registry::{AppState, Config, HealthConfig};
use mcp_fleet_sample_servers::Sample;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, eventually, registration};

#[tokio::test]
async fn the_demo_fleet_is_discovered_by_tag_and_called() {
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let db = mcp_fleet_test_support::sqlite();
    let store = mcp_fleet_store::connect(&db.url).await.expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let registry_url = format!("http://{}", listener.local_addr().expect("addr"));
    let state = AppState::new(store, Config::default());
    let health = HealthConfig {
        timeout: Duration::from_secs(2),
        interval: Duration::from_secs(1),
        refresh: Duration::from_millis(200),
        ..HealthConfig::default()
    };
    state
        .start_health_worker(health, shutdown.clone())
        .expect("health worker");
    tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));
    let mut samples = Vec::new();
    for sample in Sample::ALL {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let running = mcp_fleet_sample_servers::start(sample, listener, shutdown.child_token())
            .await
            .expect("sample starts");
        let announced = running.announce(&registry_url).await.expect("registers");
        samples.push((running, announced));
    }

    // As the seed: only healthy servers, so wait for their first probe.
    let fleet = Discovery::builder(&registry_url)
        .tags(["products"])
        .statuses([HealthStatus::Healthy])
        .build()
        .expect("builds");
    eventually(
        "catalog and inventory to be healthy and connected",
        || async {
            let report = fleet.connect().await.expect("registry answers");
            assert!(report.failed.is_empty(), "{report:?}");
            (fleet.servers().len() == 2).then_some(())
        },
    )
    .await;
    let ids: Vec<String> = fleet.servers().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["catalog", "inventory"]);
    let names: Vec<String> = fleet
        .tools()
        .into_iter()
        .map(|t| t.qualified_name)
        .collect();
    assert_eq!(
        names,
        [
            "catalog__get_product",
            "catalog__search_products",
            "inventory__check_stock",
            "inventory__list_low_stock",
            "inventory__reserve_stock",
        ]
    );
    let result = fleet
        .call_tool("search_products", json!({"query": "laptop", "limit": 2}))
        .await
        .expect("search works");
    let found = result.structured_content.expect("structured result");
    assert!(
        found["total_matches"].as_u64().is_some_and(|n| n >= 2),
        "{found}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn prompts_are_aggregated_under_qualified_names() {
    let registry = TestRegistry::start().await;
    let alpha = TestServer::start("alpha", &["a"]).await;
    let beta = TestServer::start("beta", &["b"]).await;
    for (id, server) in [("alpha", &alpha), ("beta", &beta)] {
        registry
            .register(&registration(
                id,
                &server.base_url,
                &["p"],
                json!({"type": "none"}),
            ))
            .await;
    }
    let fleet = Discovery::builder(&registry.url)
        .tags(["p"])
        .build()
        .expect("builds");
    fleet.connect().await.expect("connects");
    let prompts = fleet.prompts().await;
    assert!(prompts.failures.is_empty(), "{:?}", prompts.failures);
    let names: Vec<&str> = prompts
        .items
        .iter()
        .map(|p| p.qualified_name.as_str())
        .collect();
    assert_eq!(names, ["alpha__greet", "beta__greet"]);
    let got = fleet
        .get_prompt("beta__greet", json!(null))
        .await
        .expect("prompt");
    assert_eq!(got.messages.len(), 1);
    let e = fleet
        .get_prompt("greet", json!(null))
        .await
        .expect_err("ambiguous");
    assert!(e.to_string().contains("alpha__greet, beta__greet"), "{e}");
    // No server here offers resources: an empty list, not a failure.
    let resources = fleet.resources().await;
    assert!(resources.items.is_empty() && resources.failures.is_empty());
    fleet.shutdown().await;
}
