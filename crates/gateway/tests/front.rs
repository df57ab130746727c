//! What a hostile or broken client meets at the gateway's listener and `/mcp`: header and body
//! deadlines, header and body sizes, the connection cap, the budget of in-flight body bytes,
//! rmcp's header checks on the fast path as on rmcp's, and JSON-RPC errors for malformed
//! messages. Spoken over raw TCP or plain HTTP, as an attacker would.

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_fleet_gateway::{GatewayConfig, ServeLimits};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::common::{TestGateway, TestRegistry, Upstream, eventually};

const BOTH: &str = "application/json, text/event-stream";

/// A gateway (no upstreams) with these limits.
async fn gateway_with(registry: &TestRegistry, limits: ServeLimits) -> TestGateway {
    let mut config = TestGateway::config(registry);
    config.limits = limits;
    TestGateway::start(config).await
}

fn addr(gw: &TestGateway) -> String {
    gw.url.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes (`Ok(bytes read)`) or `within` passes (`Err`).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, ()> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(()),
            Ok(Ok(0) | Err(_)) => return Ok(seen),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn slowloris_connections_are_closed_after_the_header_deadline() {
    let registry = TestRegistry::start().await;
    let limits = ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ServeLimits::default()
    };
    let gw = gateway_with(&registry, limits).await;
    let started = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr(&gw)).await.expect("connect");
        stream
            .write_all(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: a")
            .await
            .expect("write");
        conns.push(stream);
    }
    for stream in &mut conns {
        closed_within(stream, Duration::from_secs(5))
            .await
            .expect("a connection that never finishes its headers is closed");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Idle kept-alive connections too.
    let mut idle = TcpStream::connect(addr(&gw)).await.expect("connect");
    closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("an idle connection is closed");
}

#[tokio::test]
async fn endless_bodies_are_answered_408_after_the_body_deadline() {
    let registry = TestRegistry::start().await;
    let limits = ServeLimits {
        request_timeout: Duration::from_millis(500),
        ..ServeLimits::default()
    };
    let gw = gateway_with(&registry, limits).await;
    let mut conns = Vec::new();
    for i in 0..20 {
        let mut stream = TcpStream::connect(addr(&gw)).await.expect("connect");
        // Half chunked, half with a length they never reach.
        let framing = if i % 2 == 0 {
            "transfer-encoding: chunked\r\n\r\n10\r\n{\"jsonrpc\":\"2.0\"\r\n".to_owned()
        } else {
            "content-length: 1000\r\n\r\n{\"jsonrpc\":".to_owned()
        };
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: {BOTH}\r\n\
             content-type: application/json\r\n{framing}"
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        conns.push(stream);
    }
    for stream in &mut conns {
        let answer = closed_within(stream, Duration::from_secs(5))
            .await
            .expect("an endless body is answered and its connection closed");
        assert_eq!(
            status_of(&answer),
            Some(408),
            "{}",
            String::from_utf8_lossy(&answer)
        );
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("\"code\":-32600"), "{text}");
    }
}

#[tokio::test]
async fn oversized_headers_and_bodies_are_refused() {
    let registry = TestRegistry::start().await;
    let limits = ServeLimits {
        max_header_bytes: 8 * 1024,
        max_body_bytes: 64 * 1024,
        ..ServeLimits::default()
    };
    let gw = gateway_with(&registry, limits).await;
    let mut stream = TcpStream::connect(addr(&gw)).await.expect("connect");
    let head = format!(
        "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    // The gateway may close before it has read it all.
    let _ = stream.write_all(head.as_bytes()).await;
    let answer = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed");
    assert_eq!(status_of(&answer), Some(431));

    for chunked in [false, true] {
        let body = " ".repeat(100 * 1024);
        let framing = if chunked {
            format!(
                "transfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )
        } else {
            format!("content-length: {}\r\n\r\n{body}", body.len())
        };
        let request = format!(
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: {BOTH}\r\n\
             content-type: application/json\r\n{framing}"
        );
        let mut stream = TcpStream::connect(addr(&gw)).await.expect("connect");
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = closed_within(&mut stream, Duration::from_secs(5))
            .await
            .expect("answered and closed");
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status_of(&answer), Some(413), "chunked: {chunked}: {text}");
        assert!(text.contains("\"code\":-32600"), "{text}");
    }
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_until_one_closes() {
    let registry = TestRegistry::start().await;
    let limits = ServeLimits {
        max_connections: 3,
        ..ServeLimits::default()
    };
    let gw = gateway_with(&registry, limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr(&gw)).await.expect("connect"));
    }
    let mut over = TcpStream::connect(addr(&gw)).await.expect("connect");
    let answer = closed_within(&mut over, Duration::from_secs(5))
        .await
        .expect("a connection over the cap is closed");
    assert_eq!(status_of(&answer), Some(503));
    drop(held.pop());
    eventually("a connection to be served once one closed", || async {
        let res = reqwest::get(format!("{}/healthz", gw.url)).await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
}

/// An upstream whose one tool, `wait`, answers only once the test lets it.
struct SlowUpstream {
    base_url: String,
    started: Arc<AtomicUsize>,
    release: Arc<Semaphore>,
    stop: CancellationToken,
}

impl Drop for SlowUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct Slow {
    started: Arc<AtomicUsize>,
    release: Arc<Semaphore>,
}

impl ServerHandler for Slow {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("slow", "1.0.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema = Arc::new(serde_json::Map::from_iter([(
            "type".into(),
            json!("object"),
        )]));
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "wait", "Waits", schema,
        )]))
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let _ = self.release.acquire().await;
        Ok(CallToolResult::structured(json!({"waited": true})).into())
    }
}

