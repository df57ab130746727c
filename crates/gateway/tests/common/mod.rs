//! Fixtures: a real registry over SQLite, rmcp upstreams whose tools and failures tests
//! control (test-support's `McpServer`), a gateway on 127.0.0.1:0, and an rmcp client of it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use mcp_fleet_gateway::{Gateway, GatewayConfig};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) use mcp_fleet_test_support::mcp_server::{
    Failing, McpServer as Upstream, Speaks, idempotent, tool,
};
pub(crate) use mcp_fleet_test_support::poll as eventually;

/// A registry without a health worker (entries stay `unknown`, which the gateway uses) unless
/// started checked, with the gateway suite's way of registering upstreams and setting routes.
pub(crate) struct TestRegistry(mcp_fleet_test_support::TestRegistry);

impl std::ops::Deref for TestRegistry {
    type Target = mcp_fleet_test_support::TestRegistry;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestRegistry {
    pub(crate) async fn start() -> Self {
        Self(mcp_fleet_test_support::TestRegistry::start().await)
    }

    /// A registry over `db` (SQLite or PostgreSQL).
    pub(crate) async fn start_with(db: mcp_fleet_test_support::TestDb) -> Self {
        Self(
            mcp_fleet_test_support::registry::start_with(db, mcp_fleet_registry::Config::default())
                .await,
        )
    }

    /// A registry over SQLite with a health worker configured by `health` (which lists each
    /// upstream's catalog).
    pub(crate) async fn start_checked(health: mcp_fleet_registry::HealthConfig) -> Self {
        Self(
            mcp_fleet_test_support::registry::start_checked(
                mcp_fleet_test_support::sqlite(),
                health,
            )
            .await,
        )
    }

    /// A registry on `listener`.
    pub(crate) async fn start_on(listener: TcpListener) -> Self {
        Self(mcp_fleet_test_support::TestRegistry::start_on(listener).await)
    }

    /// Registers `id` (of `service`, at `version`) at `base_url`, tagged `gw`.
    pub(crate) async fn register(&self, id: &str, service: &str, version: &str, base_url: &str) {
        let mut body = json!({
            "id": id, "name": format!("Upstream {id}"), "url": base_url,
            "version": version, "tags": ["gw"],
        });
        if service != id {
            body["service"] = json!(service);
        }
        self.0.register(&body).await;
    }

    /// `PUT /services/{service}/routing` with `body`, which must be accepted.
    pub(crate) async fn put_routing(&self, service: &str, body: Value) {
        let (status, answer) = self.0.put_routing(service, &body).await;
        assert!((200..300).contains(&status), "{status} {answer}");
    }
}

/// A gateway on 127.0.0.1:0.
pub(crate) struct TestGateway {
    pub(crate) gateway: Gateway,
    pub(crate) url: String,
    shutdown: CancellationToken,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestGateway {
    pub(crate) async fn start(config: GatewayConfig) -> Self {
        let gateway = Gateway::start(config).await.expect("gateway starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        tokio::spawn(gateway.clone().serve(listener, shutdown.clone()));
        Self {
            gateway,
            url,
            shutdown,
        }
    }

    pub(crate) fn config(registry: &TestRegistry) -> GatewayConfig {
        let mut config = GatewayConfig::new(registry.url.clone());
        config.tags = vec!["gw".into()];
        config.debounce = Duration::from_millis(50);
        config.policy_refresh = Duration::from_millis(200);
        config.call_timeout = Duration::from_secs(5);
        config.canary_report_interval = Some(Duration::from_millis(100));
        config
    }

    /// Waits until the gateway counts `n` open sessions: rmcp hands a session's `initialized`
    /// to its handler in a task of its own, after answering `202`, and only then does the fast
    /// path know the session.
    pub(crate) async fn wait_for_sessions(&self, n: usize) {
        let line = format!("mcp_fleet_gateway_sessions {n}");
        eventually("the gateway to count its sessions", || async {
            self.metrics()
                .await
                .lines()
                .any(|l| l == line)
                .then_some(())
        })
        .await;
    }

    pub(crate) async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text")
    }
}

/// A stock rmcp client that counts `tools/list_changed` notifications.
#[derive(Clone, Default)]
pub(crate) struct Client {
    pub(crate) list_changed: Arc<AtomicUsize>,
    pub(crate) changed: Arc<Notify>,
}

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("gateway-test", "1.0.0"),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.list_changed.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

pub(crate) type Session = RunningService<RoleClient, Client>;

/// Opens an MCP session with the gateway at `url`.
pub(crate) async fn connect(url: &str) -> (Session, Client) {
    let client = Client::default();
    let transport = StreamableHttpClientTransport::from_uri(format!("{url}/mcp"));
    let session = client.clone().serve(transport).await.expect("session");
    (session, client)
}

/// Calls `name` with no arguments.
pub(crate) async fn call(
    session: &Session,
    name: &str,
) -> Result<CallToolResult, rmcp::ServiceError> {
    session
        .call_tool(CallToolRequestParams::new(name.to_owned()))
        .await
}

/// Tool names the session lists.
pub(crate) async fn names(session: &Session) -> Vec<String> {
    let mut names: Vec<String> = session
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

/// A webhook receiver on 127.0.0.1:0 keeping every JSON body it is sent.
pub(crate) struct Webhook {
    pub(crate) url: String,
    pub(crate) received: Arc<Mutex<Vec<Value>>>,
    stop: CancellationToken,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Webhook {
    pub(crate) async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let keep = received.clone();
        let app = Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let keep = keep.clone();
                async move {
                    keep.lock().expect("lock").push(body);
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let stop = CancellationToken::new();
        let url = format!(
            "{}/hook",
            mcp_fleet_test_support::serve(app, stop.clone()).await
        );
        Self {
            url,
            received,
            stop,
        }
    }
}

/// Which upstream answered: the `server` of a test upstream's structured result.
pub(crate) fn server_of(result: &CallToolResult) -> String {
    result
        .structured_content
        .as_ref()
        .and_then(|v| v.get("server"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A session opened over plain HTTP on protocol 2025-11-25, whose tool calls the gateway
/// answers on its fast path (one JSON message; the stock rmcp client's stateless 2026-07-28
/// calls go through rmcp's server instead).
pub(crate) struct JsonSession {
    http: reqwest::Client,
    url: String,
    id: String,
    next: AtomicUsize,
}

impl JsonSession {
    const ACCEPT: &str = "application/json, text/event-stream";

    fn post(&self, id: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(format!("{}/mcp", self.url))
            .header("accept", Self::ACCEPT)
            .header("mcp-protocol-version", "2025-11-25")
            .json(body);
        if let Some(id) = id {
            request = request.header("mcp-session-id", id);
        }
        request
    }

    /// Initializes a session with the gateway at `url`.
    pub(crate) async fn open(url: &str) -> Self {
        let mut session = Self {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            id: String::new(),
            next: AtomicUsize::new(1),
        };
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "plain-http", "version": "1.0.0"}}});
        let opened = session.post(None, &init).send().await.expect("initialize");
        assert!(opened.status().is_success(), "{}", opened.status());
        session.id = opened
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("a session id")
            .to_owned();
        drop(opened);
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let noted = session
            .post(Some(&session.id), &initialized)
            .send()
            .await
            .expect("initialized");
        assert_eq!(noted.status().as_u16(), 202);
        session
    }

    /// POSTs `body` in the session: the status and the whole answer.
    pub(crate) async fn post_raw(&self, body: &Value) -> (u16, Vec<u8>) {
        let answer = self
            .post(Some(&self.id), body)
            .send()
            .await
            .expect("answer");
        let status = answer.status().as_u16();
        (status, answer.bytes().await.expect("body").to_vec())
    }

    /// The JSON-RPC message answering a `tools/call` of `name`: the fast path's JSON body, or
    /// the message in rmcp's event stream when the gateway routes everything through rmcp.
    pub(crate) async fn call_raw(&self, name: &str) -> Vec<u8> {
        let (content_type, body) = self.call_answer(name).await;
        if content_type.starts_with("text/event-stream") {
            return sse_message(&body);
        }
        assert_eq!(content_type, "application/json", "a JSON-RPC answer");
        body
    }

    /// The content type and body of the answer to a `tools/call` of `name`.
    pub(crate) async fn call_answer(&self, name: &str) -> (String, Vec<u8>) {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let call = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": name, "arguments": {}}});
        let answer = self
            .post(Some(&self.id), &call)
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(answer.status().as_u16(), 200);
        let content_type = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            content_type,
            answer.bytes().await.expect("the answer").to_vec(),
        )
    }

    /// A `tools/call` of `name`: its result, or its JSON-RPC error (`error` member).
    pub(crate) async fn call(&self, name: &str) -> Result<Value, Value> {
        let mut answer: Value =
            serde_json::from_slice(&self.call_raw(name).await).expect("a JSON-RPC message");
        match answer.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(answer["error"].take()),
        }
    }
}

/// The JSON-RPC response in an event stream's `data:` lines (rmcp's answer to a request).
pub(crate) fn sse_message(stream: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(stream)
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .find(|data| {
            serde_json::from_str::<Value>(data)
                .is_ok_and(|m| m.get("result").is_some() || m.get("error").is_some())
        })
        .expect("a response in the event stream")
        .as_bytes()
        .to_vec()
}

/// The JSON-RPC id the upstream saw on the call that gave `result` (a test upstream's
/// `requestId`): rmcp's client sends numbers, the discovery library's own path strings.
pub(crate) fn upstream_request_id(result: &Value) -> Value {
    result["structuredContent"]["requestId"].clone()
}
