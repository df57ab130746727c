//! Fuzzes the gateway's `/mcp` through its router (no socket), in front of a real registry and
//! the catalog sample server on loopback. The first byte picks the gateway (bit 0: fast path on
//! or off), a header the input sets (bits 1-3: none, `Host`, `Accept`, `Content-Type`,
//! `MCP-Protocol-Version`, `Origin`, `Mcp-Session-Id`, `Mcp-Method`) and whether the request
//! names the gateway's open session (bit 4); the rest is that header's value up to the first
//! newline, then the body. No input may get a 5xx.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use mcp_fleet_gateway::{Gateway, GatewayConfig};
use mcp_fleet_registry::{AppState, Config};
use mcp_fleet_sample_servers::Sample;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    /// The fast path on, then off; each with the id of a session opened in it.
    gateways: Vec<(axum::Router, String)>,
    _dir: tempfile::TempDir,
    _shutdown: CancellationToken,
}

const ACCEPT: &str = "application/json, text/event-stream";

fn request(session: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut request = Request::post("/mcp")
        .header("host", "127.0.0.1")
        .header("accept", ACCEPT)
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(id) = session {
        request = request.header("mcp-session-id", id);
    }
    request.body(Body::from(body)).expect("a request")
}

/// Opens a session in `router` as a client would: `initialize`, then `initialized`.
async fn open_session(router: &axum::Router) -> String {
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "fuzz", "version": "1.0.0"}}});
    let res = router
        .clone()
        .oneshot(request(None, init.to_string().into_bytes()))
        .await
        .expect("initialize answered");
    let id = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    drop(res);
    let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let res = router
        .clone()
        .oneshot(request(Some(&id), note.to_string().into_bytes()))
        .await
        .expect("initialized answered");
    assert_eq!(res.status(), 202);
    id
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let shutdown = CancellationToken::new();
        let gateways = runtime.block_on(async {
            let store = mcp_fleet_store::connect(&url).await.expect("open store");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let registry = format!("http://{}", listener.local_addr().expect("addr"));
            let state = AppState::new(Arc::clone(&store), Config::default());
            tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let sample =
                mcp_fleet_sample_servers::start(Sample::Catalog, listener, shutdown.clone())
                    .await
                    .expect("sample server");
            let announced = sample
                .announce(&registry)
                .await
                .expect("register the sample");
            // Kept registered (heartbeats) for as long as the fuzzer runs.
            let stop = shutdown.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                drop(announced);
            });
            let mut gateways = Vec::new();
            for rmcp_only in [false, true] {
                let config = GatewayConfig {
                    rmcp_only: Some(rmcp_only),
                    ..GatewayConfig::new(registry.clone())
                };
                let gateway = Gateway::start(config).await.expect("gateway starts");
                for _ in 0..200 {
                    if !gateway.tools().is_empty() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert!(
                    !gateway.tools().is_empty(),
                    "the gateway offers the sample's tools"
                );
                let router = gateway.router();
                let session = open_session(&router).await;
                gateways.push((router, session));
            }
            gateways
        });
        Fixture {
            runtime,
            gateways,
            _dir: dir,
            _shutdown: shutdown,
        }
    })
}

const HEADERS: [&str; 8] = [
    "",
    "host",
    "accept",
    "content-type",
    "mcp-protocol-version",
    "origin",
    "mcp-session-id",
    "mcp-method",
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (value, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&b""[..], rest),
    };
    let f = fixture();
    let (router, session) = &f.gateways[usize::from(mode & 1)];
    let header = HEADERS[usize::from((mode >> 1) & 7)];
    let mut request = request(
        (mode & 0x10 != 0).then_some(session.as_str()),
        body.to_vec(),
    );
    if !header.is_empty() {
        let Ok(value) = HeaderValue::from_bytes(value) else {
            return;
        };
        request.headers_mut().insert(header, value);
    }
    let answer = f.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), router.clone().oneshot(request)).await
    });
    if let Ok(Ok(res)) = answer {
        assert!(
            !res.status().is_server_error(),
            "{} for mode {mode:#04x}, {header}: {:?}, body {:?}",
            res.status(),
            String::from_utf8_lossy(value),
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
});