impl SlowUpstream {
    async fn start() -> Self {
        let slow = Slow {
            started: Arc::default(),
            release: Arc::new(Semaphore::new(0)),
        };
        let stop = CancellationToken::new();
        let handler = slow.clone();
        let mcp = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
        );
        let app = axum::Router::new().nest_service("/mcp", mcp);
        let base_url = mcp_fleet_test_support::serve(app, stop.clone()).await;
        Self {
            base_url,
            started: slow.started,
            release: slow.release,
            stop,
        }
    }
}

#[tokio::test]
async fn in_flight_body_bytes_are_bounded() {
    let registry = TestRegistry::start().await;
    let slow = SlowUpstream::start().await;
    registry
        .register("slow", "slow", "1.0.0", &slow.base_url)
        .await;
    let mut config = TestGateway::config(&registry);
    config.limits = ServeLimits {
        max_body_bytes: 64 * 1024,
        max_inflight_body_bytes: 100 * 1024,
        request_timeout: Duration::from_millis(500),
        ..ServeLimits::default()
    };
    let gw = TestGateway::start(config).await;
    eventually("the gateway to offer slow__wait", || async {
        gw.gateway
            .tools()
            .iter()
            .any(|t| t.name == "slow__wait")
            .then_some(())
    })
    .await;
    let http = reqwest::Client::new();
    let session = open_session(&http, &gw.url).await;
    let padded = |size: usize, body: Value| {
        let mut body = body.to_string().into_bytes();
        body.resize(size, b' ');
        String::from_utf8(body).expect("UTF-8")
    };
    // A 60 KiB call holds its body's bytes until it is answered, which the upstream delays.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "slow__wait", "arguments": {}}});
    let held = {
        let (http, url, body) = (http.clone(), gw.url.clone(), padded(60 * 1024, call));
        let session = session.clone();
        tokio::spawn(async move {
            // Read to its end: rmcp's event stream (MCP_FLEET_RMCP_ONLY) sends its head before
            // the answer, and a dropped stream would free the body's bytes early.
            let answer = post(&http, &url, &[("mcp-session-id", &session)], body).await;
            let status = answer.status();
            let _ = answer.bytes().await;
            status
        })
    };
    eventually("the slow call to reach the upstream", || async {
        (slow.started.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let send = |size: usize| {
        let (http, url, session) = (http.clone(), gw.url.clone(), session.clone());
        let body = padded(size, ping.clone());
        async move { post(&http, &url, &[("mcp-session-id", &session)], body).await }
    };
    // 50 KiB more does not fit beside it: refused once the wait for room runs out.
    let busy = send(50 * 1024).await;
    assert_eq!(busy.status(), 503);
    assert_eq!(
        busy.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let answer: Value = busy.json().await.expect("a JSON-RPC error");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("--max-inflight-body-bytes"), "{answer}");
    // A small one fits.
    assert_eq!(send(1024).await.status(), 200);
    // Once the slow call is answered, the large one fits too.
    slow.release.add_permits(1);
    assert_eq!(held.await.expect("the slow call"), 200);
    assert_eq!(send(50 * 1024).await.status(), 200);
}

/// A gateway with the fast path on or off, an upstream and a session opened over plain HTTP.
struct Both {
    gateways: Vec<(TestGateway, String)>,
    http: reqwest::Client,
    _upstream: Upstream,
    _registry: TestRegistry,
}

/// Opens a session over plain HTTP (`initialize`, then `initialized`); its id.
pub(crate) async fn open_session(http: &reqwest::Client, url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "plain-http", "version": "1.0.0"}}});
    let opened = post(http, url, &[("mcp-session-id", "")], init.to_string()).await;
    assert!(opened.status().is_success(), "{}", opened.status());
    let session = opened
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let noted = post(
        http,
        url,
        &[("mcp-session-id", &session)],
        initialized.to_string(),
    )
    .await;
    assert_eq!(noted.status().as_u16(), 202);
    session
}

impl Both {
    async fn start() -> Self {
        let registry = TestRegistry::start().await;
        let upstream = Upstream::start("alpha", &["search"]).await;
        registry
            .register("alpha", "alpha", "1.0.0", &upstream.base_url)
            .await;
        let http = reqwest::Client::new();
        let mut gateways = Vec::new();
        for rmcp_only in [false, true] {
            let config = GatewayConfig {
                rmcp_only: Some(rmcp_only),
                ..TestGateway::config(&registry)
            };
            let gw = TestGateway::start(config).await;
            eventually("the gateway to offer alpha__search", || async {
                gw.gateway
                    .tools()
                    .iter()
                    .any(|t| t.name == "alpha__search")
                    .then_some(())
            })
            .await;
            let session = open_session(&http, &gw.url).await;
            gateways.push((gw, session));
        }
        Self {
            gateways,
            http,
            _upstream: upstream,
            _registry: registry,
        }
    }

