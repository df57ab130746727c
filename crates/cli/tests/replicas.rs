//! `serve` replicas sharing the health work on one PostgreSQL database, one of them killed with
//! SIGKILL (no chance to hand its leases over); and a second `serve` on one SQLite file, refused.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::common::{
    PROCESS_DEADLINE, Running, metric, run_command, serve, serve_command, spawn_command,
};

/// The health interval of the replicas: long enough that a replica stalled by a loaded machine
/// keeps its leases (they last half an interval), short enough for a test.
const INTERVAL: Duration = Duration::from_secs(5);

/// When each entry's `/health/<id>` was probed.
#[derive(Clone, Default)]
pub(crate) struct Probes(Arc<Mutex<Vec<(String, Instant)>>>);

impl Probes {
    pub(crate) async fn serve(&self, shutdown: CancellationToken) -> String {
        let app = Router::new()
            .route(
                "/health/{id}",
                get(
                    |State(p): State<Probes>, Path(id): Path<String>| async move {
                        p.0.lock().expect("not poisoned").push((id, Instant::now()));
                        "ok"
                    },
                ),
            )
            .with_state(self.clone());
        mcp_fleet_test_support::serve(app, shutdown).await
    }

    pub(crate) fn by_id(&self) -> HashMap<String, Vec<Instant>> {
        let mut by_id: HashMap<String, Vec<Instant>> = HashMap::new();
        for (id, at) in self.0.lock().expect("not poisoned").iter() {
            by_id.entry(id.clone()).or_default().push(*at);
        }
        by_id
    }
}

#[tokio::test]
async fn a_killed_replicas_entries_are_probed_by_the_others_within_two_intervals() {
    let Some(db) = mcp_fleet_test_support::postgres().await else {
        return;
    };
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let probes = Probes::default();
    let base = probes.serve(servers.clone()).await;
    let logs = tempfile::tempdir().expect("dir");
    let mut replicas: Vec<Running> = Vec::new();
    for i in 0..3 {
        let mut cmd = serve_command(&db.url);
        cmd.args(["--health-interval", &format!("{}s", INTERVAL.as_secs())])
            .args(["--health-timeout", "1s"])
            .args(["--replica-id", &format!("r{i}")])
            .env("RUST_LOG", "info,rmcp=off")
            .stderr(Stdio::from(
                std::fs::File::create(logs.path().join(format!("r{i}.log"))).expect("log"),
            ));
        replicas.push(spawn_command(cmd).await);
    }
    let ids: Vec<String> = (0..24).map(|i| format!("fleet-{i}")).collect();
    let http = reqwest::Client::new();
    for id in &ids {
        let res = http
            .post(format!("{}/servers", replicas[0].url))
            .json(&serde_json::json!({
                "id": id, "name": id, "url": base, "version": "1.0.0",
                "healthUrl": format!("{base}/health/{id}"),
            }))
            .send()
            .await
            .expect("register");
        assert_eq!(res.status(), 201);
    }
    // The entries each replica probes, as its metrics say; all three agree on the split once the
    // leases settle. On a loaded machine a replica late to renew loses its leases and the split
    // starts over, hence the wider deadline (and the logs, should it never settle).
    let deadline = Instant::now() + PROCESS_DEADLINE * 2;
    let owned = loop {
        let mut owned = Vec::new();
        for r in &replicas {
            owned.push(metric(&r.url, "mcp_fleet_replica_entries_owned").await);
        }
        let counts: Vec<u64> = owned.iter().map(|n| n.unwrap_or(0)).collect();
        if counts.iter().sum::<u64>() == 24 && counts.iter().all(|&n| n > 0) {
            break counts;
        }
        if Instant::now() >= deadline {
            let mut logged = String::new();
            for i in 0..3 {
                logged += &std::fs::read_to_string(logs.path().join(format!("r{i}.log")))
                    .unwrap_or_default();
            }
            panic!("the replicas never shared the 24 entries: entries owned {owned:?}\n{logged}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Once every entry has been probed by its settled holder, kill the replica with the most
    // entries; the other two take them over once its leases
    // expire, with no probe twice in an interval.
    let settled = Instant::now();
    mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "a probe of every entry since the replicas settled",
        || async {
            let seen = probes.by_id();
            ids.iter()
                .all(|id| {
                    seen.get(id)
                        .is_some_and(|t| t.iter().any(|at| *at > settled))
                })
                .then_some(())
        },
    )
    .await;
    let victim = (0..3).max_by_key(|&i| owned[i]).expect("three");
    let killed = replicas.remove(victim);
    killed.kill_hard().await;
    let at_kill = Instant::now();
    let seen = mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "two probes of every entry after the kill",
        || async {
            let seen = probes.by_id();
            ids.iter()
                .all(|id| {
                    seen.get(id)
                        .is_some_and(|t| t.iter().filter(|at| **at > at_kill).count() >= 2)
                })
                .then_some(seen)
        },
    )
    .await;
    for (id, times) in &seen {
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // A probe the killed replica made but never wrote is redone by the taker, which
            // schedules from the last written check: only the gap across the kill may be short.
            let across_kill = pair[0] <= at_kill && pair[1] > at_kill;
            assert!(
                (across_kill || gap >= INTERVAL / 2) && gap <= INTERVAL * 2,
                "{id} probed {gap:?} after its previous probe (killed at {:?}): {times:?}",
                at_kill - times[0]
            );
        }
    }
    let widest = seen
        .values()
        .flat_map(|t| t.windows(2).map(|p| p[1] - p[0]))
        .max()
        .unwrap_or_default();
    eprintln!("widest gap between two probes of one entry, across the kill: {widest:?}");
    let mut taken = 0;
    for r in &replicas {
        taken += metric(&r.url, "mcp_fleet_replica_takeovers_total")
            .await
            .unwrap_or(0);
    }
    assert_eq!(
        taken, owned[victim],
        "the killed replica's entries, taken over"
    );
    let mut logged = String::new();
    for i in (0..3).filter(|&i| i != victim) {
        logged += &std::fs::read_to_string(logs.path().join(format!("r{i}.log"))).expect("log");
    }
    assert!(
        logged.contains("whose lease expired (held by r"),
        "a survivor logs the takeover: {logged}"
    );
    for r in replicas {
        r.terminate().await;
    }
}

#[tokio::test]
async fn a_second_serve_on_one_sqlite_file_is_refused_naming_the_first() {
    let db = mcp_fleet_test_support::sqlite();
    let first = serve(&db.url).await;
    let pid = first.child.id().expect("pid");
    let (code, _, stderr) = run_command(serve_command(&db.url)).await;
    assert_eq!(code, Some(1), "{stderr}");
    let file = db.url.trim_start_matches("sqlite://");
    assert!(
        stderr.contains(&format!(
            "{file} is already served by `mcp-fleet serve` (pid {pid} on "
        )),
        "{stderr}"
    );
    // However the first one ends, the file is free again.
    first.kill_hard().await;
    serve(&db.url).await.terminate().await;
}
