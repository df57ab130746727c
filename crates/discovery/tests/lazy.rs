//! Lazy discovery: the index built from the registry's catalog, no server connected until one
//! of its tools is called; a server the registry never listed connected at once, as without it.

use mcp_fleet_discovery::{Discovery, ServerState};
use serde_json::{Value, json};

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, registration};

/// How many of the lazy fleet's servers are listed in the registry's catalog (the last is not).
const LISTED: usize = 5;

/// A server's tools as the registry's catalog keeps them.
fn listing(server: &TestServer) -> Vec<Value> {
    server
        .tools()
        .iter()
        .map(|t| serde_json::to_value(t).expect("a tool as JSON"))
        .collect()
}

#[tokio::test]
async fn a_lazy_index_connects_only_to_the_server_whose_tool_is_called() {
    // No health worker: nothing but the discovery library connects to the servers.
    let registry = TestRegistry::start().await;
    let mut servers = Vec::new();
    for i in 0..=LISTED {
        let id = format!("lazy-{i}");
        let only = format!("only_{i}");
        let server = TestServer::start(&id, &["lookup", &only]).await;
        registry
            .register(&registration(
                &id,
                &server.base_url,
                &["lazy"],
                json!({"type": "none"}),
            ))
            .await;
        if i < LISTED {
            registry.put_catalog(&id, listing(&server)).await;
        }
        servers.push(server);
    }
    let fleet = Discovery::builder(&registry.url)
        .tags(["lazy"])
        .lazy(true)
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    let idle: Vec<&str> = report.idle.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(idle, ["lazy-0", "lazy-1", "lazy-2", "lazy-3", "lazy-4"]);
    assert!(
        report.idle.iter().all(|(_, tools)| *tools == 2),
        "{report:?}"
    );
    // Never listed by the registry: connected at once.
    assert_eq!(report.connected, [("lazy-5".to_owned(), 2)], "{report:?}");

    // Every tool is indexed and callable, no listed server connected.
    let tools = fleet.tools();
    assert_eq!(tools.len(), 2 * (LISTED + 1));
    assert!(tools.iter().all(|t| t.available), "{tools:#?}");
    let connections = |servers: &[TestServer]| -> Vec<usize> {
        servers[..LISTED]
            .iter()
            .map(TestServer::connections)
            .collect()
    };
    assert_eq!(connections(&servers), [0; LISTED]);
    assert!(servers[LISTED].connections() > 0);
    let states = |fleet: &Discovery| -> Vec<(String, ServerState)> {
        fleet
            .servers()
            .into_iter()
            .map(|s| (s.id, s.state))
            .collect()
    };
    assert!(
        states(&fleet)[..LISTED]
            .iter()
            .all(|(_, s)| *s == ServerState::Idle),
        "{:?}",
        states(&fleet)
    );

    // The first call of one server's tool connects that server, and only it.
    let result = fleet
        .call_tool("only_2", json!({"query": "q"}))
        .await
        .expect("the first call connects");
    assert_eq!(echoed(&result)["server"], "lazy-2");
    let used: Vec<bool> = connections(&servers).iter().map(|n| *n > 0).collect();
    assert_eq!(used, [false, false, true, false, false]);
    assert_eq!(states(&fleet)[2].1, ServerState::Ready);
    assert_eq!(servers[2].list_requests(), 1, "listed once, on connecting");

    // Then as any connected server: a second call reuses the session.
    let sessions = servers[2].sessions() + servers[2].subscriptions();
    fleet
        .call_tool("lazy-2__lookup", json!({}))
        .await
        .expect("a second call");
    assert_eq!(servers[2].sessions() + servers[2].subscriptions(), sessions);
    assert_eq!(servers[2].calls(), 2);

    // A catalog listed again while its server is idle is read again on demand.
    let mut grown = listing(&servers[1]);
    grown.push(json!({"name": "added", "inputSchema": {"type": "object"}}));
    registry.put_catalog("lazy-1", grown).await;
    assert!(fleet.refresh_catalog("lazy-1").await);
    assert!(fleet.tool("lazy-1__added").is_ok());
    assert!(!fleet.refresh_catalog("lazy-1").await, "nothing new");
    assert!(
        !fleet.refresh_catalog("lazy-2").await,
        "a connected server's own listing wins"
    );
    assert_eq!(servers[1].connections(), 0);
    fleet.shutdown().await;
}

#[tokio::test]
async fn without_lazy_a_listed_fleet_is_connected_at_once() {
    let registry = TestRegistry::start().await;
    let server = TestServer::start("eager-0", &["lookup"]).await;
    registry
        .register(&registration(
            "eager-0",
            &server.base_url,
            &["eager"],
            json!({"type": "none"}),
        ))
        .await;
    registry.put_catalog("eager-0", listing(&server)).await;
    let fleet = Discovery::builder(&registry.url)
        .tags(["eager"])
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert!(report.idle.is_empty(), "{report:?}");
    assert_eq!(report.connected.len(), 1, "{report:?}");
    assert!(server.connections() > 0);
    fleet.shutdown().await;
}
