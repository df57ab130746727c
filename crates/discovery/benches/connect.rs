//! Run with: `scripts/bench` (or `cargo bench -p mcp-fleet-discovery --bench connect`).
//!
//! Discovery's two costs, measured in one run on loopback against a real registry (SQLite) and
//! real rmcp servers in this process:
//!
//! - **connect**: `Discovery::connect` to 100 servers of 20 tools each (registry query,
//!   concurrent initialize + `tools/list`, index build), as a ratio to the same call for a
//!   single server (target: at most 3×), on loopback and with servers that take
//!   `BENCH_REMOTE_MS` (20) to list their tools, as remote ones do. The raw rmcp connect + list
//!   of one server is shown for reference, and so is the process's CPU time per server during
//!   the fleet's loopback connects: spread over every core, it sets the least wall time, and so
//!   the least loopback ratio, a machine of this many cores can reach.
//! - **call**: `Discovery::call_tool` against calling the same tool through an rmcp client
//!   directly, per call (target: under 5 µs of overhead), both on one current-thread client
//!   runtime, and the name lookup alone.
//!
//! Settings: `BENCH_SERVERS` (default 100), `BENCH_TOOLS` (20), `BENCH_ROUNDS` (11 pairs of
//! one connect to the single server and one to the fleet; each ratio is the median of the
//! pairs'), `BENCH_CALLS` (20000 per path: 200 paired blocks of 100, enough that the median
//! difference is steady to about a microsecond).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fleet_discovery::Discovery;
use mcp_fleet_registry::{AppState, Config};
use mcp_fleet_test_support::bench::{EchoServer, env_or, median, process_cpu, tools};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;

mcp_fleet_test_support::bench_allocator!();

/// The wall time of one fresh `Discovery::connect` to the servers tagged `tag`, and the process's
/// CPU time during it (see `process_cpu`).
async fn connect_once(
    registry: &str,
    tag: &str,
    expect_tools: usize,
) -> (Duration, Option<Duration>) {
    let fleet = Discovery::builder(registry)
        .tags([tag])
        .build()
        .expect("builds");
    let cpu_before = process_cpu();
    let started = Instant::now();
    let report = fleet.connect().await.expect("registry answers");
    let took = started.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(fleet.tools().len(), expect_tools);
    fleet.shutdown().await;
    (took, cpu)
}

/// What [`connect_times`] measured.
struct ConnectTimes {
    /// Median wall time of a connect to the one server.
    one: Duration,
    /// Median wall time of a connect to the fleet.
    fleet: Duration,
    /// Median of the pairs' fleet / one ratios.
    ratio: f64,
    /// The process's CPU time (client, servers, registry and kernel work on their behalf) during
    /// the fleet's connects, mean per connect; `None` where it cannot be read.
    fleet_cpu: Option<Duration>,
}

