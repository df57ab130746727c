//! `POST /servers/{id}/check`: an on-demand probe answered with the recorded result.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::header;
use mcp_fleet_registry::HealthConfig;
use mcp_fleet_test_support::sqlite;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{check, entry, keys, problem, quick, register, time, ttl_entry};
use crate::common::{live_server, refused_url, start_checked, start_sqlite};

/// `POST /servers/{id}/check` probes at once and answers with the recorded result; it is rate
/// limited per entry, and refuses unknown, unprobed and worker-less cases with problems.
#[tokio::test]
async fn check_now_answers_with_the_recorded_probe() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let live = live_server(servers.clone()).await;
    let dead = refused_url();
    // Scheduled probes are rare here: the first one, on registration, and then a minute on.
    let health = HealthConfig {
        interval: Duration::from_secs(60),
        ..quick()
    };
    let reg = start_checked(sqlite(), health).await;
    register(
        &reg,
        &entry("checked", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    register(
        &reg,
        &entry("dead", &dead, Some(&format!("{dead}/health")), "none"),
    )
    .await;
    register(&reg, &ttl_entry("beating")).await;

    let res = check(&reg, "checked").await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.expect("report");
    assert_eq!(
        keys(&report),
        BTreeSet::from([
            "id",
            "outcome",
            "status",
            "latencyMs",
            "error",
            "errorDetail",
            "checkedAt"
        ]),
        "{report}"
    );
    assert_eq!(report["id"], "checked");
    assert_eq!(report["outcome"], "healthy");
    assert_eq!(report["status"], "healthy");
    assert!(report["error"].is_null(), "{report}");
    assert!(report["latencyMs"].is_u64(), "{report}");
    // Answered once recorded.
    let (_, e) = reg.get("/servers/checked").await;
    assert!(
        time(&e["lastCheckedAt"]) >= time(&report["checkedAt"]),
        "{e}"
    );
    assert_eq!(e["status"], "healthy");

    let res = check(&reg, "checked").await;
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    problem(res, 429, "rate-limited").await;

    let res = check(&reg, "dead").await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.expect("report");
    assert_eq!(report["outcome"], "down", "{report}");
    assert_eq!(report["status"], "down", "{report}");
    assert_eq!(report["error"], "connection refused", "{report}");
    assert!(report["errorDetail"].is_string(), "{report}");
    assert!(report["latencyMs"].is_null(), "never answered: {report}");

    problem(check(&reg, "nobody").await, 404, "not-found").await;
    let conflict = problem(check(&reg, "beating").await, 409, "conflict").await;
    assert!(
        conflict["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ttl"),
        "{conflict}"
    );

    let plain = start_sqlite().await;
    register(
        &plain,
        &entry("checked", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    problem(check(&plain, "checked").await, 503, "not-running").await;
}
