//! The cluster end to end: three `serve` replicas and two `gateway` replicas on one PostgreSQL,
//! clients spread over all of them, under steady writes and tool calls; then one registry
//! replica and one gateway replica are killed with SIGKILL. No acknowledged write is lost, every
//! entry stays probed once per interval, change-feed readers of the killed replica resume on
//! another with no event missed or repeated, and the killed gateway's clients continue their
//! sessions, with the same ids, on the other gateway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_fleet_discovery::{ChangeFeed, RegistryClient};
use mcp_fleet_sample_servers::Sample;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::common::{PROCESS_DEADLINE, Running, binary, metric, serve_command, spawn_command};
use crate::gateway::{open_session, spawn_gateway};
use crate::replicas::Probes;

/// The health interval of the replicas: long enough that a replica stalled by a loaded machine
/// keeps its leases (they last half an interval), short enough for a test.
const INTERVAL: Duration = Duration::from_secs(5);
/// The gateways' shared `--session-key` (32 bytes, base64).
const SESSION_KEY: &str = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=";
/// A tool of the catalog sample, as the gateway names it.
const TOOL: &str = "catalog__search_products";

/// Acknowledged registrations: id and when the `201` came.
type Acked = Arc<Mutex<Vec<(String, Instant)>>>;
/// What a feed reader got: revision, kind and subject of each change.
type Log = Arc<Mutex<Vec<(i64, String, String)>>>;

