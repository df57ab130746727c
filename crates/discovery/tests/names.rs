//! Acceptance 1: colliding tool names get distinct qualified names, a bare name offered twice
//! is an error naming both, a unique bare name works; failures to connect are reported.

use mcp_fleet_discovery::{Discovery, DiscoveryError, ServerState, names};
use serde_json::json;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, eventually, registration};

#[tokio::test]
async fn colliding_names_are_qualified_and_bare_names_resolve_when_unique() {
    let registry = TestRegistry::start().await;
    let alpha = TestServer::start("alpha", &["search", "only_alpha"]).await;
    let beta = TestServer::start("beta", &["search"]).await;
    let long_tool = "t".repeat(70);
    let gamma = TestServer::start("gamma", &[long_tool.as_str(), "files.read"]).await;
    for (id, server) in [("alpha", &alpha), ("beta", &beta), ("gamma", &gamma)] {
        let body = registration(id, &server.base_url, &["search"], json!({"type": "none"}));
        registry.register(&body).await;
    }
    // Not matching the tags: never connected.
    let other = TestServer::start("other", &["search"]).await;
    let body = registration(
        "other",
        &other.base_url,
        &["elsewhere"],
        json!({"type": "none"}),
    );
    registry.register(&body).await;

    let fleet = Discovery::builder(&registry.url)
        .tags(["search"])
        .client_info("names-test", "0.0.1")
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("registry answers");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        report.connected,
        [("alpha".into(), 2), ("beta".into(), 1), ("gamma".into(), 2)]
    );

    let tools = fleet.tools();
    let names: Vec<&str> = tools.iter().map(|t| t.qualified_name.as_str()).collect();
    let long_name = names::qualified_name("gamma", &long_tool);
    let dotted_name = names::qualified_name("gamma", "files.read");
    let mut want = vec![
        "alpha__only_alpha",
        "alpha__search",
        "beta__search",
        long_name.as_str(),
        dotted_name.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(names, want);
    for tool in &tools {
        assert!(
            names::is_valid_name(&tool.qualified_name),
            "{}",
            tool.qualified_name
        );
        assert!(tool.available);
        assert_eq!(tool.server_version, "1.2.3");
    }
    let alpha_search = tools
        .iter()
        .find(|t| t.qualified_name == "alpha__search")
        .expect("listed");
    assert_eq!(alpha_search.server_id, "alpha");
    assert_eq!(alpha_search.tool.name, "search");

    // The bare name offered twice: an error listing both candidates, nothing called.
    match fleet.call_tool("search", json!({})).await {
        Err(DiscoveryError::AmbiguousTool { name, candidates }) => {
            assert_eq!(name, "search");
            assert_eq!(candidates, ["alpha__search", "beta__search"]);
        }
        other => panic!("expected an ambiguity error, got {other:?}"),
    }
    assert_eq!(alpha.calls() + beta.calls(), 0);

    // Qualified names reach the right server, with the bare name on the wire.
    for (name, server) in [("alpha__search", "alpha"), ("beta__search", "beta")] {
        let result = fleet
            .call_tool(name, json!({"query": "laptop"}))
            .await
            .expect("call succeeds");
        assert_eq!(
            echoed(&result),
            json!({"server": server, "tool": "search", "arguments": {"query": "laptop"}})
        );
    }

    // A unique bare name works; so do shortened names.
    let result = fleet
        .call_tool("only_alpha", json!(null))
        .await
        .expect("unique bare name");
    assert_eq!(echoed(&result)["tool"], "only_alpha");
    let result = fleet
        .call_tool(&long_name, json!({}))
        .await
        .expect("shortened name");
    assert_eq!(echoed(&result)["tool"], long_tool.as_str());
    let result = fleet
        .call_tool("files.read", json!({}))
        .await
        .expect("bare odd name");
    assert_eq!(echoed(&result)["tool"], "files.read");

    let missing = fleet
        .call_tool("nope", json!({}))
        .await
        .expect_err("unknown");
    assert!(
        matches!(missing, DiscoveryError::ToolNotFound { ref name, known: 5 } if name == "nope"),
        "{missing:?}"
    );
    let bad_args = fleet
        .call_tool("alpha__search", json!([1, 2]))
        .await
        .expect_err("array");
    assert!(
        matches!(bad_args, DiscoveryError::InvalidArguments { .. }),
        "{bad_args:?}"
    );
    assert_eq!(other.calls(), 0);
    fleet.shutdown().await;
    assert!(matches!(
        fleet.call_tool("alpha__search", json!({})).await,
        Err(DiscoveryError::Shutdown)
    ));
}

