//! Failover between instances of one version: a call whose upstream refused the connection
//! (nothing was sent) goes to another instance; a call that may have reached its upstream is
//! sent again only when the tool says it is idempotent. Over both of the gateway's paths: rmcp's
//! server (the stock rmcp client, stateless) and the fast path (a 2025-11-25 session).

use std::time::Duration;

use serde_json::Value;

use crate::common::{
    JsonSession, Session, TestGateway, TestRegistry, Upstream, call, connect, idempotent, tool,
};

/// The gateway's two ways in.
#[derive(Debug, Clone, Copy)]
enum Path {
    Rmcp,
    Fast,
}

/// Calls `name` over `path`: the result's `server`, or the error's text.
async fn call_over(
    path: Path,
    rmcp: &Session,
    fast: &JsonSession,
    name: &str,
) -> Result<String, String> {
    match path {
        Path::Rmcp => call(rmcp, name)
            .await
            .map(|r| crate::common::server_of(&r))
            .map_err(|e| e.to_string()),
        Path::Fast => fast
            .call(name)
            .await
            .map(|r| {
                r["structuredContent"]["server"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .map_err(|e| e.to_string()),
    }
}

/// Paths in an order where both meet both instances of a two-instance round robin.
const PATHS: [Path; 8] = [
    Path::Rmcp,
    Path::Rmcp,
    Path::Fast,
    Path::Fast,
    Path::Rmcp,
    Path::Rmcp,
    Path::Fast,
    Path::Fast,
];

#[tokio::test]
async fn a_refused_call_goes_to_another_instance_of_its_version() {
    let registry = TestRegistry::start().await;
    let one = Upstream::start("svc-one", &["search"]).await;
    let mut two = Upstream::start("svc-two", &["search"]).await;
    registry
        .register("svc-one", "svc", "1.0.0", &one.base_url)
        .await;
    registry
        .register("svc-two", "svc", "1.0.0", &two.base_url)
        .await;
    let mut config = TestGateway::config(&registry);
    config.outlier.consecutive_errors = 1;
    config.outlier.base_ejection = Duration::from_secs(60);
    // The catalog keeps the dead instance until well after the test, so calls meet it.
    config.debounce = Duration::from_secs(30);
    let gw = TestGateway::start(config).await;
    let (rmcp, _client) = connect(&gw.url).await;
    let fast = JsonSession::open(&gw.url).await;
    for path in PATHS {
        call_over(path, &rmcp, &fast, "svc__search")
            .await
            .expect("both instances serve");
    }
    assert_eq!((one.calls(), two.calls()), (4, 4));

    // Gone, as after kill -9: its listener and connections are closed, connects are refused.
    two.kill();
    for (i, path) in PATHS.into_iter().chain(PATHS).enumerate() {
        let answered = call_over(path, &rmcp, &fast, "svc__search").await;
        assert_eq!(
            answered.as_deref(),
            Ok("svc-one"),
            "call {i} over {path:?} after the kill"
        );
    }
    assert_eq!((one.calls(), two.calls()), (4 + 16, 4));

    // The refusals were counted against the dead instance, which they ejected.
    let metrics = gw.metrics().await;
    let refused = r#"mcp_fleet_gateway_calls_total{service="svc",version="1.0.0",upstream="svc-two",outcome="unreachable"}"#;
    assert!(metrics.contains(refused), "{metrics}");
    let ejected = r#"mcp_fleet_gateway_ejections_total{service="svc",upstream="svc-two"} 1"#;
    assert!(metrics.contains(ejected), "{metrics}");
    assert!(
        !metrics.contains(r#"upstream="svc-one",outcome="error""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_call_that_may_have_reached_its_upstream_is_retried_only_when_idempotent() {
    let registry = TestRegistry::start().await;
    let tools = || vec![tool("search"), idempotent("lookup")];
    let good = Upstream::start_tools("svc-good", tools()).await;
    let dying = Upstream::start_dying_mid_call("svc-dying", tools()).await;
    registry
        .register("svc-good", "svc", "1.0.0", &good.base_url)
        .await;
    registry
        .register("svc-dying", "svc", "1.0.0", &dying.base_url)
        .await;
    // Never ejected, so that calls keep alternating between the two.
    let mut config = TestGateway::config(&registry);
    config.outlier.consecutive_errors = 0;
    let gw = TestGateway::start(config).await;
    let (rmcp, _client) = connect(&gw.url).await;
    let fast = JsonSession::open(&gw.url).await;

    // Not idempotent: a call the upstream died in fails, and no other instance sees it.
    let mut died = Vec::new();
    for path in PATHS {
        let (good_before, dying_before) = (good.calls(), dying.dropped());
        let answered = call_over(path, &rmcp, &fast, "svc__search").await;
        if dying.dropped() > dying_before {
            let e = answered.expect_err("a call its upstream died in fails");
            assert!(
                e.contains("upstream svc-dying") && e.contains("closed"),
                "a clear error over {path:?}: {e}"
            );
            assert_eq!(good.calls(), good_before, "sent again over {path:?}");
            died.push(path);
        } else {
            assert_eq!(answered.as_deref(), Ok("svc-good"), "over {path:?}");
            assert_eq!(good.calls(), good_before + 1);
        }
    }
    assert_eq!(died.len(), 4, "{died:?}");

    // Idempotent: sent once more, to the other instance of the version.
    let dying_before = dying.dropped();
    for path in PATHS {
        let answered = call_over(path, &rmcp, &fast, "svc__lookup").await;
        assert_eq!(answered.as_deref(), Ok("svc-good"), "over {path:?}");
    }
    assert_eq!(dying.dropped() - dying_before, 4);
    assert_eq!(good.calls(), 4 + 8);
}

#[tokio::test]
async fn a_retry_stays_in_the_sessions_version() {
    let registry = TestRegistry::start().await;
    let stable = Upstream::start("svc-stable", &["search"]).await;
    let mut canary = Upstream::start("svc-canary", &["search"]).await;
    registry
        .register("svc-stable", "svc", "1.0.0", &stable.base_url)
        .await;
    registry
        .register("svc-canary", "svc", "2.0.0", &canary.base_url)
        .await;
    // Every session goes to the canary.
    registry
        .put_routing(
            "svc",
            serde_json::json!({"weights": {"1.0.0": 0, "2.0.0": 100}}),
        )
        .await;
    let mut config = TestGateway::config(&registry);
    // The catalog keeps the dead canary until well after the test, so the call meets it.
    config.debounce = Duration::from_secs(30);
    let gw = TestGateway::start(config).await;
    let fast = JsonSession::open(&gw.url).await;
    crate::common::eventually("the policy to be read", || async {
        let answered: Result<Value, Value> = fast.call("svc__search").await;
        (answered.ok()?["structuredContent"]["server"] == "svc-canary").then_some(())
    })
    .await;

    // The canary's only instance is gone: the session's call is not moved to another version.
    canary.kill();
    let before = stable.calls();
    let e = fast
        .call("svc__search")
        .await
        .expect_err("no instance of the session's version is left");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("svc-canary")),
        "{e}"
    );
    assert_eq!(stable.calls(), before);
}