/// Connects to the one server (`solo`) and to the fleet, in adjacent pairs in alternating order,
/// `rounds` times after a warm-up pair. Returns the median time of each and the median of the
/// pairs' ratios: the machine's drift cancels out of each pair.
async fn connect_times(
    registry: &str,
    solo_tools: usize,
    fleet_tools: usize,
    rounds: usize,
) -> ConnectTimes {
    let (mut ones, mut fleets, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut fleet_cpu = Some(Duration::ZERO);
    for round in 0..=rounds {
        let ((one, _), (fleet, cpu)) = if round % 2 == 0 {
            let one = connect_once(registry, "solo", solo_tools).await;
            (one, connect_once(registry, "fleet", fleet_tools).await)
        } else {
            let fleet = connect_once(registry, "fleet", fleet_tools).await;
            (connect_once(registry, "solo", solo_tools).await, fleet)
        };
        // Round 0 warms up connections and code paths.
        if round > 0 {
            ones.push(one);
            fleets.push(fleet);
            ratios.push(fleet.as_secs_f64() / one.as_secs_f64());
            fleet_cpu = fleet_cpu.zip(cpu).map(|(sum, cpu)| sum + cpu);
        }
    }
    ratios.sort_by(f64::total_cmp);
    ConnectTimes {
        one: median(ones),
        fleet: median(fleets),
        ratio: ratios[ratios.len() / 2],
        fleet_cpu: fleet_cpu.map(|sum| sum / rounds as u32),
    }
}

fn main() {
    let servers = env_or("BENCH_SERVERS", 100);
    let per_server = env_or("BENCH_TOOLS", 20);
    let rounds = env_or("BENCH_ROUNDS", 11).max(1);
    let calls = env_or("BENCH_CALLS", 20_000).max(100);
    let remote_ms = env_or("BENCH_REMOTE_MS", 20) as u64;
    let latency = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let stop = CancellationToken::new();
        let dir = tempfile_dir();
        let db_url = format!("sqlite://{}/registry.db", dir.display());
        let store = mcp_fleet_store::connect(&db_url).await.expect("store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let registry = format!("http://{}", listener.local_addr().expect("addr"));
        let state = AppState::new(store, Config::default());
        tokio::spawn(mcp_fleet_registry::serve(listener, state, stop.clone()));
        let client = mcp_fleet_discovery::RegistryClient::new(&registry).expect("client");

        let tool_list = tools(per_server);
        for i in 0..=servers {
            let url = EchoServer::new(tool_list.clone(), latency.clone())
                .start(&stop)
                .await;
            let (id, tag) = if i == servers {
                ("solo".to_owned(), "solo")
            } else {
                (format!("fleet-{i:03}"), "fleet")
            };
            let body = json!({
                "id": id, "name": id, "url": url, "version": "1.0.0", "tags": [tag],
                "auth": {"type": "none"},
            });
            client.register(&body).await.expect("register");
        }

        // Connect: one server, then the fleet, same code path.
        let ConnectTimes {
            one,
            fleet,
            ratio,
            fleet_cpu,
        } = connect_times(&registry, per_server, servers * per_server, rounds).await;
        // The same with servers that take `remote_ms` to list their tools, as remote servers
        // do: what connecting concurrently saves when the network, not the CPU, is the cost.
        latency.store(remote_ms, std::sync::atomic::Ordering::Relaxed);
        let ConnectTimes {
            one: remote_one,
            fleet: remote_fleet,
            ratio: remote_ratio,
            ..
        } = connect_times(&registry, per_server, servers * per_server, rounds).await;
        latency.store(0, std::sync::atomic::Ordering::Relaxed);

        // Reference: rmcp alone, initialize + list, one server.
        let solo = client.get("solo").await.expect("get").expect("registered");
        let solo_mcp = format!("{}/mcp", solo.url);
        let mut raw = Vec::new();
        for _ in 0..=rounds {
            let started = Instant::now();
            let transport = StreamableHttpClientTransport::from_uri(solo_mcp.as_str());
            let peer = ClientConfig::default()
                .serve(transport)
                .await
                .expect("rmcp connects");
            let listed = peer.list_all_tools().await.expect("lists");
            raw.push(started.elapsed());
            assert_eq!(listed.len(), per_server);
            let _ = peer.cancel().await;
        }
        raw.remove(0);
        let raw = median(raw);

        // Calls: Discovery against the rmcp client it wraps, on a client runtime of their own.
        let (via_discovery, via_rmcp, paired_overhead_us) = {
            let (registry, solo_mcp) = (registry.clone(), solo_mcp.clone());
            tokio::task::spawn_blocking(move || measure_calls(&registry, &solo_mcp, calls, false))
                .await
                .expect("the call measurement ran")
        };
        // For reference, the same on a two-thread runtime, where each session's tasks land on
        // whichever thread the scheduler picks.
        let (_, _, shared_overhead_us) = {
            let (registry, solo_mcp) = (registry.clone(), solo_mcp.clone());
            tokio::task::spawn_blocking(move || measure_calls(&registry, &solo_mcp, calls, true))
                .await
                .expect("the call measurement ran")
        };

        // The lookup alone, in the fleet-sized index.
        let big = Discovery::builder(&registry)
            .tags(["fleet"])
            .build()
            .expect("builds");
        big.connect().await.expect("connects");
        let names: Vec<String> = big.tools().into_iter().map(|t| t.qualified_name).collect();
        let lookups = 200_000;
        let started = Instant::now();
        for i in 0..lookups {
            let tool = big.tool(&names[i % names.len()]).expect("found");
            std::hint::black_box(tool);
        }
        let lookup = started.elapsed() / lookups as u32;

        let overhead_us = paired_overhead_us;
        println!();
        println!(
            "discovery: {servers} servers × {per_server} tools, loopback, medians of {rounds} rounds"
        );
        println!("| measurement | value |");
        println!("|---|---|");
        println!(
            "| Discovery::connect, 1 server ({per_server} tools) | {:.1} ms |",
            ms(one)
        );
        println!(
            "| Discovery::connect, {servers} servers ({} tools, index built) | {:.1} ms |",
            servers * per_server,
            ms(fleet)
        );
        println!(
            "| ratio {servers} servers / 1 server, loopback (CPU-bound: the servers share the cores) | {ratio:.2}× |"
        );
        if let Some(cpu) = fleet_cpu {
            // The loopback ratio's floor: the fleet's CPU spread over every core, against one
            // server's wall time.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let per_server_ms = ms(cpu) / servers as f64;
            let needed = (ms(cpu) / (3.0 * ms(one))).ceil();
            let floor = ms(cpu) / cores as f64 / ms(one);
            println!(
                "| CPU per server connected, loopback (client, server, registry and kernel, all in this process) | {per_server_ms:.2} ms: {:.1} ms for {servers}, so ≤ 3× needs ≥ {needed:.0} cores busy throughout; on this machine's {cores} the ratio cannot go below {floor:.1}× |",
                ms(cpu)
            );
        }
        println!(
            "| Discovery::connect, 1 server answering tools/list after {remote_ms} ms | {:.1} ms |",
            ms(remote_one)
        );
        println!(
            "| Discovery::connect, {servers} such servers | {:.1} ms |",
            ms(remote_fleet)
        );
        println!(
            "| ratio {servers} servers / 1 server at {remote_ms} ms (target ≤ 3×) | {remote_ratio:.2}× ({}) |",
            if remote_ratio <= 3.0 { "met" } else { "**missed**" }
        );
        println!(
            "| rmcp alone: initialize + tools/list, 1 server | {:.1} ms |",
            ms(raw)
        );
        println!(
            "| call_tool via Discovery, per call | {:.1} µs |",
            us(via_discovery)
        );
        println!(
            "| call_tool via the rmcp client directly, per call | {:.1} µs |",
            us(via_rmcp)
        );
        println!(
            "| Discovery overhead per call, median of paired blocks, current-thread client (target < 5 µs) | {overhead_us:.1} µs ({}) |",
            if overhead_us < 5.0 { "met" } else { "**missed**" }
        );
        println!(
            "| the same, both on a two-thread runtime (for reference: moves with task placement) | {shared_overhead_us:.1} µs |"
        );
        println!(
            "| name lookup alone (Discovery::tool, {} tools) | {:.0} ns |",
            names.len(),
            lookup.as_secs_f64() * 1e9
        );
        big.shutdown().await;
        stop.cancel();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// `Discovery::call_tool` against the rmcp client it wraps, in alternating blocks of calls, both
/// on one current-thread runtime of their own (`two_threads: false`): the difference is then the
/// library's own work, not where the scheduler happened to put each session's tasks (which on
/// a multi-thread runtime moved it from run to run).
/// Returns the median per-call time of each path and the median of the paired differences (µs).
fn measure_calls(
    registry: &str,
    solo_mcp: &str,
    calls: usize,
    two_threads: bool,
) -> (Duration, Duration, f64) {
    let runtime = if two_threads {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("client runtime");
    runtime.block_on(async {
        let disc = Discovery::builder(registry)
            .tags(["solo"])
            .build()
            .expect("builds");
        disc.connect().await.expect("connects");
        // The same session settings as Discovery's (protocol revision, HTTP client), so the
        // difference is the library's own work.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        let transport = StreamableHttpClientTransport::with_client(
            http,
            StreamableHttpClientTransportConfig::with_uri(solo_mcp),
        );
        let direct = ClientConfig::default()
            .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
            .serve(transport)
            .await
            .expect("rmcp connects");
        let args = json!({"query": "laptop"});
        let serde_json::Value::Object(args_map) = args.clone() else {
            unreachable!("a literal object")
        };
        let block = 100;
        let mut via_discovery = Vec::new();
        let mut via_rmcp = Vec::new();
        // Adjacent blocks of each path, in alternating order, and the median of their paired
        // differences: the machine's drift cancels out of each pair.
        let mut differences = Vec::new();
        for b in 0..(calls / block) {
            let mut pair = [Duration::ZERO; 2];
            let order = if b % 2 == 0 { [0, 1] } else { [1, 0] };
            for path in order {
                let started = Instant::now();
                for _ in 0..block {
                    if path == 0 {
                        disc.call_tool("solo__tool_07", args.clone())
                            .await
                            .expect("call");
                    } else {
                        let params =
                            CallToolRequestParams::new("tool_07").with_arguments(args_map.clone());
                        direct.call_tool(params).await.expect("call");
                    }
                }
                pair[path] = started.elapsed() / block as u32;
            }
            via_discovery.push(pair[0]);
            via_rmcp.push(pair[1]);
            differences.push(pair[0].as_secs_f64() - pair[1].as_secs_f64());
        }
        differences.sort_by(f64::total_cmp);
        let paired_overhead_us = differences[differences.len() / 2] * 1e6;
        let via_discovery = median(via_discovery);
        let via_rmcp = median(via_rmcp);
        disc.shutdown().await;
        let _ = direct.cancel().await;
        (via_discovery, via_rmcp, paired_overhead_us)
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A fresh directory for the registry's database.
fn tempfile_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("mcp-fleet-discovery-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
