//! Run with: `scripts/bench` (or `cargo bench -p mcp-fleet-registry --bench sweep`).
//!
//! Full health sweeps on loopback: 10,000 entries, one in ten pointing at black-hole listeners
//! that accept connections and never answer, the rest at a fast local health server. Reports each
//! sweep's wall time as a ratio of the 2 s probe timeout (target: at most 1.5, on the median
//! round), and the p99 latency of `GET /servers?tags=<tag on 1% of entries>` while the sweeps
//! run against the same query with the worker idle (target: at most 1.5x). The read cache is
//! off, so every query reads SQLite.
//!
//! The registry is seeded once; each round (`SWEEP_ROUNDS`, default 5) starts a registry on a
//! fresh copy of it, as it was before any probe, sends the query for about a sweep's length
//! with no worker, then starts the worker and sends it again until every entry has been probed.
//! The p99s pool every round's queries: one sweep gives ~560 of them, whose p99 is the sixth
//! slowest, which one hiccup of this machine decides; and the idle queries come just before each
//! sweep, because the machine's noise drifts over tens of seconds.
//!
//! The fleet (health server and black holes), the registry (API and health worker) and the query
//! client run on separate Tokio runtimes, as they would in separate processes, so that one's task
//! queue does not delay another's; they still share the machine's cores.
//!
//! Two control rows, measured in the first round, show what any CPU use costs the queries' tail
//! on the machine: the same queries while one thread at nice 19 spins, then one per core, and no
//! sweep runs.
//!
//! What this bench found the tail during a sweep is, and is not, is in docs/perf.md (health
//! sweep).
//!
//! Settings: `SWEEP_ENTRIES` (default 10000), `SWEEP_ROUNDS` (5), `SWEEP_QUERY_RATE` (queries a
//! second, default 200), `SWEEP_TIMELINE=1` (print to stderr, for each 100 ms of each sweep, the
//! probes finished and the fleet's requests so far, then the slowest query),
//! `SWEEP_WORKER`: `in-process` (default: `AppState::start_health_worker`, in the API's process,
//! as `serve` runs it) or `separate` (`spawn_health_worker` on a runtime of its own, as the
//! `health-worker` process runs it).
//!
//! Over 500 lines: one benchmark with the fleet it sweeps (counting targets, black holes) and its
//! report.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use mcp_fleet_model::HealthStatus;
use mcp_fleet_registry::{AppState, Config, HealthConfig};
use mcp_fleet_test_support::bench::{cpu_spent, env_or, thread_cpu};
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mcp_fleet_test_support::bench_allocator!();

/// Time limit of one probe; the sweep is measured against it.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Most probes in flight (the worker's default).
const CONCURRENCY: usize = 1024;
/// Listeners the black-hole entries share.
const BLACK_HOLES: usize = 8;
/// Registrations in flight while seeding.
const SEED_IN_FLIGHT: usize = 32;
/// Sweeps measured, each on a fresh copy of the seeded registry (`SWEEP_ROUNDS`).
const DEFAULT_ROUNDS: usize = 5;
/// How long the idle queries before each sweep are sent for: about one sweep's length.
const IDLE_WINDOW: Duration = Duration::from_secs(3);
/// Queries of each control row.
const CONTROL_QUERIES: usize = 2000;
/// Queries sent before measuring, to open the connection and warm SQLite's page cache.
const WARM_UP_QUERIES: usize = 100;
/// A sweep slower than this is a failure, not a measurement.
const SWEEP_LIMIT: Duration = Duration::from_secs(30);
/// How often the worker's probe counter is read.
const POLL_EVERY: Duration = Duration::from_millis(5);
const QUERY: &str = "/servers?tags=target&status=any&limit=100";
const SWEEP_TARGET: f64 = 1.5;
const P99_TARGET: f64 = 1.5;

fn is_black_hole(i: usize) -> bool {
    i.is_multiple_of(10)
}

/// One entry in a hundred carries the queried tag, at an offset that shifts from one hundred to
/// the next, so that one in ten of the tag's entries is a black hole, as in the whole fleet.
fn is_tagged(i: usize) -> bool {
    i % 100 == (i / 100) % 10
}

