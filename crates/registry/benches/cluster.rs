//! Run with: `scripts/bench` (or `cargo build --release -p mcp-fleet && eval "$(scripts/pg start)"
//! && cargo bench -p mcp-fleet-registry --bench cluster`).
//!
//! Three replicas of the release binary (`target/release/mcp-fleet`, or `MCP_FLEET_BIN`), each
//! `mcp-fleet serve` on one PostgreSQL database (`MCP_FLEET_TEST_POSTGRES_URL`, which
//! `scripts/pg start` prints; each part gets a fresh database):
//!
//! 1. **Propagation across replicas.** `BENCH_CLUSTER_SUBSCRIBERS` (20) clients on `GET /events`
//!    of replicas 2 and 3, and `BENCH_CLUSTER_WRITES` (200) registrations on replica 1, one at
//!    a time: the time from the `POST` being acknowledged to the event arriving at each
//!    subscriber. The next write starts once every subscriber has the event. Target: p99 ≤ 100 ms.
//! 2. **Tag-query throughput, 3 replicas against 1.** `wrk` on one replica, then one `wrk` per
//!    replica at once (the sum), `GET /servers?tags=…` over 1,000 entries. On 2 cores the three
//!    replicas share the same cores, so the ratio shows the cost of replication, not scale.
//! 3. **A shared sweep.** `BENCH_CLUSTER_ENTRIES` (10,000) entries whose `healthUrl` is a
//!    loopback server in this process that counts the probes of each entry, probed by the three
//!    replicas every `BENCH_CLUSTER_INTERVAL` (10 s). After the first full sweep, probes per entry
//!    are counted over `BENCH_CLUSTER_ROUNDS` (3) intervals. Target: exactly 1 per entry per
//!    interval (3 replicas that each probed everything would give 3).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use futures::StreamExt;
use mcp_fleet_test_support::bench::{env_or, quantile};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A replica process, killed when dropped.
struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(binary: &str, database_url: &str, extra: &[&str]) -> Replica {
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            database_url,
        ])
        // One client registers and reads as fast as it can: no rate limits.
        .args(["--write-rate-limit", "0", "--read-rate-limit", "0"])
        .args(extra)
        // Errors only: every replica would warn that writes are open.
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e} (scripts/bench builds it)"));
    let stdout = child.stdout.take().expect("stdout");
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .expect("the replica never said where it listens");
    Replica { child, url }
}

fn registration(i: usize, health_base: Option<&str>) -> serde_json::Value {
    let mut tags = vec!["fleet".to_string(), format!("team-{}", i % 7)];
    if i.is_multiple_of(10) {
        tags.push("target".into());
    }
    let mut entry = serde_json::json!({
        "id": format!("server-{i:05}"),
        "name": format!("Server number {i}"),
        "description": "A server registered by the benchmark, with a description of ordinary length.",
        "url": format!("http://10.1.{}.{}:8080", i / 250, i % 250),
        "version": "1.4.2",
        "tags": tags,
        "metadata": {"team": format!("team-{}", i % 7), "region": "eu-west-1"},
        "healthCheck": {"mode": "none"},
    });
    if let Some(base) = health_base {
        entry["url"] = format!("{base}/s/{i}").into();
        entry["healthUrl"] = format!("{base}/h/{i}").into();
        entry["healthCheck"] = serde_json::json!({"mode": "http"});
    }
    entry
}

async fn register(http: &reqwest::Client, url: &str, entries: usize, health_base: Option<&str>) {
    futures::stream::iter(0..entries)
        .map(|i| async move {
            let res = http
                .post(format!("{url}/servers"))
                .json(&registration(i, health_base))
                .send()
                .await
                .expect("POST");
            assert!(res.status().is_success(), "POST: {}", res.status());
        })
        .buffer_unordered(32)
        .collect::<()>()
        .await;
}

/// A fresh database in the benchmark's PostgreSQL cluster.
async fn database() -> String {
    mcp_fleet_test_support::postgres()
        .await
        .expect(
            "set MCP_FLEET_TEST_POSTGRES_URL (eval \"$(scripts/pg start)\"); scripts/bench does",
        )
        .url
}

#[derive(Default)]
struct Progress {
    received: AtomicUsize,
    all: Notify,
}

