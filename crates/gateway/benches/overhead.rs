//! Run with: `scripts/bench` (or `cargo bench -p mcp-fleet-gateway --bench overhead`).
//!
//! The gateway's cost, from one run on loopback: a trivial `tools/call` made by `BENCH_CLIENTS`
//! concurrent rmcp client sessions (default: two per core), in turn straight to an upstream and
//! through a default gateway, in `BENCH_ROUNDS` rounds (default 4) of `BENCH_SECONDS` each
//! (default 2 s). Reports p50 and p99 latency of each path, the overhead (gateway minus direct;
//! target: p50 under 300 µs) and throughput through the gateway as a ratio of direct (target: at
//! least 0.6×). Two upstreams: one that sets `TCP_NODELAY`, and one that leaves Nagle's
//! algorithm on (axum's default, and most servers'), since the gateway keeps its upstream
//! connections open and those are where Nagle costs. Upstreams, registry and gateway run in this
//! process, the clients too, so all share the cores; the same measures at 1 session and at four
//! per core follow for reference (2 rounds of half the time each).
//!
//! Why two sessions per core: that keeps every core busy, while a call waits behind at most about
//! one other. With more sessions than that the cores are saturated and a call's p50 is mostly
//! time spent queueing: its overhead is then `sessions × (1 / gateway calls/s − 1 / direct
//! calls/s)`, the throughput ratio again, scaled by the number of sessions, not what one call
//! through the gateway costs. The row at four per core shows it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fleet_gateway::{Gateway, GatewayConfig};
use mcp_fleet_registry::{AppState, Config};
use mcp_fleet_test_support::bench::{EchoServer, env_or, quantile};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion, Tool};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

mcp_fleet_test_support::bench_allocator!();

/// An upstream whose one tool, `echo`, answers at once; `nodelay` sets `TCP_NODELAY` on its
/// connections (axum's default is not to).
async fn start_upstream(stop: &CancellationToken, nodelay: bool) -> String {
    let serde_json::Value::Object(schema) = json!({"type": "object"}) else {
        unreachable!("a literal object")
    };
    let tools = Arc::new(vec![Tool::new("echo", "Answers ok", Arc::new(schema))]);
    EchoServer::new(tools, Arc::default())
        .nodelay(nodelay)
        .start(stop)
        .await
}

type Client = RunningService<RoleClient, ClientConfig>;

/// An rmcp client session with the same HTTP settings the discovery library uses.
async fn session(mcp_url: &str) -> Client {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client");
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(mcp_url),
    );
    ClientConfig::default()
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
        .serve(transport)
        .await
        .expect("rmcp connects")
}