fn registration(i: usize, fast: SocketAddr, holes: &[SocketAddr]) -> serde_json::Value {
    let addr = if is_black_hole(i) {
        holes[(i / 10) % holes.len()]
    } else {
        fast
    };
    let mut tags = vec!["fleet".to_string(), format!("team-{}", i % 7)];
    if is_tagged(i) {
        tags.push("target".into());
    }
    serde_json::json!({
        "id": format!("server-{i:05}"),
        "name": format!("Server number {i}"),
        "description": "A server registered by the sweep benchmark, with a description of ordinary length.",
        "url": format!("http://{addr}"),
        "version": "1.4.2",
        "tags": tags,
        "healthUrl": format!("http://{addr}/health"),
        "metadata": {"team": format!("team-{}", i % 7), "region": "eu-west-1"},
    })
}

/// What the fleet saw, in microseconds since `base`, for the timeline of the sweep.
struct Marks {
    base: Instant,
    fast_hits: AtomicU64,
    last_fast: AtomicU64,
    hole_hits: AtomicU64,
    first_hole: AtomicU64,
    last_hole: AtomicU64,
}

impl Marks {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            fast_hits: AtomicU64::new(0),
            last_fast: AtomicU64::new(0),
            hole_hits: AtomicU64::new(0),
            first_hole: AtomicU64::new(u64::MAX),
            last_hole: AtomicU64::new(0),
        }
    }

    /// Forgets what an earlier round saw.
    fn reset(&self) {
        for counter in [
            &self.fast_hits,
            &self.last_fast,
            &self.hole_hits,
            &self.last_hole,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.first_hole.store(u64::MAX, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn fast_hit(&self) {
        self.fast_hits.fetch_add(1, Ordering::Relaxed);
        self.last_fast.fetch_max(self.now(), Ordering::Relaxed);
    }

    fn hole_hit(&self) {
        let now = self.now();
        self.hole_hits.fetch_add(1, Ordering::Relaxed);
        self.first_hole.fetch_min(now, Ordering::Relaxed);
        self.last_hole.fetch_max(now, Ordering::Relaxed);
    }

    /// `mark` as seconds after `t0`; `None` when it never happened.
    fn after(&self, mark: &AtomicU64, t0: Instant) -> Option<f64> {
        let us = mark.load(Ordering::Relaxed);
        if us == 0 || us == u64::MAX {
            return None;
        }
        let at = self.base + Duration::from_micros(us);
        Some(at.saturating_duration_since(t0).as_secs_f64())
    }
}

/// A loopback listener with a backlog deep enough for a thousand connections at once.
fn listen() -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(4096)
}

/// The health server the healthy 90% point at: `200 ok` on `/health`.
async fn fast_server(
    marks: Arc<Marks>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = listen()?;
    let addr = listener.local_addr()?;
    let router = Router::new().route(
        "/health",
        get(move || {
            marks.fast_hit();
            async { "ok" }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    Ok(addr)
}

/// Accepts every connection and holds it open, unread, until `release` or shutdown: the prober
/// sees a server that never answers and must run into its timeout.
async fn black_hole(
    listener: TcpListener,
    marks: Arc<Marks>,
    release: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut held = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = release.notified() => held.clear(),
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    marks.hole_hit();
                    held.push(socket);
                }
                Err(e) => {
                    eprintln!("sweep: black hole cannot accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

async fn seed(
    registry: &str,
    entries: usize,
    fast: SocketAddr,
    holes: &[SocketAddr],
) -> Result<(), String> {
    let http = http_client()?;
    let url = format!("{registry}/servers");
    let mut answers = futures::stream::iter(0..entries)
        .map(|i| {
            let request = http.post(&url).json(&registration(i, fast, holes));
            async move {
                let res = request
                    .send()
                    .await
                    .map_err(|e| format!("registering entry {i}: {e}"))?;
                if res.status().is_success() {
                    Ok(())
                } else {
                    let status = res.status();
                    let body = res.text().await.unwrap_or_default();
                    Err(format!("registering entry {i}: HTTP {status}: {body}"))
                }
            }
        })
        .buffer_unordered(SEED_IN_FLIGHT);
    while let Some(answer) = answers.next().await {
        answer?;
    }
    Ok(())
}

/// When a query was sent, and how long its answer took.
type Sample = (Instant, Duration);

async fn query(http: reqwest::Client, url: Arc<str>) -> Result<bytes::Bytes, String> {
    let res = http
        .get(&*url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e:?}"))?;
    if !res.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", res.status()));
    }
    res.bytes().await.map_err(|e| format!("GET {url}: {e}"))
}

/// Sends the tag query from a thread and runtime of its own: [`WARM_UP_QUERIES`] one at a time
/// (checking the first answer), then signals `ready` and sends `rate` queries a second, each on
/// its own task, `count` of them or until `stop`. Sending on schedule whether or not earlier
/// answers came back is what makes a stall count: a client that waits for each answer sends
/// almost nothing while the registry stalls, and its percentiles miss the stall.
fn spawn_queries(
    url: String,
    expected: usize,
    rate: u32,
    count: Option<usize>,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<()>,
) -> JoinHandle<Result<Vec<Sample>, String>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the query runtime: {e}"))?;
        rt.block_on(async {
            let http = http_client()?;
            let url: Arc<str> = url.into();
            let body = query(http.clone(), url.clone()).await?;
            let listed = serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| format!("GET {url}: not JSON: {e}"))?["servers"]
                .as_array()
                .map_or(0, Vec::len);
            if listed != expected {
                return Err(format!(
                    "GET {url} listed {listed} entries, expected {expected}"
                ));
            }
            for _ in 1..WARM_UP_QUERIES {
                query(http.clone(), url.clone()).await?;
            }
            let _ = ready.send(());
            let period = Duration::from_secs(1) / rate.max(1);
            let start = tokio::time::Instant::now();
            let mut in_flight = tokio::task::JoinSet::new();
            let mut samples = Vec::with_capacity(count.unwrap_or(4096));
            let mut sent = 0;
            while count.is_none_or(|n| sent < n) && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep_until(start + period * sent as u32).await;
                let (http, url) = (http.clone(), url.clone());
                in_flight.spawn(async move {
                    let sent_at = Instant::now();
                    query(http, url).await.map(|_| (sent_at, sent_at.elapsed()))
                });
                sent += 1;
                while let Some(done) = in_flight.try_join_next() {
                    samples.push(done.map_err(|e| format!("query task: {e}"))??);
                }
            }
            while let Some(done) = in_flight.join_next().await {
                samples.push(done.map_err(|e| format!("query task: {e}"))??);
            }
            Ok(samples)
        })
    })
}

