//! Acceptance 3 and 4: weighted sticky routing, automatic canary rollback (and none below the
//! threshold), outlier ejection and recovery.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{
    Failing, Session, TestGateway, TestRegistry, Upstream, Webhook, call, connect, eventually,
    server_of,
};

/// Makes `calls` calls in a fresh session; returns who answered them (and the session).
async fn session_calls(gw: &TestGateway, calls: usize) -> (HashSet<String>, Session) {
    let (session, _client) = connect(&gw.url).await;
    let mut served = HashSet::new();
    for _ in 0..calls {
        let result = call(&session, "cat__search").await.expect("a result");
        served.insert(server_of(&result));
    }
    (served, session)
}

/// A service `cat` at 1.0.0 (always fine) and 2.0.0 (failing as `canary`), weights 90/10.
async fn canary_fleet(canary: Failing) -> (TestRegistry, Upstream, Upstream) {
    let registry = TestRegistry::start().await;
    let v1 = Upstream::start("cat-v1", &["search"]).await;
    let v2 = Upstream::start("cat-v2", &["search"]).await;
    v2.fail(canary);
    registry
        .register("cat-v1", "cat", "1.0.0", &v1.base_url)
        .await;
    registry
        .register("cat-v2", "cat", "2.0.0", &v2.base_url)
        .await;
    registry
        .put_routing(
            "cat",
            json!({"weights": {"1.0.0": 90, "2.0.0": 10},
                   "rollback": {"maxErrorRateDelta": 0.05, "window": "60s", "minRequests": 50}}),
        )
        .await;
    (registry, v1, v2)
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_and_alerted() {
    a_failing_canary_is_rolled_back(true).await;
}

/// A gateway that reports nothing judges on its own calls, as before reports existed.
#[tokio::test]
async fn without_reports_a_failing_canary_is_rolled_back_on_local_counts() {
    a_failing_canary_is_rolled_back(false).await;
}

async fn a_failing_canary_is_rolled_back(reports: bool) {
    let (registry, _v1, v2) = canary_fleet(Failing::ToolErrorsPercent(30)).await;
    let hook = Webhook::start().await;
    let mut config = TestGateway::config(&registry);
    config.alert_webhooks = vec![hook.url.clone()];
    if !reports {
        config.canary_report_interval = None;
    }
    let gw = TestGateway::start(config).await;
    assert_eq!(
        gw.gateway
            .tools()
            .iter()
            .map(|t| t.name.to_string())
            .collect::<Vec<_>>(),
        ["cat__search"],
        "one set of tools per service"
    );

    // Sessions of ten calls each until the rollback: every session stays on one version, but
    // for the one the rollback moves to the stable version.
    let mut sessions = 0;
    while registry.routing("cat").await["rolledBack"].is_null() {
        assert!(sessions < 400, "no rollback after {sessions} sessions");
        let (served, session) = session_calls(&gw, 10).await;
        session.cancel().await.expect("close");
        sessions += 1;
        if served.len() > 1 {
            let doc = registry.routing("cat").await;
            assert!(
                !doc["rolledBack"].is_null(),
                "a session switched versions with no rollback: {served:?}"
            );
            break;
        }
    }
    let canary_calls = v2.state.calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        canary_calls >= 50,
        "rolled back after only {canary_calls} canary calls"
    );

    let doc = registry.routing("cat").await;
    assert_eq!(doc["weights"]["2.0.0"], 0, "{doc}");
    assert_eq!(doc["weights"]["1.0.0"], 100, "{doc}");
    assert_eq!(doc["rolledBack"]["version"], "2.0.0", "{doc}");
    let reason = doc["rolledBack"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("error rate of 2.0.0"), "{reason}");
    assert_eq!(reason.contains("judged by"), reports, "{reason}");

    let alert = eventually("the rollback alert", || async {
        hook.received.lock().expect("lock").first().cloned()
    })
    .await;
    assert_eq!(alert["event"], "rollback");
    assert_eq!(alert["service"], "cat");
    assert_eq!(alert["version"], "2.0.0");
    assert_eq!(alert["weights"]["2.0.0"], 0);

    // Later sessions all go to the stable version.
    let before = v2.state.calls.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..30 {
        let (served, session) = session_calls(&gw, 2).await;
        assert_eq!(served, HashSet::from(["cat-v1".to_owned()]));
        session.cancel().await.expect("close");
    }
    assert_eq!(
        v2.state.calls.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"mcp_fleet_gateway_rollbacks_total{service="cat",version="2.0.0"} 1"#),
        "{metrics}"
    );
    assert_eq!(
        hook.received.lock().expect("lock").len(),
        1,
        "one alert per rollback"
    );
}

