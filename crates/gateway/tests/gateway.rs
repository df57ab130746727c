//! Acceptance 1, 2 and 4 (killed upstream): aggregation, collision-free names, list_changed,
//! fail-open, clear errors.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mcp_fleet_gateway::{Backoff, FailureMode, GatewayConfig, ToolNames};

use crate::common::{
    Failing, TestGateway, TestRegistry, Upstream, call, connect, eventually, names, server_of,
};

#[tokio::test]
async fn one_endpoint_lists_and_calls_the_whole_fleet() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search", "only_alpha"]).await;
    let beta = Upstream::start("beta", &["search"]).await;
    let gamma = Upstream::start("gamma", &["report"]).await;
    for (id, up) in [("alpha", &alpha), ("beta", &beta), ("gamma", &gamma)] {
        registry.register(id, id, "1.0.0", &up.base_url).await;
    }
    let gw = TestGateway::start(TestGateway::config(&registry)).await;
    let (session, _client) = connect(&gw.url).await;

    assert_eq!(
        names(&session).await,
        [
            "alpha__only_alpha",
            "alpha__search",
            "beta__search",
            "gamma__report"
        ]
    );
    for (name, server) in [
        ("alpha__search", "alpha"),
        ("beta__search", "beta"),
        ("gamma__report", "gamma"),
        ("alpha__only_alpha", "alpha"),
    ] {
        let result = call(&session, name).await.expect(name);
        assert_eq!(server_of(&result), server, "{name}");
    }
    let e = call(&session, "search")
        .await
        .expect_err("bare names are not offered");
    assert!(e.to_string().contains("unknown tool"), "{e}");

    // The calls are counted per upstream and version.
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            r#"mcp_fleet_gateway_calls_total{service="beta",version="1.0.0",upstream="beta",outcome="ok"} 1"#
        ),
        "{metrics}"
    );
    session.cancel().await.expect("close");
}