/// Reads `GET /events` until `writes` events came; the arrival time of each.
async fn subscribe(
    mut res: reqwest::Response,
    writes: usize,
    progress: Arc<Progress>,
) -> Vec<Instant> {
    let mut arrived = Vec::with_capacity(writes);
    let mut buf: Vec<u8> = Vec::new();
    while arrived.len() < writes {
        let chunk = res
            .chunk()
            .await
            .expect("stream failed")
            .expect("stream ended");
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            if block.starts_with(b"id: ") {
                arrived.push(now);
                progress.received.fetch_add(1, Ordering::SeqCst);
                progress.all.notify_one();
            }
        }
    }
    arrived
}

async fn propagation(binary: &str, subscribers: usize, writes: usize) -> Vec<Duration> {
    let db = database().await;
    let replicas: Vec<Replica> = (0..3)
        .map(|_| replica(binary, &db, &["--no-health-worker"]))
        .collect();
    let http = reqwest::Client::new();
    let progress = Arc::new(Progress::default());
    let mut feeds = Vec::new();
    for s in 0..subscribers {
        let url = &replicas[1 + s % 2].url;
        let res = http
            .get(format!("{url}/events"))
            .send()
            .await
            .expect("GET /events");
        assert!(res.status().is_success());
        feeds.push(tokio::spawn(subscribe(res, writes, progress.clone())));
    }
    let mut acked = Vec::with_capacity(writes);
    for i in 0..writes {
        let res = http
            .post(format!("{}/servers", replicas[0].url))
            .json(&registration(i, None))
            .send()
            .await
            .expect("POST");
        assert!(res.status().is_success(), "POST: {}", res.status());
        acked.push(Instant::now());
        let want = (i + 1) * subscribers;
        while progress.received.load(Ordering::SeqCst) < want {
            tokio::time::timeout(Duration::from_secs(10), progress.all.notified())
                .await
                .expect("a subscriber on another replica waited 10 s for a write");
        }
    }
    let mut samples = Vec::with_capacity(writes * subscribers);
    for feed in feeds {
        let arrived = feed.await.expect("subscriber");
        for (at, ack) in arrived.iter().zip(&acked) {
            samples.push(at.saturating_duration_since(*ack));
        }
    }
    samples.sort();
    samples
}

/// One wrk run on `url`: requests/s.
fn wrk(url: &str, seconds: u64, connections: u64) -> f64 {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            url,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk ({e}); scripts/bench installs it"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("Non-2xx"),
        "wrk: {text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output: {text}"))
}

async fn throughput(binary: &str, seconds: u64) -> (f64, f64) {
    let db = database().await;
    let replicas: Vec<Replica> = (0..3)
        .map(|_| replica(binary, &db, &["--no-health-worker"]))
        .collect();
    let http = reqwest::Client::new();
    register(&http, &replicas[0].url, 1000, None).await;
    let query = "/servers?tags=target&status=any";
    let one = {
        let url = format!("{}{query}", replicas[0].url);
        tokio::task::spawn_blocking(move || wrk(&url, seconds, 32))
            .await
            .expect("wrk")
    };
    let runs: Vec<_> = replicas
        .iter()
        .map(|r| {
            let url = format!("{}{query}", r.url);
            tokio::task::spawn_blocking(move || wrk(&url, seconds, 32))
        })
        .collect();
    let mut three = 0.0;
    for run in runs {
        three += run.await.expect("wrk");
    }
    (one, three)
}

/// What the probe target saw, per entry.
struct Probes {
    started: Instant,
    /// Probes since counting started.
    counts: Vec<AtomicU32>,
    /// When the last probe came, in ms since `started` (0: never).
    last_ms: Vec<AtomicU64>,
    /// Probes that came less than half an interval after the entry's previous one.
    close: AtomicUsize,
    half_interval_ms: u64,
    counting: AtomicBool,
}

struct Sweep {
    entries: usize,
    rounds: u32,
    per_entry: Vec<u32>,
    close: usize,
    never_probed_before_counting: usize,
}