#[tokio::test]
async fn a_cluster_loses_nothing_when_a_registry_and_a_gateway_are_killed() {
    let Some(db) = mcp_fleet_test_support::postgres().await else {
        return;
    };
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let probes = Probes::default();
    let base = probes.serve(servers.clone()).await;

    let mut registries: Vec<Running> = Vec::new();
    for i in 0..3 {
        let mut cmd = serve_command(&db.url);
        cmd.args(["--health-interval", &format!("{}s", INTERVAL.as_secs())])
            .args(["--health-timeout", "1s"])
            .args(["--replica-id", &format!("r{i}")]);
        registries.push(spawn_command(cmd).await);
    }
    let urls: Vec<String> = registries.iter().map(|r| r.url.clone()).collect();
    mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "the replicas to share the 64 shards fairly",
        || async {
            let mut held = Vec::new();
            for url in &urls {
                held.push(metric(url, "mcp_fleet_replica_leases_held").await?);
            }
            (held.iter().sum::<u64>() == 64 && held.iter().all(|&n| n >= 20)).then_some(())
        },
    )
    .await;

    // The upstream MCP server, registered through a replica that survives.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let catalog = mcp_fleet_sample_servers::start(Sample::Catalog, listener, servers.clone())
        .await
        .expect("catalog sample");
    let _announced = catalog.announce(&urls[1]).await.expect("register");
    let gateway = |registry: &str, id: &str| {
        let mut cmd = binary();
        cmd.args(["gateway", "--registry", registry, "--listen", "127.0.0.1:0"])
            .args(["--replica-id", id])
            .env("MCP_FLEET_SESSION_KEY", SESSION_KEY);
        cmd
    };
    // Gateway A follows the registry replica that is killed with it.
    let (mut gw_a, a_url) = spawn_gateway(gateway(&urls[0], "gw-a")).await;
    let (mut gw_b, b_url) = spawn_gateway(gateway(&urls[1], "gw-b")).await;
    for mcp in [&a_url, &b_url] {
        let session = open_session(mcp).await;
        mcp_fleet_test_support::eventually(PROCESS_DEADLINE, "the catalog's tools", || async {
            call(mcp, &session, 1).await.ok()
        })
        .await;
    }

    // Change-feed readers, one per replica, all from the same revision.
    let mut first = ChangeFeed::new(client(&urls[0]), None);
    let since = first
        .connect()
        .await
        .expect("open the feed")
        .expect("a revision");
    let stop_reading = CancellationToken::new();
    let mut readers = JoinSet::new();
    let logs: Vec<Log> = (0..3).map(|_| Arc::default()).collect();
    for (at, log) in logs.iter().enumerate() {
        readers.spawn(follow(
            urls.clone(),
            at,
            since,
            log.clone(),
            stop_reading.clone(),
        ));
    }

    // Writers, one per replica, and gateway clients, two per gateway.
    let acked: Acked = Arc::default();
    let stop_traffic = CancellationToken::new();
    let mut writers = JoinSet::new();
    for w in 0..urls.len() {
        writers.spawn(write(
            w,
            urls.clone(),
            base.clone(),
            acked.clone(),
            stop_traffic.clone(),
        ));
    }
    let mut clients = JoinSet::new();
    for c in 0..4 {
        let first = if c < 2 { &a_url } else { &b_url };
        let session = open_session(first).await;
        clients.spawn(use_tools(
            c,
            session,
            first.clone(),
            b_url.clone(),
            stop_traffic.clone(),
        ));
    }
    mcp_fleet_test_support::eventually(PROCESS_DEADLINE, "writes on every replica", || async {
        let acked = acked.lock().expect("not poisoned");
        (0..3)
            .all(|w| {
                acked
                    .iter()
                    .filter(|(id, _)| id.starts_with(&format!("w{w}-")))
                    .count()
                    >= 10
            })
            .then_some(())
    })
    .await;

    // SIGKILL: registry replica r0 and gateway A, with traffic on both.
    let killed = registries.remove(0);
    killed.kill_hard().await;
    gw_a.start_kill().expect("SIGKILL");
    gw_a.wait().await.expect("wait");
    let at_kill = Instant::now();
    let acked_at_kill: Vec<String> = acked
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "two probes after the kill of every entry acknowledged before it",
        || async {
            let seen = probes.by_id();
            acked_at_kill
                .iter()
                .all(|id| {
                    seen.get(id)
                        .is_some_and(|t| t.iter().filter(|at| **at > at_kill).count() >= 2)
                })
                .then_some(())
        },
    )
    .await;
    stop_traffic.cancel();
    let mut refused = HashMap::new();
    while let Some(done) = writers.join_next().await {
        let (w, n) = done.expect("writer");
        refused.insert(w, n);
    }
    assert_eq!(
        (refused[&1], refused[&2]),
        (0, 0),
        "the live replicas refused no write"
    );
    let mut outcomes = Vec::new();
    while let Some(done) = clients.join_next().await {
        outcomes.push(done.expect("client"));
    }
    let acked: Vec<(String, Instant)> = acked.lock().expect("not poisoned").clone();

    // 0 acknowledged writes lost: every one is read back from a survivor.
    let http = reqwest::Client::new();
    for (id, _) in &acked {
        let res = http
            .get(format!("{}/servers/{id}", urls[1]))
            .send()
            .await
            .expect("read back");
        assert_eq!(res.status(), 200, "acknowledged {id} lost");
    }

    // Probes: every entry probed within two intervals, none twice in one.
    let seen = mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "two probes of every entry after the writes stopped",
        || async {
            let seen = probes.by_id();
            acked
                .iter()
                .all(|(id, _)| seen.get(id).is_some_and(|t| t.len() >= 2))
                .then_some(seen)
        },
    )
    .await;
    for (id, acked_at) in &acked {
        let times = &seen[id];
        assert!(
            times[0] - *acked_at <= INTERVAL * 2,
            "{id} first probed {:?} after its registration",
            times[0] - *acked_at
        );
        for pair in times.windows(2) {
            let gap = pair[1] - pair[0];
            // A probe the killed replica made but never wrote is redone by the taker.
            let across_kill = pair[0] <= at_kill && pair[1] > at_kill;
            assert!(
                (across_kill || gap >= INTERVAL / 2) && gap <= INTERVAL * 2,
                "{id} probed {gap:?} after its previous probe: {times:?}"
            );
        }
    }

    // The feed: the three readers saw the same changes, each once, in order, though the first
    // was cut off with its replica; every acknowledged registration is among them.
    let until = {
        let mut feed = ChangeFeed::new(client(&urls[1]), None);
        feed.connect().await.expect("open").expect("a revision")
    };
    mcp_fleet_test_support::eventually(PROCESS_DEADLINE, "every reader to catch up", || async {
        logs.iter()
            .all(|log| {
                log.lock()
                    .expect("not poisoned")
                    .last()
                    .is_some_and(|(r, _, _)| *r >= until)
            })
            .then_some(())
    })
    .await;
    stop_reading.cancel();
    let mut resumed = [0; 3];
    while let Some(done) = readers.join_next().await {
        let (at, n) = done.expect("reader");
        resumed[at] = n;
    }
    assert!(
        resumed[0] >= 1,
        "the killed replica's reader resumed elsewhere"
    );
    assert!(
        refused[&0] <= 2,
        "writes failed beyond the kill: {}",
        refused[&0]
    );
    let upto = |log: &Mutex<Vec<(i64, String, String)>>| -> Vec<(i64, String, String)> {
        let log = log.lock().expect("not poisoned");
        log.iter()
            .filter(|(r, _, _)| *r <= until)
            .cloned()
            .collect()
    };
    let reference = upto(&logs[2]);
    assert!(
        reference.windows(2).all(|p| p[0].0 < p[1].0),
        "revisions increase"
    );
    for (at, log) in logs.iter().enumerate() {
        let got = upto(log);
        if got != reference {
            let missing: Vec<_> = reference.iter().filter(|e| !got.contains(e)).collect();
            let extra: Vec<_> = got.iter().filter(|e| !reference.contains(e)).collect();
            panic!(
                "reader {at} ({} events) differs from the reference ({}): missing {missing:?}, \
                 extra {extra:?}",
                got.len(),
                reference.len()
            );
        }
    }
    for (id, _) in &acked {
        assert!(
            reference
                .iter()
                .any(|(_, kind, subject)| kind == "created" && subject == id),
            "no created event for {id}"
        );
    }

    // Gateway clients: A's continued on B with their session ids, at most the call in flight at
    // the kill failing; B's never failed.
    for outcome in &outcomes {
        let on_a = outcome.client < 2;
        assert!(outcome.ok_first > 0, "{outcome:?}");
        if on_a {
            assert!(
                outcome.moved && outcome.ok_moved > 0,
                "continued on B: {outcome:?}"
            );
        }
        assert!(outcome.failed.len() <= usize::from(on_a), "{outcome:?}");
        for failure in &outcome.failed {
            assert!(
                failure.starts_with("transport: "),
                "a clear error: {failure}"
            );
        }
    }
    eprintln!(
        "cluster: {} writes acknowledged ({} failed on the killed replica), {} events per reader, \
         gateway clients {outcomes:?}",
        acked.len(),
        refused[&0],
        reference.len()
    );

    gw_b.start_kill().expect("kill");
    let _ = gw_b.wait().await;
    for r in registries {
        r.terminate().await;
    }
}