#[tokio::test]
async fn a_canary_below_the_threshold_keeps_its_traffic() {
    let (registry, _v1, v2) = canary_fleet(Failing::ToolErrorsPercent(1)).await;
    let gw = TestGateway::start(TestGateway::config(&registry)).await;
    // Sessions are counted once the gateway routes by the policy (before it has read it, the
    // two versions take turns).
    eventually("the gateway to route by the policy", || async {
        let weights = gw.gateway.routing_weights("cat")?;
        (weights
            .iter()
            .any(|(v, w)| v.to_string() == "2.0.0" && *w == 10))
        .then_some(())
    })
    .await;
    // Until the canary has had twice the calls that would let it be judged.
    let mut sessions = 0;
    let mut versions_seen = HashSet::new();
    // And at least 100 sessions, so that the share below is not read off a lucky few.
    while v2.state.calls.load(std::sync::atomic::Ordering::SeqCst) < 100 || sessions < 100 {
        assert!(sessions < 600, "the canary got too little traffic");
        let (served, session) = session_calls(&gw, 10).await;
        versions_seen.extend(served);
        session.cancel().await.expect("close");
        sessions += 1;
    }
    assert_eq!(versions_seen.len(), 2);
    let doc = registry.routing("cat").await;
    assert!(doc["rolledBack"].is_null(), "{doc}");
    assert_eq!(doc["weights"]["2.0.0"], 10, "{doc}");
    // About a tenth of the sessions went to the canary.
    let share =
        v2.state.calls.load(std::sync::atomic::Ordering::SeqCst) as f64 / (10.0 * sessions as f64);
    assert!(
        (0.03..0.25).contains(&share),
        "canary share {share} of {sessions} sessions"
    );
}

#[tokio::test]
async fn failing_instances_are_ejected_and_come_back() {
    let registry = TestRegistry::start().await;
    let a = Upstream::start("svc-a", &["search"]).await;
    let b = Upstream::start("svc-b", &["search"]).await;
    registry
        .register("svc-a", "svc", "1.0.0", &a.base_url)
        .await;
    registry
        .register("svc-b", "svc", "1.0.0", &b.base_url)
        .await;
    let mut config = TestGateway::config(&registry);
    config.outlier.consecutive_errors = 3;
    // Outlasts the ten calls to svc-b below, over rmcp's slower path too (MCP_FLEET_RMCP_ONLY).
    config.outlier.base_ejection = Duration::from_secs(3);
    let gw = TestGateway::start(config).await;
    let (session, _client) = connect(&gw.url).await;

    // Without a policy the instances take turns.
    let mut served = HashSet::new();
    for _ in 0..4 {
        served.insert(server_of(&call(&session, "svc__search").await.expect("ok")));
    }
    assert_eq!(served.len(), 2, "{served:?}");

    a.fail(Failing::RpcErrors);
    let mut errors = 0;
    for _ in 0..10 {
        if call(&session, "svc__search").await.is_err() {
            errors += 1;
        }
    }
    // Three errors eject svc-a; then every call goes to svc-b.
    assert_eq!(errors, 3);
    for _ in 0..10 {
        let r = call(&session, "svc__search").await.expect("svc-b answers");
        assert_eq!(server_of(&r), "svc-b");
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"mcp_fleet_gateway_ejections_total{service="svc",upstream="svc-a"} 1"#),
        "{metrics}"
    );

    // Healthy again: once the ejection ends, svc-a takes calls again.
    a.fail(Failing::Never);
    eventually("svc-a to serve again", || async {
        let r = call(&session, "svc__search").await.ok()?;
        (server_of(&r) == "svc-a").then_some(())
    })
    .await;
}

/// Every replica's counts of `cat` over the window as the registry sums them: an empty report
/// of a replica that counted nothing.
async fn summed(registry: &TestRegistry) -> Value {
    let body = json!({"replica": "test-reader", "slotMs": 1000, "versions": {}});
    let (status, totals) = registry
        .send(
            reqwest::Method::POST,
            "/services/cat/routing/observations",
            Some(&body),
        )
        .await;
    assert_eq!(status, 200, "{totals}");
    totals
}

/// Calls of `cat` through `gw`, a session each, until the canary `v2` has had `until` calls in
/// all or is rolled back.
async fn drive(gw: &TestGateway, registry: &TestRegistry, v2: &Upstream, until: usize) {
    let mut sessions = 0;
    while v2.calls() < until && registry.routing("cat").await["rolledBack"].is_null() {
        assert!(sessions < 400, "the canary got too little traffic");
        let (session, _client) = connect(&gw.url).await;
        call(&session, "cat__search").await.expect("a result");
        session.cancel().await.expect("close");
        sessions += 1;
    }
}

