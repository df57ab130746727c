//! Run with: `scripts/bench` (or `cargo bench -p mcp-fleet-gateway --bench overhead`).
//!
//! The gateway's cost, from one run on loopback: a trivial `tools/call` made by `BENCH_CLIENTS`
//! concurrent rmcp client sessions (default 8), in turn straight to the upstream, through a
//! default gateway, and through one with `--upstream-keepalive`, in `BENCH_ROUNDS` rounds
//! (default 4) of `BENCH_SECONDS` each (default 2 s). Reports p50 and p99 latency of each path, the overhead (gateway minus direct; target:
//! p50 under 300 µs) and throughput through the gateway as a ratio of direct (target: at
//! least 0.6×). Upstream, registry and gateway run in this process; the clients too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fleet_gateway::{Gateway, GatewayConfig};
use mcp_fleet_registry::{AppState, Config};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientConfig, ContentBlock,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An upstream whose one tool answers at once.
#[derive(Clone)]
struct Echo;

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let serde_json::Value::Object(schema) = json!({"type": "object"}) else {
            unreachable!("a literal object")
        };
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "echo",
            "Answers ok",
            Arc::new(schema),
        )]))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text("ok")]).into())
    }
}

async fn start_upstream(stop: &CancellationToken) -> String {
    let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    let service = StreamableHttpService::new(
        || Ok(Echo),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    // A well-configured upstream: answers are not held back by Nagle's algorithm.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let until = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(until.cancelled_owned())
            .await
    });
    url
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

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let clients = env_or("BENCH_CLIENTS", 8) as usize;
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
        let upstream = start_upstream(&stop).await;
        mcp_fleet_discovery::RegistryClient::new(&registry)
            .expect("client")
            .register(&json!({"id": "echo", "name": "Echo", "url": upstream, "version": "1.0.0"}))
            .await
            .expect("register");

        // Two gateways: the default, and one keeping upstream connections open.
        let mut gateways = Vec::new();
        let mut gateway_urls = Vec::new();
        for keepalive in [false, true] {
            let mut config = GatewayConfig::new(registry.clone());
            config.upstream_keepalive = keepalive;
            let gateway = Gateway::start(config).await.expect("gateway");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            gateway_urls.push(format!("http://{}/mcp", listener.local_addr().expect("addr")));
            tokio::spawn(gateway.clone().serve(listener, stop.clone()));
            gateways.push(gateway);
        }

        let mut paths: Vec<(&str, &str, Vec<Arc<Client>>)> = vec![
            ("direct to the upstream", "echo", Vec::new()),
            ("through the gateway (default)", "echo__echo", Vec::new()),
            ("through the gateway, --upstream-keepalive", "echo__echo", Vec::new()),
        ];
        let urls = [format!("{upstream}/mcp"), gateway_urls[0].clone(), gateway_urls[1].clone()];
        for ((_, _, sessions), url) in paths.iter_mut().zip(&urls) {
            for _ in 0..clients {
                sessions.push(Arc::new(session(url).await));
            }
        }
        // Warm-up, then rounds taking turns, so every path sees the same machine.
        for (_, tool, sessions) in &paths {
            load(sessions, tool, span / 4).await;
        }
        let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); paths.len()];
        for _ in 0..rounds {
            for (i, (_, tool, sessions)) in paths.iter().enumerate() {
                latencies[i].extend(load(sessions, tool, span).await);
            }
        }
        let total = span.as_secs_f64() * rounds as f64;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let stats: Vec<(f64, Duration, Duration, usize)> = latencies
            .iter_mut()
            .map(|l| {
                l.sort_unstable();
                (l.len() as f64 / total, quantile(l, 0.5), quantile(l, 0.99), l.len())
            })
            .collect();
        println!();
        println!(
            "gateway: trivial tools/call, {clients} concurrent sessions, {rounds} rounds × {:?} per path, loopback, {} cores; the upstream sets TCP_NODELAY",
            span,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| path | calls | calls/s | p50 | p99 |");
        println!("|---|---|---|---|---|");
        for ((name, _, _), (rps, p50, p99, n)) in paths.iter().zip(&stats) {
            println!("| {name} | {n} | {rps:.0} | {:.0} µs | {:.0} µs |", us(*p50), us(*p99));
        }
        println!();
        println!("| measure | value | target |");
        println!("|---|---|---|");
        let (d_rps, d50, d99, _) = stats[0];
        for (i, label) in [(1, "default"), (2, "--upstream-keepalive")] {
            let (g_rps, g50, g99, _) = stats[i];
            let p50_overhead = us(g50) - us(d50);
            let ratio = g_rps / d_rps;
            println!(
                "| p50 overhead, {label} (gateway − direct) | {p50_overhead:.0} µs | < 300 µs: {} |",
                if p50_overhead < 300.0 { "met" } else { "**missed**" }
            );
            println!("| p99 overhead, {label} | {:.0} µs | |", us(g99) - us(d99));
            println!(
                "| throughput, {label}, gateway / direct | {ratio:.2}× | ≥ 0.60×: {} |",
                if ratio >= 0.6 { "met" } else { "**missed**" }
            );
        }
        for (_, _, sessions) in paths {
            for s in sessions {
                if let Ok(s) = Arc::try_unwrap(s) {
                    let _ = s.cancel().await;
                }
            }
        }
        for gateway in gateways {
            gateway.shutdown().await;
        }
        stop.cancel();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