fn join(handle: JoinHandle<Result<Vec<Sample>, String>>) -> Result<Vec<Sample>, String> {
    handle
        .join()
        .map_err(|_| "the query thread panicked".to_string())?
}

/// Latencies, sorted.
struct Latencies(Vec<Duration>);

impl Latencies {
    fn new(samples: impl IntoIterator<Item = Duration>) -> Self {
        let mut v: Vec<Duration> = samples.into_iter().collect();
        v.sort_unstable();
        Self(v)
    }

    /// The nearest-rank percentile `q` (0..=1).
    fn pct(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.0.len() as f64).ceil() as usize).clamp(1, self.0.len());
        self.0[rank - 1]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn secs(s: Option<f64>) -> String {
    s.map_or_else(|| "never".into(), |s| format!("{s:.2} s"))
}

fn verdict(value: f64, target: f64) -> &'static str {
    if value <= target { "met" } else { "**missed**" }
}

fn runtime(name: &str, threads: Option<usize>) -> Result<Runtime, String> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

/// Drops the calling thread to nice 19, the lowest priority of ordinary threads.
fn lowest_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), 19) {
        eprintln!("sweep: cannot lower the spinning thread's priority: {e}");
    }
}

/// TCP connections this machine has opened (`ActiveOpens` in `/proc/net/snmp`), to count the
/// sweep's; `None` where the file is not there.
fn tcp_active_opens() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "ActiveOpens")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

fn main() {
    let shutdown = CancellationToken::new();
    let outcome = run(&shutdown);
    shutdown.cancel();
    if let Err(e) = outcome {
        eprintln!("sweep: {e}");
        std::process::exit(1);
    }
}

