//! Flap damping (rise and fall) and recovery of a server that dies and comes back.

use std::time::Duration;

use mcp_fleet_registry::HealthConfig;
use mcp_fleet_test_support::{TestDb, all_backends, eventually};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{
    Switch, entry, entry_when, health_app, quick, register, serve, serve_on, status_is, time,
};
use crate::common::start_checked;

/// With fall 2, one failed probe leaves a healthy entry healthy and the second does not; one
/// good probe (rise 1) brings it back. A server that dies and comes back on the same port goes
/// down and then healthy again.
#[tokio::test]
async fn flaps_are_damped_and_servers_recover() {
    futures::future::join_all(all_backends().await.into_iter().map(flap_and_recover)).await;
}

async fn flap_and_recover(db: TestDb) {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    // A long timeout: a failing answer held at the switch's gate must not time out.
    let health = HealthConfig {
        fall: 2,
        rise: 1,
        timeout: Duration::from_secs(10),
        ..quick()
    };
    let reg = start_checked(db, health).await;
    let backend = reg.backend;

    let switch = Switch::gated();
    let base = serve(switch.router(), servers.clone()).await;
    register(
        &reg,
        &entry("flappy", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    status_is(&reg, "flappy", "healthy").await;

    switch.set(503);
    switch.let_through(1);
    let once = entry_when(&reg, "flappy", "to record a failed probe", |e| {
        !e["lastError"].is_null()
    })
    .await;
    assert_eq!(once["status"], "healthy", "{backend}: {once}");
    assert!(
        once["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 503")),
        "{backend}: {once}"
    );
    // The next probe is in flight, held at the gate: nothing changes until it answers.
    eventually(
        Duration::from_secs(10),
        "the second failing probe to arrive",
        || async { (switch.held() == 1).then_some(()) },
    )
    .await;
    let (_, still) = reg.get("/servers/flappy").await;
    assert_eq!(switch.failed(), 1, "{backend}");
    assert_eq!(still["status"], "healthy", "{backend}: {still}");
    assert_eq!(still["lastCheckedAt"], once["lastCheckedAt"], "{backend}");

    switch.let_through(1);
    let twice = entry_when(&reg, "flappy", "to leave healthy", |e| {
        e["status"] != "healthy"
    })
    .await;
    assert_eq!(twice["status"], "degraded", "{backend}: {twice}");
    assert_eq!(switch.failed(), 2, "{backend}");
    assert!(time(&twice["lastCheckedAt"]) > time(&once["lastCheckedAt"]));

    switch.set(200);
    switch.let_through(Semaphore::MAX_PERMITS / 2);
    let back = status_is(&reg, "flappy", "healthy").await;
    assert!(back["lastError"].is_null(), "{backend}: {back}");
    assert!(time(&back["lastSeen"]) > time(&twice["lastCheckedAt"]));

    // Dies, and comes back on the same address.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let first_life = CancellationToken::new();
    let running = serve_on(listener, health_app(), first_life.clone());
    let url = format!("http://{addr}");
    register(
        &reg,
        &entry("phoenix", &url, Some(&format!("{url}/health")), "none"),
    )
    .await;
    status_is(&reg, "phoenix", "healthy").await;
    first_life.cancel();
    running
        .await
        .expect("server task")
        .expect("server stops cleanly");
    let dead = status_is(&reg, "phoenix", "down").await;
    let error = dead["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("refused"), "{backend}: {dead}");
    // Failed probes do not count as seen.
    assert!(
        time(&dead["lastSeen"]) < time(&dead["lastCheckedAt"]),
        "{backend}: {dead}"
    );

    let listener = TcpListener::bind(addr).await.expect("rebind the same port");
    serve_on(listener, health_app(), servers.clone());
    let again = status_is(&reg, "phoenix", "healthy").await;
    assert!(again["lastError"].is_null(), "{backend}: {again}");
    assert!(time(&again["lastSeen"]) > time(&dead["lastCheckedAt"]));
}
