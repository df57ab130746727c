//! Run with: `scripts/bench` (or `cargo build --release -p mcp-fleet && cargo bench -p
//! mcp-fleet-registry --bench feed`).
//!
//! Change propagation and memory, on SQLite:
//!
//! 1. **Propagation.** A registry in this process (no health worker), `BENCH_FEED_SUBSCRIBERS`
//!    (100) clients on `GET /events` over loopback, and `BENCH_FEED_WRITES` (200) registrations
//!    one at a time: for each, the time from the `POST /servers` being acknowledged (its
//!    response received) to the event arriving at each subscriber, and from the `POST` being
//!    sent. The next write starts once every subscriber has the event, so each sample is one
//!    change's propagation, not a queue. An event that arrives before the acknowledgement
//!    counts as 0. Target: p99 under 50 ms.
//! 2. **Memory.** The release binary (`target/release/mcp-fleet`, or `MCP_FLEET_BIN`) started as
//!    `serve --no-health-worker` on a fresh SQLite file, `BENCH_RSS_ENTRIES` (100,000) entries
//!    registered through HTTP (32 at a time), then every page read at each page size (100 and
//!    1,000, and by tag) and `GET /status`, twice over. Its RSS (`VmRSS` in `/proc/<pid>/status`)
//!    after each step, and its peak (`VmHWM`); both figures, registered and everything read,
//!    are printed last. Target: under 150 MB whatever is read (issue #23, item 11: the read
//!    cache is bounded by `--read-cache-max-bytes`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mcp_fleet_registry::{AppState, Config};
use mcp_fleet_test_support::bench::{env_or, quantile, rss};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn registration(prefix: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "id": format!("{prefix}-{i:06}"),
        "name": format!("Server number {i}"),
        "description": "A server registered by the benchmark, with a description of ordinary length.",
        "url": format!("http://10.{}.{}.{}:8080", i / 65536, (i / 256) % 256, i % 256),
        "version": "1.4.2",
        "tags": ["fleet", format!("team-{}", i % 7)],
        "auth": {"type": "bearer"},
        "healthUrl": format!("http://10.{}.{}.{}:8080/health", i / 65536, (i / 256) % 256, i % 256),
        "metadata": {"team": format!("team-{}", i % 7), "region": "eu-west-1"},
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Counts events across subscribers, so the writer knows when all have the latest.
#[derive(Default)]
struct Progress {
    received: AtomicUsize,
    target: AtomicUsize,
    all: Notify,
}

/// One subscriber: reads events off `GET /events` and notes when each arrived, until `writes`
/// events have come. Checks that the n-th event is the n-th write.
async fn subscribe(res: reqwest::Response, writes: usize, progress: Arc<Progress>) -> Vec<Instant> {
    let mut res = res;
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
            if !block.starts_with(b"id: ") {
                continue; // a comment
            }
            let want = format!("\"id\":\"feed-{:06}\"", arrived.len());
            assert!(
                String::from_utf8_lossy(&block).contains(&want),
                "event {} is not write {}",
                String::from_utf8_lossy(&block),
                arrived.len()
            );
            arrived.push(now);
            let n = progress.received.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= progress.target.load(Ordering::SeqCst) {
                progress.all.notify_one();
            }
        }
    }
    arrived
}

struct Propagation {
    from_ack: Vec<Duration>,
    from_send: Vec<Duration>,
    subscribers: usize,
    writes: usize,
}

async fn propagation(subscribers: usize, writes: usize) -> Propagation {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("feed.db").display());
    let store = mcp_fleet_store::connect(&db_url).await.expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let state = AppState::new(store, Config::default());
    tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));

    let http = reqwest::Client::new();
    let progress = Arc::new(Progress::default());
    let mut readers = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let res = http
            .get(format!("{url}/events"))
            .send()
            .await
            .expect("GET /events");
        assert_eq!(res.status(), 200);
        // The response means the registry holds the subscription.
        readers.push(tokio::spawn(subscribe(res, writes, progress.clone())));
    }

    let mut sent = Vec::with_capacity(writes);
    let mut acked = Vec::with_capacity(writes);
    for i in 0..writes {
        progress
            .target
            .store((i + 1) * subscribers, Ordering::SeqCst);
        let body = registration("feed", i);
        let t_send = Instant::now();
        let res = http
            .post(format!("{url}/servers"))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let t_ack = Instant::now();
        assert!(res.status().is_success(), "POST: {}", res.status());
        sent.push(t_send);
        acked.push(t_ack);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while progress.received.load(Ordering::SeqCst) < (i + 1) * subscribers {
            tokio::time::timeout_at(deadline, progress.all.notified())
                .await
                .expect("an event never reached every subscriber");
        }
    }
    let mut from_ack = Vec::with_capacity(writes * subscribers);
    let mut from_send = Vec::with_capacity(writes * subscribers);
    for reader in readers {
        let arrived = reader.await.expect("subscriber");
        for (i, at) in arrived.iter().enumerate() {
            from_ack.push(at.saturating_duration_since(acked[i]));
            from_send.push(at.saturating_duration_since(sent[i]));
        }
    }
    shutdown.cancel();
    from_ack.sort();
    from_send.sort();
    Propagation {
        from_ack,
        from_send,
        subscribers,
        writes,
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Memory {
    binary: String,
    entries: usize,
    register_time: Duration,
    rows: Vec<(String, f64)>,
    /// RSS once every entry is registered, before anything is read.
    registered: f64,
    peak: f64,
}

/// Lists every page of `GET /servers?{query}`; returns how many entries it listed.
async fn list_every_page(http: &reqwest::Client, url: &str, query: &str) -> usize {
    let mut cursor: Option<String> = None;
    let mut listed = 0;
    loop {
        let mut page = format!("{url}/servers?{query}");
        if let Some(c) = &cursor {
            page.push_str(&format!("&cursor={c}"));
        }
        let body: serde_json::Value = http
            .get(page)
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        listed += body["servers"].as_array().map_or(0, Vec::len);
        match body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return listed,
        }
    }
}

