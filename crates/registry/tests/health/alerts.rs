//! Webhooks: status transitions reach them in order; a deleted entry raises no alert.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use mcp_fleet_registry::{Config, HealthConfig};
use mcp_fleet_test_support::{eventually, sqlite};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{
    Hook, Switch, check, entry, health_app, hook, keys, problem, quick, register, serve, serve_on,
    status_is, time,
};
use crate::common::start_checked_with;

/// unknown → healthy → degraded → healthy reaches the webhook as exactly those transitions.
#[tokio::test]
async fn transitions_reach_the_webhook_in_order() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let received = Hook::default();
    let hook_url = serve(
        Router::new()
            .route("/hook", post(hook))
            .with_state(received.clone()),
        servers.clone(),
    )
    .await;
    let switch = Switch::open();
    let base = serve(switch.router(), servers.clone()).await;
    let health = HealthConfig {
        webhooks: vec![format!("{hook_url}/hook").parse().expect("url")],
        ..quick()
    };
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    register(
        &reg,
        &entry("alerting", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    status_is(&reg, "alerting", "healthy").await;
    switch.set(503);
    status_is(&reg, "alerting", "degraded").await;
    switch.set(200);
    status_is(&reg, "alerting", "healthy").await;

    let bodies = eventually(Duration::from_secs(10), "3 webhook calls", || async {
        let bodies = received.bodies();
        (bodies.len() >= 3).then_some(bodies)
    })
    .await;
    let steps: Vec<(&str, &str, &Value)> = bodies
        .iter()
        .map(|b| {
            (
                b["from"].as_str().unwrap_or_default(),
                b["to"].as_str().unwrap_or_default(),
                &b["lastError"],
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("unknown", "healthy", &Value::Null),
            ("healthy", "degraded", &json!("HTTP 503")),
            ("degraded", "healthy", &Value::Null),
        ],
        "{bodies:#?}"
    );
    assert_eq!(
        bodies[1]["lastErrorDetail"], "GET health check: answered HTTP 503 Service Unavailable",
        "the chain goes with the short cause"
    );
    let fields = BTreeSet::from([
        "id",
        "name",
        "from",
        "to",
        "at",
        "lastError",
        "lastErrorDetail",
    ]);
    for b in &bodies {
        assert_eq!(keys(b), fields, "{b}");
        assert_eq!(b["id"], "alerting");
        assert_eq!(b["name"], "Server alerting");
    }
    let at: Vec<_> = bodies.iter().map(|b| time(&b["at"])).collect();
    assert!(at.is_sorted(), "{at:?}");

    // Steady probes after the recovery send nothing more.
    let probes = worker.stats().probes.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "two more probes", || async {
        (worker.stats().probes.load(Ordering::Relaxed) >= probes + 2).then_some(())
    })
    .await;
    assert_eq!(received.bodies().len(), 3);
}

/// A deleted entry is gone for the worker too: checking it answers 404 (not a report about a
/// server the registry no longer lists), and its failing probe raises no alert.
#[tokio::test]
async fn a_deleted_entry_is_neither_checked_nor_alerted() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let received = Hook::default();
    let hook_url = serve(
        Router::new()
            .route("/hook", post(hook))
            .with_state(received.clone()),
        servers.clone(),
    )
    .await;
    let app_life = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = serve_on(listener, health_app(), app_life.clone());
    // No scheduled probe after the first one: the worker learns of the deletion no other way.
    let health = HealthConfig {
        interval: Duration::from_secs(60),
        webhooks: vec![format!("{hook_url}/hook").parse().expect("url")],
        ..quick()
    };
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    register(
        &reg,
        &entry("retired", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    status_is(&reg, "retired", "healthy").await;
    let transitions = || worker.stats().transitions.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "the first transition", || async {
        (transitions() == 1).then_some(())
    })
    .await;

    app_life.cancel();
    app.await.expect("task").expect("server stops");
    let res = reg
        .http
        .delete(format!("{}/servers/retired", reg.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 204);

    problem(check(&reg, "retired").await, 404, "not-found").await;
    assert_eq!(transitions(), 1, "no alert about a deleted entry");
    let bodies = eventually(Duration::from_secs(10), "the first alert", || async {
        let bodies = received.bodies();
        (!bodies.is_empty()).then_some(bodies)
    })
    .await;
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(bodies[0]["to"], "healthy");
}
