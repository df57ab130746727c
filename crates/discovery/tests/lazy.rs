//! Lazy discovery: the index built from the catalog the registry's health worker listed, no
//! server connected until one of its tools is called; a server the registry never listed
//! connected at once, as without it.

use mcp_fleet_discovery::{Discovery, ServerState};
use mcp_fleet_test_support::registry::{listed_once, start_checked};
use serde_json::json;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, registration};

/// How many of the lazy fleet's servers the registry lists (one more is never listed).
const LISTED: usize = 5;

/// Registers `server` as `id`, tagged `tag`; checked (and so listed) by the registry unless
/// `unchecked`.
async fn register(
    registry: &TestRegistry,
    id: &str,
    server: &TestServer,
    tag: &str,
    unchecked: bool,
) {
    let mut body = registration(id, &server.base_url, &[tag], json!({"type": "none"}));
    if unchecked {
        // Never connected to by the registry, so never listed.
        body["healthCheck"] = json!({"mode": "none"});
    }
    registry.register(&body).await;
}

#[tokio::test]
async fn a_lazy_index_connects_only_to_the_server_whose_tool_is_called() {
    let registry = start_checked(mcp_fleet_test_support::sqlite(), listed_once()).await;
    let mut servers = Vec::new();
    for i in 0..=LISTED {
        let id = format!("lazy-{i}");
        let server = TestServer::start(&id, &["lookup", &format!("only_{i}")]).await;
        register(&registry, &id, &server, "lazy", i == LISTED).await;
        servers.push(server);
    }
    for i in 0..LISTED {
        registry.listed(&format!("lazy-{i}")).await;
    }
    // The registry's own connections (probe and listing) are done: later ones are discovery's.
    let connections = |servers: &[TestServer]| -> Vec<usize> {
        servers[..LISTED]
            .iter()
            .map(TestServer::connections)
            .collect()
    };
    let before = connections(&servers);
    assert!(before.iter().all(|n| *n > 0), "probed: {before:?}");

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
    assert!(servers[LISTED].connections() > 0);

    // Every tool is indexed and callable, no listed server connected.
    let tools = fleet.tools();
    assert_eq!(tools.len(), 2 * (LISTED + 1));
    assert!(tools.iter().all(|t| t.available), "{tools:#?}");
    assert_eq!(connections(&servers), before);
    let states = |fleet: &Discovery| -> Vec<ServerState> {
        fleet.servers().into_iter().map(|s| s.state).collect()
    };
    assert!(
        states(&fleet)[..LISTED]
            .iter()
            .all(|s| *s == ServerState::Idle),
        "{:?}",
        states(&fleet)
    );

    // The first call of one server's tool connects that server, and only it.
    let listings = servers[2].list_requests();
    let result = fleet
        .call_tool("only_2", json!({"query": "q"}))
        .await
        .expect("the first call connects");
    assert_eq!(echoed(&result)["server"], "lazy-2");
    let used: Vec<bool> = connections(&servers)
        .iter()
        .zip(&before)
        .map(|(now, then)| now > then)
        .collect();
    assert_eq!(used, [false, false, true, false, false]);
    assert_eq!(states(&fleet)[2], ServerState::Ready);
    assert_eq!(
        servers[2].list_requests(),
        listings + 1,
        "listed on connecting"
    );

    // Then as any connected server: a second call reuses the session.
    let sessions = servers[2].sessions() + servers[2].subscriptions();
    fleet
        .call_tool("lazy-2__lookup", json!({}))
        .await
        .expect("a second call");
    assert_eq!(servers[2].sessions() + servers[2].subscriptions(), sessions);
    assert_eq!(servers[2].calls(), 2);

    // A server listed again while idle has its catalog read again on demand.
    servers[1].add_tool("added").await;
    registry.relist("lazy-1").await;
    let before = servers[1].connections();
    assert!(fleet.refresh_catalog("lazy-1").await);
    assert!(fleet.tool("lazy-1__added").is_ok());
    assert!(!fleet.refresh_catalog("lazy-1").await, "nothing new");
    assert!(
        !fleet.refresh_catalog("lazy-2").await,
        "a connected server's own listing wins"
    );
    assert_eq!(servers[1].connections(), before);
    fleet.shutdown().await;
}

#[tokio::test]
async fn without_lazy_a_listed_fleet_is_connected_at_once() {
    let registry = start_checked(mcp_fleet_test_support::sqlite(), listed_once()).await;
    let server = TestServer::start("eager-0", &["lookup"]).await;
    register(&registry, "eager-0", &server, "eager", false).await;
    registry.listed("eager-0").await;
    let before = server.connections();
    let fleet = Discovery::builder(&registry.url)
        .tags(["eager"])
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert!(report.idle.is_empty(), "{report:?}");
    assert_eq!(report.connected.len(), 1, "{report:?}");
    assert!(server.connections() > before);
    fleet.shutdown().await;
}

/// A connected server's `tools/list_changed` reaches the registry's catalog at once (the library
/// asks it to list again), though the registry would list it again only in an hour; with
/// `report_tool_changes(false)` it does not.
#[tokio::test]
async fn a_tool_list_change_heard_by_the_library_reaches_the_registrys_catalog() {
    let registry = start_checked(mcp_fleet_test_support::sqlite(), listed_once()).await;
    for (id, report) in [("told", true), ("untold", false)] {
        let server = TestServer::start(id, &["lookup"]).await;
        register(&registry, id, &server, id, false).await;
        registry.listed(id).await;
        let fleet = Discovery::builder(&registry.url)
            .tags([id])
            .report_tool_changes(report)
            .build()
            .expect("builds");
        fleet.connect().await.expect("connects");
        server.add_tool("added").await;
        mcp_fleet_test_support::poll("the library to see the new tool", || async {
            fleet.tool(&format!("{id}__added")).ok()
        })
        .await;
        let names = |catalog: &serde_json::Value| -> Vec<String> {
            catalog["tools"]
                .as_array()
                .expect("tools")
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        };
        if report {
            mcp_fleet_test_support::poll("the registry to list the new tool", || async {
                let (_, catalog) = registry.get(&format!("/servers/{id}/tools")).await;
                (names(&catalog) == ["added", "lookup"]).then_some(())
            })
            .await;
        } else {
            // Nothing else lists it before its hour is up: stale until asked.
            let (_, catalog) = registry.get(&format!("/servers/{id}/tools")).await;
            assert_eq!(names(&catalog), ["lookup"], "{catalog}");
            assert_eq!(names(&registry.relist(id).await), ["added", "lookup"]);
        }
        fleet.shutdown().await;
    }
}
