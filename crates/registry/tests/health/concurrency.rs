//! Probes stay within the concurrency bound, and results are written while probes queue.

use std::time::Duration;

use mcp_fleet_registry::HealthConfig;
use mcp_fleet_test_support::{eventually, sqlite};
use tokio_util::sync::CancellationToken;

use super::{entry, quick, register, status_is};
use crate::common::{TestRegistry, start_checked, timed_black_hole};

/// Registers `n` entries `hang-<i>` whose health URL is the black hole `hole`; returns their ids.
async fn register_hanging(reg: &TestRegistry, hole: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("hang-{i}")).collect();
    for id in &ids {
        register(
            reg,
            &entry(id, hole, Some(&format!("{hole}/health")), "none"),
        )
        .await;
    }
    ids
}

#[tokio::test]
async fn probes_stay_within_the_concurrency_bound() {
    const BOUND: usize = 3;
    const TIMEOUT: Duration = Duration::from_millis(500);
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let (hole, accepted) = timed_black_hole(servers.clone()).await;
    let health = HealthConfig {
        concurrency: BOUND,
        timeout: TIMEOUT,
        interval: Duration::from_secs(600),
        ..quick()
    };
    let reg = start_checked(sqlite(), health).await;
    let ids = register_hanging(&reg, &hole, 3 * BOUND).await;
    for id in &ids {
        let e = status_is(&reg, id, "down").await;
        assert!(
            e["lastError"]
                .as_str()
                .is_some_and(|m| m.contains("timed out")),
            "{e}"
        );
    }
    let mut at = accepted.lock().expect("lock").clone();
    at.sort();
    assert_eq!(at.len(), ids.len(), "each entry probed once");
    // A probe starts only once one of the `BOUND` before it has run into its time limit: so
    // the connection `BOUND` places later came at least (nearly) a time limit later.
    for (i, later) in at.iter().enumerate().skip(BOUND) {
        let gap = *later - at[i - BOUND];
        assert!(
            gap >= TIMEOUT * 4 / 5,
            "probe {i} started {gap:?} after probe {}: more than {BOUND} in flight",
            i - BOUND
        );
    }
}

/// While probes queue for a slot, results are written less often, but they are written: the
/// first ones are visible long before the queue drains.
#[tokio::test]
async fn results_are_written_while_probes_queue() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    const ENTRIES: usize = 12;
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let (hole, _) = timed_black_hole(servers.clone()).await;
    let health = HealthConfig {
        concurrency: 1,
        timeout: TIMEOUT,
        interval: Duration::from_secs(600),
        ..quick()
    };
    let reg = start_checked(sqlite(), health).await;
    register_hanging(&reg, &hole, ENTRIES).await;
    // One probe at a time, each running into its limit: the queue takes ENTRIES × TIMEOUT
    // (3.6 s) to drain; results are written at least every second meanwhile.
    let statuses = eventually(
        Duration::from_secs(10),
        "a first result written",
        || async {
            let (status, body) = reg.get("/servers?status=any&limit=100").await;
            assert_eq!(status, 200, "{body}");
            let statuses: Vec<String> = body["servers"]
                .as_array()
                .expect("servers")
                .iter()
                .map(|e| e["status"].as_str().unwrap_or_default().to_string())
                .collect();
            statuses.iter().any(|s| s == "down").then_some(statuses)
        },
    )
    .await;
    let unknown = statuses.iter().filter(|s| *s == "unknown").count();
    assert!(
        unknown >= ENTRIES / 3,
        "results were written only as the queue drained: {statuses:?}"
    );
}