#[tokio::test]
async fn bare_names_when_unique_on_request() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search", "only_alpha"]).await;
    let beta = Upstream::start("beta", &["search"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    registry
        .register("beta", "beta", "1.0.0", &beta.base_url)
        .await;
    let mut config = TestGateway::config(&registry);
    config.tool_names = ToolNames::BareWhenUnique;
    let gw = TestGateway::start(config).await;
    let (session, _client) = connect(&gw.url).await;
    assert_eq!(
        names(&session).await,
        ["alpha__search", "beta__search", "only_alpha"]
    );
    let result = call(&session, "only_alpha").await.expect("bare call");
    assert_eq!(server_of(&result), "alpha");
}

#[tokio::test]
async fn clients_hear_of_changes_and_failed_upstreams_are_withheld() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search"]).await;
    let mut beta = Upstream::start("beta", &["lookup"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    registry
        .register("beta", "beta", "1.0.0", &beta.base_url)
        .await;
    let gw = TestGateway::start(TestGateway::config(&registry)).await;
    let (session, client) = connect(&gw.url).await;
    assert_eq!(names(&session).await, ["alpha__search", "beta__lookup"]);

    // An upstream adds a tool: the gateway's client is told and sees it.
    alpha.add_tool("fresh").await;
    eventually("a tools/list_changed from the gateway", || async {
        (client.list_changed.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    eventually("alpha__fresh to be listed", || async {
        names(&session)
            .await
            .contains(&"alpha__fresh".to_owned())
            .then_some(())
    })
    .await;
    call(&session, "alpha__fresh")
        .await
        .expect("the new tool works");

    // A new server in the registry joins the catalog.
    let gamma = Upstream::start("gamma", &["report"]).await;
    registry
        .register("gamma", "gamma", "1.0.0", &gamma.base_url)
        .await;
    eventually("gamma__report to be listed", || async {
        names(&session)
            .await
            .contains(&"gamma__report".to_owned())
            .then_some(())
    })
    .await;

    // A killed upstream: its tools are withheld, the session and the rest keep working, and
    // a call to it fails at once with an error naming it.
    beta.kill();
    let started = Instant::now();
    let e = eventually("a call to the dead upstream to fail", || async {
        call(&session, "beta__lookup").await.err()
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let text = e.to_string();
    assert!(
        text.contains("beta"),
        "the error names the upstream: {text}"
    );
    eventually("beta's tools to be withheld", || async {
        (!names(&session).await.contains(&"beta__lookup".to_owned())).then_some(())
    })
    .await;
    call(&session, "alpha__search")
        .await
        .expect("alpha still works");

    // Back again: listed and callable.
    beta.restart().await;
    eventually("beta__lookup to be callable again", || async {
        call(&session, "beta__lookup").await.ok()
    })
    .await;
    assert!(names(&session).await.contains(&"beta__lookup".to_owned()));

    // Deregistered: gone.
    registry.deregister("gamma").await;
    eventually("gamma's tools to be gone", || async {
        (!names(&session).await.contains(&"gamma__report".to_owned())).then_some(())
    })
    .await;
    assert!(client.list_changed.load(Ordering::SeqCst) >= 3);
}

#[tokio::test]
async fn upstream_errors_and_tool_errors_reach_the_caller() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    let gw = TestGateway::start(TestGateway::config(&registry)).await;
    let listed: Vec<String> = gw
        .gateway
        .tools()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(listed, ["alpha__search"]);
    let (session, _client) = connect(&gw.url).await;

    // A tool that ran and failed is a result with isError, passed through as it is.
    alpha.fail(Failing::ToolErrorsPercent(100));
    let result = call(&session, "alpha__search").await.expect("a result");
    assert_eq!(result.is_error, Some(true));

    // A JSON-RPC error is an MCP error naming the upstream.
    alpha.fail(Failing::RpcErrors);
    let e = call(&session, "alpha__search").await.expect_err("an error");
    let text = e.to_string();
    assert!(
        text.contains("upstream alpha") && text.contains("upstream broke"),
        "{text}"
    );

    let metrics = gw.metrics().await;
    for outcome in ["tool_error", "error"] {
        let line = format!(
            r#"mcp_fleet_gateway_calls_total{{service="alpha",version="1.0.0",upstream="alpha",outcome="{outcome}"}} 1"#
        );
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

/// A gateway started before its registry serves an empty catalog (a fail-closed one refuses to
/// list), then picks the fleet up when the registry comes, and tells its clients.
#[tokio::test]
async fn a_gateway_started_before_its_registry_picks_the_fleet_up() {
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = reserved.local_addr().expect("addr");
    drop(reserved);
    let mut config = GatewayConfig::new(format!("http://{addr}"));
    config.tags = vec!["gw".into()];
    config.debounce = Duration::from_millis(50);
    config.registry_backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    let gw = TestGateway::start(config.clone()).await;
    let closed = TestGateway::start(GatewayConfig {
        failure_mode: FailureMode::FailClosed,
        ..config
    })
    .await;
    let (session, client) = connect(&gw.url).await;
    assert_eq!(names(&session).await, Vec::<String>::new());
    let (closed_session, _) = connect(&closed.url).await;
    let refused = closed_session
        .list_all_tools()
        .await
        .expect_err("fail-closed before the registry answers");
    assert!(
        refused.to_string().contains("not answered yet"),
        "{refused}"
    );

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the registry takes the port");
    let registry = TestRegistry::start_on(listener).await;
    let alpha = Upstream::start("alpha", &["search"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    eventually("the fleet's tools through the gateway", || async {
        (names(&session).await == ["alpha__search"]).then_some(())
    })
    .await;
    eventually("clients to be told", || async {
        (client.list_changed.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    let result = call(&session, "alpha__search").await.expect("call");
    assert_eq!(server_of(&result), "alpha");
    eventually("the fail-closed gateway to list too", || async {
        closed_session
            .list_all_tools()
            .await
            .ok()
            .filter(|tools| tools.len() == 1)
    })
    .await;
    session.cancel().await.expect("close");
    closed_session.cancel().await.expect("close");
}
