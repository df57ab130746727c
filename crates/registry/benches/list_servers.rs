//! Run with: `scripts/bench` (or `cargo bench -p mcp-fleet-registry --bench list_servers`).
//!
//! Requests/s of `GET /servers?tags=<tag on 100 of 1,000 entries>` and `GET /servers?limit=1000`
//! on SQLite, next to a minimal axum handler that returns the same bytes from memory, measured
//! in the same run with `wrk` (a separate process) on loopback. The registry is measured with its
//! read cache on (the default) and off (every request queries SQLite). The official v0.1 listing
//! (`GET /v0.1/servers?limit=100`) is measured next to the native one of the same size, with the
//! ratio between them.
//!
//! Settings: `BENCH_SECONDS` per measurement (default 5), `BENCH_CONNECTIONS` (default 32).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use mcp_fleet_registry::{AppState, Config};
use mcp_fleet_test_support::bench::env_or;
use tokio_util::sync::CancellationToken;

mcp_fleet_test_support::bench_allocator!();

const ENTRIES: usize = 1000;
// `status=any`: no health worker runs here, so every entry stays `unknown`.
const QUERIES: [(&str, &str); 4] = [
    (
        "tag query (100 of 1,000)",
        "/servers?tags=target&status=any",
    ),
    ("all 1,000 (limit=1000)", "/servers?limit=1000&status=any"),
    ("native, limit=100", "/servers?limit=100&status=any"),
    ("official v0.1, limit=100", "/v0.1/servers?limit=100"),
];
/// The native listing and the official one compared, as indexes into [`QUERIES`].
const NATIVE_100: usize = 2;
const OFFICIAL_100: usize = 3;

fn registration(i: usize) -> serde_json::Value {
    let mut tags = vec!["fleet".to_string(), format!("team-{}", i % 7)];
    if i.is_multiple_of(10) {
        tags.push("target".into());
    }
    serde_json::json!({
        "id": format!("server-{i:04}"),
        "name": format!("Server number {i}"),
        "description": "A server registered by the benchmark, with a description of ordinary length.",
        "url": format!("http://10.1.{}.{}:8080", i / 250, i % 250),
        "version": "1.4.2",
        "tags": tags,
        "auth": {"type": "bearer"},
        "healthUrl": format!("http://10.1.{}.{}:8080/health", i / 250, i % 250),
        "metadata": {"team": format!("team-{}", i % 7), "region": "eu-west-1"},
    })
}

/// One wrk run: (requests/s, p50, p99).
fn wrk(url: &str, seconds: u64, connections: u64) -> (f64, String, String) {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run wrk ({e}); scripts/bench installs it"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw non-2xx answers from {url}: {text}"
    );
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output: {text}"));
    let pct = |p: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .map_or_else(|| "?".into(), |v| v.trim().to_string())
    };
    (rps, pct("50%"), pct("99%"))
}

async fn spawn(router: Router, shutdown: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let token = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
    });
    url
}

async fn registry(db_url: &str, ttl: Duration, shutdown: &CancellationToken) -> String {
    let store = mcp_fleet_store::connect(db_url).await.expect("open store");
    let state = AppState::new(
        store,
        Config {
            read_cache_ttl: ttl,
            ..Config::default()
        },
    );
    spawn(mcp_fleet_registry::router(state), shutdown).await
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5);
    let connections = env_or("BENCH_CONNECTIONS", 32);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("bench.db").display());

    let (cached, uncached, baseline, bodies) = rt.block_on(async {
        let cached = registry(&db_url, Duration::from_secs(1), &shutdown).await;
        let uncached = registry(&db_url, Duration::ZERO, &shutdown).await;
        let http = reqwest::Client::new();
        for i in 0..ENTRIES {
            let res = http
                .post(format!("{cached}/servers"))
                .json(&registration(i))
                .send()
                .await
                .expect("seed");
            assert!(
                res.status().is_success(),
                "seeding failed: {}",
                res.status()
            );
        }
        // The baseline serves exactly the bytes the registry answers, from memory.
        let mut bodies = Vec::new();
        let mut baseline = Router::new();
        for (_, path) in QUERIES {
            let body = http
                .get(format!("{uncached}{path}"))
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body");
            let n = serde_json::from_slice::<serde_json::Value>(&body).expect("json")["servers"]
                .as_array()
                .map_or(0, Vec::len);
            bodies.push((body.len(), n));
            let shared: Arc<Bytes> = Arc::new(body);
            let route_path = format!("/{}", bodies.len());
            baseline = baseline.route(
                &route_path,
                get(move || {
                    let b = shared.clone();
                    async move {
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            Bytes::clone(&b),
                        )
                    }
                }),
            );
        }
        let baseline = spawn(baseline, &shutdown).await;
        (cached, uncached, baseline, bodies)
    });

    println!(
        "\nGET /servers on SQLite, {ENTRIES} entries; wrk -t1 -c{connections} -d{seconds}s on loopback\n"
    );
    println!(
        "| query | server | body | req/s | p50 | p99 | ratio to baseline |\n|---|---|---|---|---|---|---|"
    );
    // (cache on, cache off) requests/s per query.
    let mut measured = Vec::new();
    for (i, (label, path)) in QUERIES.iter().enumerate() {
        let (bytes, n) = bodies[i];
        let urls = [
            format!("{baseline}/{}", i + 1),
            format!("{cached}{path}"),
            format!("{uncached}{path}"),
        ];
        // Warm up each server once, briefly.
        for url in &urls {
            let _ = wrk(url, 1, connections);
        }
        let (base_rps, b50, b99) = wrk(&urls[0], seconds, connections);
        let (c_rps, c50, c99) = wrk(&urls[1], seconds, connections);
        let (u_rps, u50, u99) = wrk(&urls[2], seconds, connections);
        measured.push((c_rps, u_rps));
        let size = format!("{n} entries, {} KiB", bytes / 1024);
        println!("| {label} | static baseline | {size} | {base_rps:.0} | {b50} | {b99} | 1.00 |");
        println!(
            "| {label} | registry, cache on (default) | {size} | {c_rps:.0} | {c50} | {c99} | {:.2} |",
            c_rps / base_rps
        );
        println!(
            "| {label} | registry, cache off (SQLite each time) | {size} | {u_rps:.0} | {u50} | {u99} | {:.2} |",
            u_rps / base_rps
        );
    }
    println!("\nTarget: tag query, registry (default settings) >= 0.50 of the static baseline.");
    let (native, official) = (measured[NATIVE_100], measured[OFFICIAL_100]);
    println!(
        "Official v0.1 listing / native listing, limit=100: {:.2} with the cache on (target >= 0.80), \
         {:.2} with it off.",
        official.0 / native.0,
        official.1 / native.1
    );
    shutdown.cancel();
}