fn run(shutdown: &CancellationToken) -> Result<(), String> {
    let entries = env_or("SWEEP_ENTRIES", 10_000).max(1);
    let rounds = env_or("SWEEP_ROUNDS", DEFAULT_ROUNDS).clamp(1, 20);
    let rate = u32::try_from(env_or("SWEEP_QUERY_RATE", 200))
        .unwrap_or(u32::MAX)
        .clamp(1, 10_000);
    let holes_total = (0..entries).filter(|&i| is_black_hole(i)).count();
    let tagged = (0..entries).filter(|&i| is_tagged(i)).count();
    // Every black hole holds two descriptors (both ends live here) until its round ends, and
    // every probe in flight two more.
    let nofile = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|e| format!("cannot raise the open-file limit: {e}"))?;
    let needed = (2 * holes_total + 2 * CONCURRENCY + 1024) as u64;
    if nofile < needed {
        eprintln!("sweep: the open-file limit is {nofile}, under the ~{needed} this run needs");
    }
    let separate = match std::env::var("SWEEP_WORKER").as_deref() {
        Err(_) | Ok("in-process") => false,
        Ok("separate") => true,
        Ok(other) => {
            return Err(format!(
                "SWEEP_WORKER={other:?}: expected in-process (the default) or separate"
            ));
        }
    };
    let timeline = std::env::var_os("SWEEP_TIMELINE").is_some();
    let ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").map_or_else(
        |_| "?".into(),
        |s| s.split_whitespace().collect::<Vec<_>>().join("-"),
    );
    // Other work on the machine shows in the percentiles: say how busy it was.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());

    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary dir: {e}"))?;
    let db_url = |path: &std::path::Path| format!("sqlite://{}", path.display());
    let marks = Arc::new(Marks::new());

    // The fleet is another machine's work: one thread, so the registry keeps the rest.
    let fleet_rt = runtime("fleet", Some(1))?;
    let registry_rt = runtime("registry-api", None)?;
    let separate_rt = runtime("health-separate", Some(1))?;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let release_holes = Arc::new(Notify::new());

    let (fast, holes) = fleet_rt.block_on(async {
        let fast = fast_server(marks.clone(), shutdown.clone())
            .await
            .map_err(|e| format!("cannot start the health server: {e}"))?;
        let mut holes = Vec::new();
        for _ in 0..BLACK_HOLES {
            let listener = listen().map_err(|e| format!("cannot start a black hole: {e}"))?;
            holes.push(
                listener
                    .local_addr()
                    .map_err(|e| format!("black hole address: {e}"))?,
            );
            tokio::spawn(black_hole(
                listener,
                marks.clone(),
                release_holes.clone(),
                shutdown.clone(),
            ));
        }
        Ok::<_, String>((fast, holes))
    })?;

    // Seed one registry, then give every round a copy of it as it was before any probe.
    let seeding = Instant::now();
    let template = db_url(&dir.path().join("seeded.db"));
    {
        let token = shutdown.child_token();
        let registry = registry_rt.block_on(open_registry(&template, token.clone()))?;
        client_rt.block_on(seed(&registry.url, entries, fast, &holes))?;
        token.cancel();
    }
    let copies: Vec<String> = registry_rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&template)
            .await
            .map_err(|e| format!("cannot open {template}: {e}"))?;
        let mut copies = Vec::with_capacity(rounds);
        for r in 0..rounds {
            let path = dir.path().join(format!("round-{r}.db"));
            sqlx::query("VACUUM INTO ?")
                .bind(path.display().to_string())
                .execute(&mut conn)
                .await
                .map_err(|e| format!("cannot copy the seeded registry: {e}"))?;
            copies.push(db_url(&path));
        }
        Ok::<_, String>(copies)
    })?;
    eprintln!(
        "sweep: registered {entries} entries and made {rounds} copies in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let expected = tagged.min(100);
    let idle_queries = (rate as usize * IDLE_WINDOW.as_millis() as usize / 1000).max(1);
    let mut controls = None;
    let mut results = Vec::with_capacity(rounds);
    for (r, copy) in copies.iter().enumerate() {
        let token = shutdown.child_token();
        let registry = registry_rt.block_on(open_registry(copy, token.clone()))?;
        let url = format!("{}{QUERY}", registry.url);
        let queries = |count: Option<usize>, stop: Arc<AtomicBool>| {
            let (ready, warmed) = mpsc::channel();
            let handle = spawn_queries(url.clone(), expected, rate, count, stop, ready);
            (handle, warmed)
        };
        // [`CONTROL_QUERIES`] of the tag query, sent on schedule, while `threads` threads at the
        // lowest priority (nice 19) spin and nothing else runs.
        let spin_run = |threads: usize| -> Result<Latencies, String> {
            let spinning = Arc::new(AtomicBool::new(true));
            let spinners: Vec<_> = (0..threads)
                .map(|_| {
                    let spinning = spinning.clone();
                    std::thread::spawn(move || {
                        lowest_priority();
                        while spinning.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    })
                })
                .collect();
            let run = join(queries(Some(CONTROL_QUERIES), Arc::new(AtomicBool::new(false))).0);
            spinning.store(false, Ordering::Relaxed);
            for s in spinners {
                let _ = s.join();
            }
            Ok(Latencies::new(run?.into_iter().map(|(_, d)| d)))
        };
        // (1) In the first round, the controls: they show what CPU use costs the queries' tail
        // on this machine whatever its priority: with one spinner a core stays free for the
        // API; with one per core, as in a sweep's burst, every request must first take a core
        // back.
        if controls.is_none() {
            controls = Some((spin_run(1)?, spin_run(cores)?));
        }
        // (2) The worker idle (there is none yet), for about as long as a sweep, just before it:
        // this machine's noise drifts over tens of seconds, and the baseline should see the
        // sweep's.
        let idle = join(queries(Some(idle_queries), Arc::new(AtomicBool::new(false))).0)?;
        // (3) The same queries while the sweep runs.
        marks.reset();
        let stop = Arc::new(AtomicBool::new(false));
        let (during, warmed) = queries(None, stop.clone());
        if warmed.recv_timeout(SWEEP_LIMIT).is_err() {
            stop.store(true, Ordering::Relaxed);
            return Err(join(during)
                .err()
                .unwrap_or_else(|| "the query client did not start".into()));
        }
        let swept = sweep_once(
            &registry,
            &registry_rt,
            separate.then_some(&separate_rt),
            &marks,
            entries,
            timeline,
            token.clone(),
        );
        stop.store(true, Ordering::Relaxed);
        let during = join(during);
        let mut round = swept?;
        let t0 = round.t0;
        round.idle = idle.into_iter().map(|(_, d)| d).collect();
        round.during = during?
            .into_iter()
            .filter(|(sent, _)| *sent >= t0 && sent.duration_since(t0) < round.sweep)
            .map(|(sent, d)| (sent.duration_since(t0), d))
            .collect();
        if timeline {
            print_timeline(r, &round.during);
        }
        token.cancel();
        // The black holes let go of this round's connections.
        release_holes.notify_waiters();
        results.push(round);
    }
    let (control, control_all) = controls.ok_or("no round ran")?;

    let mut sweeps: Vec<f64> = results
        .iter()
        .map(|r| r.sweep.as_secs_f64() / TIMEOUT.as_secs_f64())
        .collect();
    sweeps.sort_by(f64::total_cmp);
    let median = sweeps[sweeps.len() / 2];
    let idle = Latencies::new(results.iter().flat_map(|r| r.idle.iter().copied()));
    let during = Latencies::new(
        results
            .iter()
            .flat_map(|r| r.during.iter().map(|(_, d)| *d)),
    );
    let p99_ratio = during.pct(0.99).as_secs_f64() / idle.pct(0.99).as_secs_f64();
    println!(
        "\nHealth sweeps on loopback, SQLite, probe timeout {} s, concurrency {CONCURRENCY}, \
         worker {}; {rounds} rounds, each on a fresh copy of the seeded registry; {cores} cores, \
         load average {load} at start, open-file limit {nofile}, ephemeral ports {ports}\n",
        TIMEOUT.as_secs(),
        if separate {
            "on a runtime of its own (SWEEP_WORKER=separate, as the health-worker process)"
        } else {
            "in-process (AppState::start_health_worker: its own runtime, in the API's process)"
        },
    );
    println!(
        "| round | sweep | / timeout | last health answer / black holes first-last | written | statuses (failed probes) | query p99 idle / during | CPU by thread | TCP connections opened |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (r, round) in results.iter().enumerate() {
        let idle = Latencies::new(round.idle.iter().copied());
        let during = Latencies::new(round.during.iter().map(|(_, d)| *d));
        println!(
            "| {} | {:.2} s | {:.2} | {} / {}-{} | {:.2} s | {} ({}) | {} / {} | {} | {} |",
            r + 1,
            round.sweep.as_secs_f64(),
            round.sweep.as_secs_f64() / TIMEOUT.as_secs_f64(),
            secs(round.last_fast),
            secs(round.first_hole),
            secs(round.last_hole),
            round.written.as_secs_f64(),
            round.statuses,
            round.failures,
            ms(idle.pct(0.99)),
            ms(during.pct(0.99)),
            round
                .cpu
                .iter()
                .map(|(name, s)| format!("{name} {s:.2} s"))
                .collect::<Vec<_>>()
                .join(", "),
            round.opened.map_or_else(|| "?".into(), |n| n.to_string()),
        );
    }
    println!(
        "\nExpected statuses: {} healthy, {holes_total} down.\n",
        entries - holes_total
    );
    println!("| measure | value | target |\n|---|---|---|");
    println!(
        "| entries | {entries}: {} to one fast health server, {holes_total} to {BLACK_HOLES} black-hole listeners | |",
        entries - holes_total
    );
    println!(
        "| sweep / probe timeout, median of {rounds} (all) | {median:.2} ({}) | <= {SWEEP_TARGET:.2}: {} |",
        sweeps
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        verdict(median, SWEEP_TARGET)
    );
    println!(
        "| query p50, worker idle / during the sweeps | {} / {} | |",
        ms(idle.pct(0.5)),
        ms(during.pct(0.5))
    );
    println!(
        "| query p99, worker idle / during the sweeps | {} / {} | |",
        ms(idle.pct(0.99)),
        ms(during.pct(0.99))
    );
    println!(
        "| control: query p99 while one nice-19 thread spins, no sweep (/ idle) | {} ({:.2}) | |",
        ms(control.pct(0.99)),
        control.pct(0.99).as_secs_f64() / idle.pct(0.99).as_secs_f64()
    );
    println!(
        "| control: query p99 while {cores} nice-19 threads spin (one per core), no sweep (/ idle) | {} ({:.2}) | |",
        ms(control_all.pct(0.99)),
        control_all.pct(0.99).as_secs_f64() / idle.pct(0.99).as_secs_f64()
    );
    println!(
        "| query p99 during / idle, all rounds ({} and {} queries) | {p99_ratio:.2} | <= {P99_TARGET:.2}: {} |",
        idle.0.len(),
        during.0.len(),
        verdict(p99_ratio, P99_TARGET)
    );
    if let Some((r, (at, d))) = results
        .iter()
        .enumerate()
        .flat_map(|(r, round)| round.during.iter().map(move |s| (r, *s)))
        .max_by_key(|(_, (_, d))| *d)
    {
        println!(
            "| slowest query during a sweep | {}, round {}, sent {:.2} s after the worker started | |",
            ms(d),
            r + 1,
            at.as_secs_f64()
        );
    }
    println!(
        "\nQuery: `GET {QUERY}` ({expected} of {tagged} tagged entries), {rate} a second on a \
         fixed schedule, read cache off (every request reads SQLite); {idle_queries} idle \
         queries before each sweep.\n"
    );

    shutdown.cancel();
    separate_rt.shutdown_timeout(Duration::from_secs(2));
    registry_rt.shutdown_timeout(Duration::from_secs(2));
    fleet_rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// A registry (API, no worker yet) on `db_url`, serving until `token` is cancelled.
struct Registry {
    url: String,
    state: AppState,
    store: Arc<dyn mcp_fleet_store::Store>,
}

async fn open_registry(db_url: &str, token: CancellationToken) -> Result<Registry, String> {
    let store = mcp_fleet_store::connect(db_url)
        .await
        .map_err(|e| format!("cannot open {db_url}: {e}"))?;
    let config = Config {
        read_cache_ttl: Duration::ZERO,
        ..Config::default()
    };
    let state = AppState::new(store.clone(), config);
    let listener = listen().map_err(|e| format!("cannot listen: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("registry address: {e}"))?;
    tokio::spawn(mcp_fleet_registry::serve(listener, state.clone(), token));
    Ok(Registry {
        url: format!("http://{addr}"),
        state,
        store,
    })
}

/// What one round measured.
struct Round {
    t0: Instant,
    sweep: Duration,
    written: Duration,
    statuses: String,
    failures: u64,
    last_fast: Option<f64>,
    first_hole: Option<f64>,
    last_hole: Option<f64>,
    cpu: Vec<(String, f64)>,
    opened: Option<u64>,
    idle: Vec<Duration>,
    /// Queries sent during the sweep: when, after the worker started, and how long each took.
    during: Vec<(Duration, Duration)>,
}

/// Starts a health worker on `registry` (on `separate`, when given, as the `health-worker`
/// process runs it) and waits until every entry has been probed once, then until every result
/// is in the database.
fn sweep_once(
    registry: &Registry,
    registry_rt: &Runtime,
    separate: Option<&Runtime>,
    marks: &Marks,
    entries: usize,
    timeline: bool,
    token: CancellationToken,
) -> Result<Round, String> {
    let health_config = HealthConfig {
        concurrency: CONCURRENCY,
        timeout: TIMEOUT,
        // One sweep only: the next one is an hour away.
        interval: Duration::from_secs(3600),
        refresh: Duration::from_secs(1),
        ..HealthConfig::default()
    };
    let separate_handle;
    let cpu_before = thread_cpu();
    let opens_before = tcp_active_opens();
    let t0 = Instant::now();
    let health = if let Some(rt) = separate {
        let _in_runtime = rt.enter();
        let (handle, _) =
            mcp_fleet_registry::spawn_health_worker(registry.store.clone(), health_config, token)
                .map_err(|e| e.to_string())?;
        separate_handle = handle;
        &separate_handle
    } else {
        let _in_runtime = registry_rt.enter();
        registry
            .state
            .start_health_worker(health_config, token)
            .map_err(|e| e.to_string())?;
        registry
            .state
            .health()
            .ok_or("the health worker did not start")?
    };
    let target = entries as u64;
    let mut next_mark = Duration::ZERO;
    let sweep = loop {
        let probes = health.stats().probes.load(Ordering::Relaxed);
        if timeline && t0.elapsed() >= next_mark {
            eprintln!(
                "t={:.1}s probes finished {probes}, health answers {}, black-hole connections {}",
                t0.elapsed().as_secs_f64(),
                marks.fast_hits.load(Ordering::Relaxed),
                marks.hole_hits.load(Ordering::Relaxed)
            );
            next_mark += Duration::from_millis(100);
        }
        if probes >= target {
            break t0.elapsed();
        }
        if t0.elapsed() > SWEEP_LIMIT {
            return Err(format!(
                "aborted: the sweep did not finish within {} s ({probes} of {target} entries probed; \
                 {} health answers, {} black-hole connections)",
                SWEEP_LIMIT.as_secs(),
                marks.fast_hits.load(Ordering::Relaxed),
                marks.hole_hits.load(Ordering::Relaxed),
            ));
        }
        std::thread::sleep(POLL_EVERY);
    };
    let cpu = cpu_spent(&cpu_before, &thread_cpu());
    let opened = opens_before.zip(tcp_active_opens()).map(|(a, b)| b - a);

    // When every result is in the database (the worker writes them in batches).
    let (written, counts) = loop {
        let rows: Vec<_> = registry_rt
            .block_on(registry.store.status_rows().try_collect())
            .map_err(|e| format!("cannot read statuses: {e}"))?;
        let count = |s: HealthStatus| rows.iter().filter(|r| r.status == s).count();
        if count(HealthStatus::Unknown) == 0 || t0.elapsed() > SWEEP_LIMIT {
            break (t0.elapsed(), HealthStatus::ALL.map(|s| (s, count(s))));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let statuses = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let round = Round {
        t0,
        sweep,
        written,
        statuses,
        failures: health.stats().probe_failures.load(Ordering::Relaxed),
        last_fast: marks.after(&marks.last_fast, t0),
        first_hole: marks.after(&marks.first_hole, t0),
        last_hole: marks.after(&marks.last_hole, t0),
        cpu,
        opened,
        idle: Vec::new(),
        during: Vec::new(),
    };
    Ok(round)
}

/// For each 100 ms of a sweep, to stderr: queries sent, the slowest, and how many took over 2 ms.
fn print_timeline(round: usize, during: &[(Duration, Duration)]) {
    let mut buckets = std::collections::BTreeMap::<u128, Vec<f64>>::new();
    for (at, d) in during {
        buckets
            .entry(at.as_millis() / 100)
            .or_default()
            .push(d.as_secs_f64() * 1000.0);
    }
    for (b, v) in buckets {
        let max = v.iter().copied().fold(0.0, f64::max);
        let slow = v.iter().filter(|&&x| x > 2.0).count();
        eprintln!(
            "round {} t={:.1}s n={} max={max:.1}ms over2ms={slow}",
            round + 1,
            b as f64 / 10.0,
            v.len()
        );
    }
}