async fn memory(binary: &str, entries: usize) -> Memory {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("rss.db");
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-health-worker",
            // One client registers every entry as fast as it can: no rate limit.
            "--write-rate-limit",
            "0",
            "--read-rate-limit",
            "0",
            "--database-url",
            &format!("sqlite://{}", db.display()),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let pid = server.0.id();
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .expect("the server never said where it listens");

    let mut rows = Vec::new();
    rows.push(("started, empty".to_string(), rss(pid).0));
    let http = reqwest::Client::new();
    let started = Instant::now();
    let done = AtomicUsize::new(0);
    futures::stream::iter(0..entries)
        .map(|i| {
            let (http, url, done) = (&http, &url, &done);
            async move {
                let res = http
                    .post(format!("{url}/servers"))
                    .json(&registration("rss", i))
                    .send()
                    .await
                    .expect("POST");
                assert!(res.status().is_success(), "POST: {}", res.status());
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(10_000) {
                    eprintln!("  {n} registered ({:.0?})", started.elapsed());
                }
            }
        })
        .buffer_unordered(32)
        .collect::<()>()
        .await;
    let register_time = started.elapsed();
    let registered = rss(pid).0;
    rows.push((format!("{entries} entries registered"), registered));

    // Everything a client can read: every page at the default size (100) and at 1,000, by tag
    // too, and `/status`, twice, so that no answer the cache could keep is left unasked.
    let mut status_bytes = 0;
    for _ in 0..2 {
        for query in [
            "status=any",
            "status=any&limit=1000",
            "status=any&limit=1000&tags=fleet",
        ] {
            let listed = list_every_page(&http, &url, query).await;
            assert_eq!(listed, entries, "the listing ({query}) missed entries");
        }
        status_bytes = http
            .get(format!("{url}/status"))
            .send()
            .await
            .expect("GET /status")
            .bytes()
            .await
            .expect("body")
            .len();
    }
    rows.push((
        format!(
            "then every page read (limits 100 and 1,000, and by tag) and /status ({:.1} MiB), \
             twice",
            status_bytes as f64 / (1024.0 * 1024.0)
        ),
        rss(pid).0,
    ));
    let peak = rss(pid).1;
    drop(server);
    Memory {
        binary: binary.to_string(),
        entries,
        register_time,
        rows,
        registered,
        peak,
    }
}

fn main() {
    let subscribers = env_or("BENCH_FEED_SUBSCRIBERS", 100);
    let writes = env_or("BENCH_FEED_WRITES", 200);
    let entries = env_or("BENCH_RSS_ENTRIES", 100_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    let p = rt.block_on(propagation(subscribers, writes));
    println!(
        "\nChange propagation on SQLite: {} subscribers on GET /events, {} registrations one at \
         a time ({} samples)\n",
        p.subscribers,
        p.writes,
        p.from_ack.len()
    );
    println!("| from | p50 | p99 | max |\n|---|---|---|---|");
    for (label, samples) in [
        ("POST acknowledged to event at subscriber", &p.from_ack),
        ("POST sent to event at subscriber", &p.from_send),
    ] {
        println!(
            "| {label} | {} | {} | {} |",
            ms(quantile(samples, 0.5)),
            ms(quantile(samples, 0.99)),
            ms(quantile(samples, 1.0))
        );
    }
    println!("\nTarget: p99 from acknowledgement under 50 ms.");

    let binary = std::env::var("MCP_FLEET_BIN").unwrap_or_else(|_| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        root.join("target/release/mcp-fleet").display().to_string()
    });
    if !std::path::Path::new(&binary).exists() {
        println!(
            "\nMemory: skipped, no {binary} (build it with `cargo build --release -p mcp-fleet`, \
             as scripts/bench does, or set MCP_FLEET_BIN)"
        );
        return;
    }
    let m = rt.block_on(memory(&binary, entries));
    println!(
        "\nMemory of `{} serve --no-health-worker` (a separate process) on SQLite; {} entries \
         registered over HTTP in {:.0?} ({:.0}/s, 32 at a time)\n",
        m.binary,
        m.entries,
        m.register_time,
        m.entries as f64 / m.register_time.as_secs_f64()
    );
    println!("| after | RSS |\n|---|---|");
    for (label, mib) in &m.rows {
        println!("| {label} | {mib:.1} MiB ({:.0} MB) |", mib * 1.048_576);
    }
    println!(
        "| (peak, VmHWM) | {:.1} MiB ({:.0} MB) |",
        m.peak,
        m.peak * 1.048_576
    );
    let read = m.rows.last().map_or(0.0, |(_, mib)| *mib);
    println!(
        "\nRSS with {} entries: {:.0} MB registered, {:.0} MB once everything was read \
         (read cache bound: --read-cache-max-bytes, default {} MiB).",
        m.entries,
        m.registered * 1.048_576,
        read * 1.048_576,
        mcp_fleet_registry::DEFAULT_READ_CACHE_MAX_BYTES / (1024 * 1024)
    );
    println!("Target: under 150 MB whatever is read.");
}