    /// The status and JSON-RPC message of `body` POSTed in each gateway's session, with the
    /// usual headers overridden by `headers` (an empty value removes one).
    async fn both(&self, headers: &[(&str, &str)], body: &str) -> Vec<(u16, Value)> {
        let mut answers = Vec::new();
        for (gw, session) in &self.gateways {
            let mut all = vec![("mcp-session-id", session.as_str())];
            all.extend_from_slice(headers);
            let res = post(&self.http, &gw.url, &all, body.to_owned()).await;
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            answers.push((status, message(&text)));
        }
        answers
    }
}

/// POSTs `body` to `/mcp` with the usual headers, overridden by `headers`.
async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
) -> reqwest::Response {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in [
        ("accept", BOTH),
        ("content-type", "application/json"),
        ("mcp-protocol-version", "2025-11-25"),
    ]
    .iter()
    .chain(headers)
    {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("name");
        if value.is_empty() {
            map.remove(&name);
        } else {
            map.insert(name, value.parse().expect("value"));
        }
    }
    http.post(format!("{url}/mcp"))
        .headers(map)
        .body(body)
        .send()
        .await
        .expect("the gateway answers")
}

/// The JSON-RPC message of an answer: its JSON body, or the last `data:` of an event stream.
fn message(text: &str) -> Value {
    if let Ok(v) = serde_json::from_str(text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .next_back()
        .unwrap_or(Value::Null)
}

fn call(id: Value, arguments: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "alpha__search", "arguments": arguments}})
    .to_string()
}

#[tokio::test]
async fn tool_calls_meet_rmcps_checks_on_both_paths() {
    let both = Both::start().await;
    let ok = call(json!(1), json!({"q": 1}));
    // One row per check rmcp applies: headers changed, and the status both paths answer.
    let rows: &[(&[(&str, &str)], u16)] = &[
        (&[], 200),
        (&[("host", "evil.example")], 403),
        (&[("host", "evil.example:80")], 403),
        (&[("host", "a b")], 400),
        (&[("origin", "http://evil.example")], 200),
        (&[("accept", "application/json")], 406),
        (&[("accept", "text/event-stream")], 406),
        (
            &[("accept", "application/json, text/event-stream;q=0")],
            406,
        ),
        (&[("content-type", "text/plain")], 415),
        (&[("content-type", "application/jsonx")], 415),
        (&[("mcp-protocol-version", "1999-01-01")], 400),
        (&[("mcp-protocol-version", "2026-07-28")], 400),
        (&[("mcp-protocol-version", "")], 200),
        (&[("mcp-protocol-version", "2025-03-26")], 200),
        (&[("mcp-session-id", "not-a-session")], 404),
    ];
    for (headers, status) in rows {
        let answers = both.both(headers, &ok).await;
        for (path, (got, message)) in ["fast path", "rmcp path"].iter().zip(&answers) {
            assert_eq!(got, status, "{path}, {headers:?}: {message}");
            if *got == 200 {
                assert_eq!(message["result"]["isError"], false, "{path}: {message}");
            }
        }
    }
}

#[tokio::test]
async fn malformed_messages_get_json_rpc_errors_on_both_paths() {
    let both = Both::start().await;
    let huge_name = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "x".repeat(100_000)}})
    .to_string();
    // Body, HTTP status, JSON-RPC code, id in the answer.
    let rows: Vec<(String, u16, i64, Value)> = vec![
        ("{not json".into(), 400, -32700, Value::Null),
        (String::new(), 400, -32700, Value::Null),
        (
            format!("[{}]", call(json!(1), json!({}))),
            400,
            -32600,
            Value::Null,
        ),
        (
            call(json!(1), json!({})).replace("\"2.0\"", "\"1.0\""),
            400,
            -32600,
            json!(1),
        ),
        (call(Value::Null, json!({})), 400, -32600, Value::Null),
        (call(json!(1.5), json!({})), 400, -32600, Value::Null),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":1}".into(),
            400,
            -32600,
            json!(1),
        ),
        (call(json!(2), json!([1])), 200, -32602, json!(2)),
        (call(json!("s"), json!("x")), 200, -32602, json!("s")),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\"}".into(),
            200,
            -32602,
            json!(3),
        ),
        (huge_name, 200, -32602, json!(9)),
    ];
    for (body, status, code, id) in rows {
        let shown = &body[..body.len().min(80)];
        let answers = both.both(&[], &body).await;
        for (path, (got, message)) in ["fast path", "rmcp path"].iter().zip(&answers) {
            assert_eq!(*got, status, "{path}, {shown}: {message}");
            assert_eq!(message["jsonrpc"], "2.0", "{path}, {shown}: {message}");
            assert_eq!(message["error"]["code"], code, "{path}, {shown}: {message}");
            assert_eq!(message["id"], id, "{path}, {shown}: {message}");
        }
    }
}