/// Instances of one service share its names (`<service>__<tool>`, and the bare name): calls
/// take turns among them and skip one that is down; an instance's own name reaches it alone.
#[tokio::test]
async fn instances_of_one_service_share_its_names_and_take_turns() {
    let registry = TestRegistry::start().await;
    let mut one = TestServer::start("cat-1", &["search"]).await;
    let two = TestServer::start("cat-2", &["search"]).await;
    for (id, server) in [("cat-1", &one), ("cat-2", &two)] {
        let mut body = registration(id, &server.base_url, &["cat"], json!({"type": "none"}));
        body["service"] = json!("cat");
        registry.register(&body).await;
    }
    let fleet = Discovery::builder(&registry.url).build().expect("builds");
    let report = fleet.connect().await.expect("registry answers");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let names: Vec<(String, String)> = fleet
        .tools()
        .into_iter()
        .map(|t| (t.service_name, t.qualified_name))
        .collect();
    assert_eq!(
        names,
        [
            ("cat__search".into(), "cat-1__search".into()),
            ("cat__search".into(), "cat-2__search".into())
        ]
    );
    for name in ["cat__search", "search", "cat__search", "search"] {
        fleet.call_tool(name, json!({})).await.expect(name);
    }
    assert_eq!((one.calls(), two.calls()), (2, 2), "turns");
    let own = fleet
        .call_tool("cat-2__search", json!({}))
        .await
        .expect("an instance's own name");
    assert_eq!(echoed(&own)["server"], "cat-2");

    one.stop().await;
    eventually("cat-1 to be seen down", || async {
        fleet
            .servers()
            .iter()
            .any(|s| s.id == "cat-1" && matches!(s.state, ServerState::Unavailable { .. }))
            .then_some(())
    })
    .await;
    for _ in 0..3 {
        let result = fleet
            .call_tool("cat__search", json!({}))
            .await
            .expect("another instance serves the service");
        assert_eq!(echoed(&result)["server"], "cat-2");
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn servers_that_fail_to_connect_are_reported_not_fatal() {
    let registry = TestRegistry::start().await;
    let alpha = TestServer::start("alpha", &["search"]).await;
    registry
        .register(&registration(
            "alpha",
            &alpha.base_url,
            &["t"],
            json!({"type": "none"}),
        ))
        .await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    registry
        .register(&registration(
            "dead",
            &dead,
            &["t"],
            json!({"type": "none"}),
        ))
        .await;

    let fleet = Discovery::builder(&registry.url)
        .tags(["t"])
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("registry answers");
    assert_eq!(report.connected, [("alpha".into(), 1)]);
    let [(id, error)] = report.failed.as_slice() else {
        panic!("one failure expected: {report:?}");
    };
    assert_eq!(id, "dead");
    let text = error.to_string();
    assert!(
        matches!(error, DiscoveryError::Unreachable { .. })
            && error.not_sent()
            && text.to_lowercase().contains("refused"),
        "{text}"
    );
    assert!(text.contains(&format!("{dead}/mcp")), "{text}");
    fleet
        .call_tool("search", json!({}))
        .await
        .expect("the other server works");
    let servers = fleet.servers();
    assert_eq!(servers.len(), 2);
    assert!(matches!(
        servers[1].state,
        mcp_fleet_discovery::ServerState::Unavailable { .. }
    ));
}

#[tokio::test]
async fn an_unreachable_registry_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let fleet = Discovery::builder(format!("http://127.0.0.1:{port}"))
        .build()
        .expect("builds");
    let e = fleet.connect().await.expect_err("nothing listens");
    assert!(matches!(e, DiscoveryError::Registry(_)), "{e:?}");
    assert!(e.to_string().contains("cannot reach registry"), "{e}");
}