/// Calls `tool` from every session at once for `span`; returns each call's latency.
async fn load(sessions: &[Arc<Client>], tool: &str, span: Duration) -> Vec<Duration> {
    let until = Instant::now() + span;
    let tasks: Vec<_> = sessions
        .iter()
        .map(|s| {
            let s = s.clone();
            let tool = tool.to_owned();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    s.call_tool(CallToolRequestParams::new(tool.clone()))
                        .await
                        .expect("call");
                    lat.push(started.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    all
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let clients = env_or("BENCH_CLIENTS", 2 * cores as u64).max(1) as usize;
    let rounds = env_or("BENCH_ROUNDS", 4).max(1);
    let span = Duration::from_millis(env_or("BENCH_SECONDS", 2) * 1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let stop = CancellationToken::new();
        let dir = std::env::temp_dir().join(format!("mcp-fleet-gateway-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = mcp_fleet_store::connect(&format!("sqlite://{}/registry.db", dir.display()))
            .await
            .expect("store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let registry = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(mcp_fleet_registry::serve(
            listener,
            AppState::new(store, Config::default()),
            stop.clone(),
        ));
        let registry_client = mcp_fleet_discovery::RegistryClient::new(&registry).expect("client");
        let mut upstreams = Vec::new();
        for (id, nodelay) in [("echo", true), ("nagle", false)] {
            let url = start_upstream(&stop, nodelay).await;
            registry_client
                .register(&json!({"id": id, "name": id, "url": url, "version": "1.0.0"}))
                .await
                .expect("register");
            upstreams.push(url);
        }
        let gateway = Gateway::start(GatewayConfig::new(registry.clone()))
            .await
            .expect("gateway");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let gateway_url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        tokio::spawn(gateway.clone().serve(listener, stop.clone()));

        let references = [1, 4 * cores];
        let most = references.into_iter().fold(clients, usize::max);
        let mut paths: Vec<(&str, &str, Vec<Arc<Client>>)> = vec![
            ("direct to the upstream with TCP_NODELAY", "echo", Vec::new()),
            ("through the gateway", "echo__echo", Vec::new()),
            ("direct to the upstream without TCP_NODELAY", "echo", Vec::new()),
            ("through the gateway", "nagle__echo", Vec::new()),
        ];
        let urls = [
            format!("{}/mcp", upstreams[0]),
            gateway_url.clone(),
            format!("{}/mcp", upstreams[1]),
            gateway_url.clone(),
        ];
        for ((_, _, sessions), url) in paths.iter_mut().zip(&urls) {
            for _ in 0..most {
                sessions.push(Arc::new(session(url).await));
            }
        }
        // Warm-up.
        for (_, tool, sessions) in &paths {
            load(&sessions[..clients], tool, span / 4).await;
        }
        println!();
        println!(
            "gateway: trivial tools/call, {clients} concurrent sessions, {rounds} rounds × {span:?} per path (taking turns), loopback, {cores} cores"
        );
        let stats = measure(&paths, clients, rounds, span).await;
        report(&paths, &stats, true);
        for reference in references {
            if reference == clients {
                continue;
            }
            println!();
            println!("for reference, {reference} concurrent sessions (2 rounds × {:?}):", span / 2);
            let stats = measure(&paths, reference, 2, span / 2).await;
            report(&paths, &stats, false);
        }
        for (_, _, sessions) in paths {
            for s in sessions {
                if let Ok(s) = Arc::try_unwrap(s) {
                    let _ = s.cancel().await;
                }
            }
        }
        gateway.shutdown().await;
        stop.cancel();
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// Calls/s, p50, p99 and number of calls of each path, from `rounds` rounds in which the paths
/// take turns, so that every path sees the same machine.
async fn measure(
    paths: &[(&str, &str, Vec<Arc<Client>>)],
    clients: usize,
    rounds: u64,
    span: Duration,
) -> Vec<(f64, Duration, Duration, usize)> {
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
    for _ in 0..rounds {
        for (i, (_, tool, sessions)) in paths.iter().enumerate() {
            latencies[i].extend(load(&sessions[..clients], tool, span).await);
        }
    }
    let total = span.as_secs_f64() * rounds as f64;
    latencies
        .iter_mut()
        .map(|l| {
            l.sort_unstable();
            (
                l.len() as f64 / total,
                quantile(l, 0.5),
                quantile(l, 0.99),
                l.len(),
            )
        })
        .collect()
}

/// Prints the paths, then each gateway path against the direct path before it.
fn report(
    paths: &[(&str, &str, Vec<Arc<Client>>)],
    stats: &[(f64, Duration, Duration, usize)],
    targets: bool,
) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let verdict = |met: bool| {
        if !targets {
            ""
        } else if met {
            "met"
        } else {
            "**missed**"
        }
    };
    println!("| path | calls | calls/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for ((name, _, _), (rps, p50, p99, n)) in paths.iter().zip(stats) {
        println!(
            "| {name} | {n} | {rps:.0} | {:.0} µs | {:.0} µs |",
            us(*p50),
            us(*p99)
        );
    }
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for (direct, upstream) in [(0, "with TCP_NODELAY"), (2, "without TCP_NODELAY")] {
        let (d_rps, d50, d99, _) = stats[direct];
        let (g_rps, g50, g99, _) = stats[direct + 1];
        let p50_overhead = us(g50) - us(d50);
        let ratio = g_rps / d_rps;
        println!(
            "| p50 overhead (gateway − direct), upstream {upstream} | {p50_overhead:.0} µs | {}{} |",
            if targets { "< 300 µs: " } else { "" },
            verdict(p50_overhead < 300.0)
        );
        println!(
            "| p99 overhead, upstream {upstream} | {:.0} µs | |",
            us(g99) - us(d99)
        );
        println!(
            "| throughput gateway / direct, upstream {upstream} | {ratio:.2}× | {}{} |",
            if targets { "≥ 0.60×: " } else { "" },
            verdict(ratio >= 0.6)
        );
    }
}