fn client(url: &str) -> RegistryClient {
    RegistryClient::new(url).expect("registry client")
}

/// Registers `w<w>-<i>` on `urls[w]` every 150 ms until `stop`, each entry's health checked at
/// `base`; when that replica fails, goes on with the next, as a load balancer would. Returns
/// how many writes were not acknowledged.
async fn write(
    w: usize,
    urls: Vec<String>,
    base: String,
    acked: Acked,
    stop: CancellationToken,
) -> (usize, usize) {
    let http = reqwest::Client::new();
    let mut refused = 0;
    let mut on = w;
    let mut tick = tokio::time::interval(Duration::from_millis(150));
    for i in 0.. {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let id = format!("w{w}-{i}");
        let url = &urls[on];
        let sent = http
            .post(format!("{url}/servers"))
            .timeout(Duration::from_secs(10))
            .json(&json!({
                "id": id, "name": id, "url": base, "version": "1.0.0",
                "healthUrl": format!("{base}/health/{id}"),
            }))
            .send()
            .await;
        match sent {
            Ok(res) if res.status() == 201 => acked
                .lock()
                .expect("not poisoned")
                .push((id, Instant::now())),
            Ok(res) => panic!("{id} on {url}: {}", res.status()),
            Err(_) => {
                refused += 1;
                on = (on + 1) % urls.len();
            }
        }
    }
    (w, refused)
}

