//! Run with: `scripts/bench` (or `cargo bench -p mcp-fleet-sample-servers --bench direct`).
//!
//! A direct client's view of a sample server: `BENCH_CALLS` (default 200) sequential, kept-alive
//! `tools/call`s of the catalog's `get_product` on one HTTP connection, each read to its end, as
//! a client that talks to the demo's catalog server without the gateway makes them. Two
//! listeners take turns, call by call, so both see the same machine:
//!
//! - the sample server as `mcp-fleet demo` runs it ([`start`], which sets `TCP_NODELAY` on every
//!   accepted connection; target: p50 under 1 ms);
//! - the baseline: the same router served by plain `axum::serve`, which leaves Nagle's algorithm
//!   on. The end of an answer then waits for the client's delayed ACK (~40 ms on Linux).

use std::time::{Duration, Instant};

use mcp_fleet_sample_servers::{Sample, start};
use mcp_fleet_test_support::bench::{env_or, quantile};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One kept-alive MCP session over one HTTP connection.
struct Direct {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

impl Direct {
    async fn connect(url: String) -> Self {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let mut direct = Self {
            http,
            url,
            session: None,
        };
        let init = direct
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "direct-bench", "version": "1.0.0"}}}),
            )
            .await;
        let session = init
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("a session id")
            .to_owned();
        init.text().await.expect("initialize answer");
        direct.session = Some(session);
        direct
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .text()
            .await
            .expect("initialized");
        direct
    }

    async fn post(&self, body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = &self.session {
            req = req.header("mcp-session-id", session);
        }
        req.send().await.expect("send")
    }

    async fn call(&self, id: u64) -> Duration {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "get_product", "arguments": {"sku": "LAP-001"}}});
        let started = Instant::now();
        let answer = self.post(call).await.text().await.expect("answer");
        let took = started.elapsed();
        assert!(answer.contains("LAP-001"), "unexpected answer: {answer}");
        took
    }
}

fn main() {
    let calls = env_or("BENCH_CALLS", 200).max(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let sample = start(Sample::Catalog, listener, shutdown.clone())
            .await
            .expect("sample server");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let baseline_url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
        let router = Sample::Catalog.router(shutdown.child_token());
        let baseline = tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.clone().cancelled_owned())
                .into_future(),
        );

        let clients = [
            Direct::connect(sample.mcp_url()).await,
            Direct::connect(baseline_url).await,
        ];
        // Warm-up: the first calls open the connection and fill caches.
        for client in &clients {
            for id in 1..=5 {
                client.call(id).await;
            }
        }
        let mut took = [Vec::new(), Vec::new()];
        for id in 0..calls {
            for (client, took) in clients.iter().zip(&mut took) {
                took.push(client.call(100 + id).await);
            }
        }
        for t in &mut took {
            t.sort();
        }
        let [nodelay, nagle] = &took;
        println!();
        println!(
            "sample server: {calls} sequential kept-alive tools/call (get_product) per listener, one connection each, loopback"
        );
        println!("{:<50} {:>10} {:>10} {:>8}", "listener", "p50", "p99", "target");
        println!(
            "{:<50} {:>10.3?} {:>10.3?} {:>8}",
            "sample server as the demo runs it (TCP_NODELAY)",
            quantile(nodelay, 0.5),
            quantile(nodelay, 0.99),
            "< 1 ms"
        );
        println!(
            "{:<50} {:>10.3?} {:>10.3?} {:>8}",
            "baseline: plain axum::serve (Nagle on)",
            quantile(nagle, 0.5),
            quantile(nagle, 0.99),
            "-"
        );
        println!(
            "p50 ratio, baseline / sample server: {:.1}x",
            quantile(nagle, 0.5).as_secs_f64() / quantile(nodelay, 0.5).as_secs_f64()
        );
        shutdown.cancel();
        let _ = sample.join().await;
        let _ = baseline.await;
    });
}