/// Issue #23 item 8: two gateway replicas each see part of a canary's calls, too few alone to
/// judge it (`minRequests` 20, 12 each at most); the registry's sum of their reports crosses
/// it, one replica records the rollback, and there is exactly one rollback record, one routing
/// event and one alert. On SQLite and PostgreSQL.
#[tokio::test]
async fn two_gateways_roll_a_canary_back_once_from_their_summed_counts() {
    for db in mcp_fleet_test_support::all_backends().await {
        let backend = db.backend;
        let registry = TestRegistry::start_with(db).await;
        let v1 = Upstream::start("cat-v1", &["search"]).await;
        let v2 = Upstream::start("cat-v2", &["search"]).await;
        v2.fail(Failing::ToolErrorsPercent(100));
        registry
            .register("cat-v1", "cat", "1.0.0", &v1.base_url)
            .await;
        registry
            .register("cat-v2", "cat", "2.0.0", &v2.base_url)
            .await;
        registry
            .put_routing(
                "cat",
                json!({"weights": {"1.0.0": 50, "2.0.0": 50},
                       "rollback": {"maxErrorRateDelta": 0.05, "window": "60s", "minRequests": 20}}),
            )
            .await;
        let start = registry.store.current_revision().await.expect("revision");
        let hook = Webhook::start().await;
        let mut gateways = Vec::new();
        for replica in ["gw-a", "gw-b"] {
            let mut config = TestGateway::config(&registry);
            config.alert_webhooks = vec![hook.url.clone()];
            config.replica_id = replica.to_owned();
            gateways.push(TestGateway::start(config).await);
        }

        // gw-a's 12 canary calls reach the registry: below minRequests, nothing happens.
        drive(&gateways[0], &registry, &v2, 12).await;
        assert_eq!(v2.calls(), 12, "{backend}");
        eventually("gw-a's counts in the registry", || async {
            let totals = summed(&registry).await;
            (totals["versions"]["2.0.0"]["calls"] == 12).then_some(())
        })
        .await;
        assert!(
            registry.routing("cat").await["rolledBack"].is_null(),
            "{backend}: rolled back on one replica's calls"
        );

        // gw-b's calls, fewer than minRequests too, bring the sum over it.
        drive(&gateways[1], &registry, &v2, 24).await;
        let doc = eventually("the rollback", || async {
            let doc = registry.routing("cat").await;
            (!doc["rolledBack"].is_null()).then_some(doc)
        })
        .await;
        assert_eq!(
            doc["weights"],
            json!({"1.0.0": 100, "2.0.0": 0}),
            "{backend}"
        );
        let reason = doc["rolledBack"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("counted by 2 gateway replica(s), judged by gw-b"),
            "{backend}: {reason}"
        );
        let canary_calls = v2.calls();
        assert!(
            (20..=24).contains(&canary_calls),
            "{backend}: {canary_calls} canary calls"
        );

        // Both replicas follow the policy, and both report again after it.
        // Ten new sessions in a row on the stable version: at 50/50 one could be by chance.
        for gw in &gateways {
            eventually("the gateway to follow the rollback", || async {
                for _ in 0..10 {
                    let (session, _client) = connect(&gw.url).await;
                    let served = server_of(&call(&session, "cat__search").await.ok()?);
                    session.cancel().await.ok()?;
                    if served != "cat-v1" {
                        return None;
                    }
                }
                Some(())
            })
            .await;
        }
        // (gw-a may send a few more calls to the canary until it reads the policy again.)
        let followed = v2.calls();
        for round in 0..2 {
            let before = summed(&registry).await["versions"]["1.0.0"]["calls"]
                .as_u64()
                .unwrap_or(0);
            for gw in &gateways {
                let (served, session) = session_calls(gw, 2).await;
                assert_eq!(served, HashSet::from(["cat-v1".to_owned()]), "{backend}");
                session.cancel().await.expect("close");
            }
            eventually("both replicas' reports", || async {
                let now = summed(&registry).await["versions"]["1.0.0"]["calls"]
                    .as_u64()
                    .unwrap_or(0);
                (now >= before + 4).then_some(())
            })
            .await;
            eprintln!("{backend}: round {round} reported");
        }

        // One alert, one rollback record (its event), one rollback counted by one replica.
        eventually("the alert", || async {
            (!hook.received.lock().expect("lock").is_empty()).then_some(())
        })
        .await;
        let alerts = hook.received.lock().expect("lock").clone();
        assert_eq!(alerts.len(), 1, "{backend}: {alerts:?}");
        assert_eq!(alerts[0]["version"], "2.0.0");
        let log = registry
            .store
            .events_since(start, 1000)
            .await
            .expect("events");
        let rollbacks: Vec<_> = log
            .events
            .iter()
            .filter(|e| {
                serde_json::from_str::<Value>(&e.data).is_ok_and(|d| !d["rolledBack"].is_null())
            })
            .collect();
        assert_eq!(rollbacks.len(), 1, "{backend}: {:?}", log.events);
        let line = r#"mcp_fleet_gateway_rollbacks_total{service="cat",version="2.0.0"} 1"#;
        assert!(!gateways[0].metrics().await.contains(line), "{backend}");
        assert!(gateways[1].metrics().await.contains(line), "{backend}");
        assert_eq!(
            v2.calls(),
            followed,
            "{backend}: the canary got calls after"
        );
    }
}