/// Follows the feed from `since`, starting on `urls[at]`; when its stream fails, resumes on the
/// next replica after the last change it got. Returns `at` and how often it resumed.
async fn follow(
    urls: Vec<String>,
    at: usize,
    since: i64,
    log: Log,
    stop: CancellationToken,
) -> (usize, usize) {
    let mut on = at;
    let mut feed = ChangeFeed::new(client(&urls[on]), Some(since));
    let mut resumed = 0;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return (at, resumed),
            next = feed.next() => next,
        };
        match next {
            Ok(change) => {
                let subject = change.subject().unwrap_or_default().to_owned();
                log.lock()
                    .expect("not poisoned")
                    .push((change.revision, change.kind, subject));
            }
            Err(_) => {
                on = (on + 1) % urls.len();
                feed = ChangeFeed::new(client(&urls[on]), feed.revision());
                resumed += 1;
                assert!(resumed < 100, "reader {at} cannot resume anywhere");
            }
        }
    }
}

/// What one gateway client saw.
#[derive(Debug)]
struct Outcome {
    client: usize,
    /// Calls answered by the gateway it started on.
    ok_first: usize,
    /// Calls answered by gateway B after it moved there.
    ok_moved: usize,
    moved: bool,
    failed: Vec<String>,
}

/// Calls the tool in `session` on `first` every 100 ms until `stop`; when `first` is gone,
/// goes on in the same session on `b`, as a load balancer would send it.
async fn use_tools(
    client: usize,
    session: String,
    first: String,
    b: String,
    stop: CancellationToken,
) -> Outcome {
    let mut outcome = Outcome {
        client,
        ok_first: 0,
        ok_moved: 0,
        moved: false,
        failed: Vec::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for n in 2.. {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let on = if outcome.moved { &b } else { &first };
        match call(on, &session, n).await {
            Ok(()) if outcome.moved => outcome.ok_moved += 1,
            Ok(()) => outcome.ok_first += 1,
            // The request reached no one: the balancer sends it to the live gateway.
            Err(Failure::Refused) if !outcome.moved && first != b => outcome.moved = true,
            Err(Failure::Refused) => outcome.failed.push(format!("refused by {on}")),
            Err(Failure::Failed(e)) => {
                outcome.failed.push(e);
                outcome.moved |= first != b;
            }
        }
    }
    outcome
}

enum Failure {
    /// The connection was refused: the request reached no one.
    Refused,
    /// The call failed, with what the client saw.
    Failed(String),
}

/// `tools/call` of [`TOOL`] in `session` at `mcp` (request id `n`): `Ok` for a result that is
/// not an error.
async fn call(mcp: &str, session: &str, n: u64) -> Result<(), Failure> {
    let sent = reqwest::Client::new()
        .post(mcp)
        .timeout(Duration::from_secs(10))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": TOOL, "arguments": {"query": "lap"}}}))
        .send()
        .await;
    let res = match sent {
        Err(e) if e.is_connect() => return Err(Failure::Refused),
        Err(e) => return Err(Failure::Failed(format!("transport: {e}"))),
        Ok(res) => res,
    };
    let status = res.status();
    let text = res
        .text()
        .await
        .map_err(|e| Failure::Failed(format!("transport: {e}")))?;
    if !status.is_success() {
        return Err(Failure::Failed(format!("{status}: {text}")));
    }
    // A JSON body, or SSE events one of which answers the request.
    let answer = std::iter::once(text.as_str())
        .chain(text.lines().filter_map(|l| l.strip_prefix("data:")))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|m| m["id"] == json!(n))
        .ok_or_else(|| Failure::Failed(format!("no answer in {text}")))?;
    if answer["result"].is_object() && answer["result"]["isError"] != json!(true) {
        Ok(())
    } else {
        Err(Failure::Failed(format!("error answer: {answer}")))
    }
}