async fn sweep(binary: &str, entries: usize, interval: Duration, rounds: u32) -> Sweep {
    let probes = Arc::new(Probes {
        started: Instant::now(),
        counts: (0..entries).map(|_| AtomicU32::new(0)).collect(),
        last_ms: (0..entries).map(|_| AtomicU64::new(0)).collect(),
        close: AtomicUsize::new(0),
        half_interval_ms: u64::try_from(interval.as_millis() / 2).unwrap_or(u64::MAX),
        counting: AtomicBool::new(false),
    });
    let app = Router::new()
        .route(
            "/h/{i}",
            get(
                |State(p): State<Arc<Probes>>, Path(i): Path<usize>| async move {
                    if let Some(last) = p.last_ms.get(i) {
                        let now = u64::try_from(p.started.elapsed().as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1);
                        let before = last.swap(now, Ordering::Relaxed);
                        if p.counting.load(Ordering::Relaxed) {
                            p.counts[i].fetch_add(1, Ordering::Relaxed);
                            if before != 0 && now - before < p.half_interval_ms {
                                p.close.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    "ok"
                },
            ),
        )
        .with_state(probes.clone());
    let stop = CancellationToken::new();
    let targets = mcp_fleet_test_support::serve(app, stop.clone()).await;

    let db = database().await;
    let interval_arg = format!("{}ms", interval.as_millis());
    let replicas: Vec<Replica> = (0..3)
        .map(|_| replica(binary, &db, &["--health-interval", &interval_arg]))
        .collect();
    let http = reqwest::Client::new();
    register(&http, &replicas[0].url, entries, Some(&targets)).await;
    // The first sweep: every entry probed once.
    let deadline = Instant::now() + interval * 3;
    loop {
        let seen = probes
            .last_ms
            .iter()
            .filter(|f| f.load(Ordering::Relaxed) != 0)
            .count();
        if seen == entries || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let never_probed_before_counting = probes
        .last_ms
        .iter()
        .filter(|f| f.load(Ordering::Relaxed) == 0)
        .count();
    probes.counting.store(true, Ordering::Relaxed);
    tokio::time::sleep(interval * rounds).await;
    probes.counting.store(false, Ordering::Relaxed);
    let per_entry = probes
        .counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    drop(replicas);
    stop.cancel();
    Sweep {
        entries,
        rounds,
        per_entry,
        close: probes.close.load(Ordering::Relaxed),
        never_probed_before_counting,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let binary = std::env::var("MCP_FLEET_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/release/mcp-fleet"
        )
        .to_string()
    });
    let subscribers = env_or("BENCH_CLUSTER_SUBSCRIBERS", 20);
    let writes = env_or("BENCH_CLUSTER_WRITES", 200);
    let seconds = env_or("BENCH_SECONDS", 5);
    let entries = env_or("BENCH_CLUSTER_ENTRIES", 10_000);
    let interval = Duration::from_secs(env_or("BENCH_CLUSTER_INTERVAL", 10));
    let rounds = env_or("BENCH_CLUSTER_ROUNDS", 3);
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    println!("\n## cluster: 3 replicas of mcp-fleet serve on one PostgreSQL\n");
    let samples = rt.block_on(propagation(&binary, subscribers, writes));
    let p99 = quantile(&samples, 0.99);
    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!(
        "| cross-replica propagation p50 ({writes} writes on replica 1, {subscribers} subscribers on replicas 2 and 3) | {} | |",
        ms(quantile(&samples, 0.5))
    );
    println!(
        "| cross-replica propagation p99 | {} | ≤ 100 ms: {} |",
        ms(p99),
        if p99 <= Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );

    let (one, three) = rt.block_on(throughput(&binary, seconds));
    println!("| tag query, 1 replica | {one:.0} req/s | |");
    println!("| tag query, 3 replicas at once (sum) | {three:.0} req/s | |");
    println!(
        "| 3 replicas / 1 | {:.2}× | reported (2 cores) |",
        three / one
    );

    let sweep = rt.block_on(sweep(&binary, entries, interval, rounds));
    let total: u64 = sweep.per_entry.iter().map(|&n| u64::from(n)).sum();
    let max = sweep.per_entry.iter().copied().max().unwrap_or(0);
    let min = sweep.per_entry.iter().copied().min().unwrap_or(0);
    let per = total as f64 / (sweep.entries as f64 * f64::from(sweep.rounds));
    println!(
        "| shared sweep of {} entries, {} intervals of {:?}: probes per entry per interval | {per:.3} (per entry: min {min}, max {max} in {} intervals; ±10% jitter moves one in or out) | 1 |",
        sweep.entries, sweep.rounds, interval, sweep.rounds,
    );
    println!(
        "| probes that came within half an interval of the entry's previous one (two replicas probing it) | {} | 0: {} |",
        sweep.close,
        if sweep.close == 0 && (per - 1.0).abs() < 0.05 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "| entries not probed within 3 intervals of registering | {} | 0 |",
        sweep.never_probed_before_counting
    );
}
