//! Fixtures: a real registry over SQLite, rmcp upstreams whose tools and failures tests
//! control, a gateway on 127.0.0.1:0, and an rmcp client of it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use mcp_fleet_gateway::{Gateway, GatewayConfig};
use rmcp::model::SubscriptionFilter;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    Implementation, ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{
    NotificationContext, Peer, RequestContext, RunningService, SubscriptionContext,
    SubscriptionSink,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) use mcp_fleet_test_support::poll as eventually;

/// A registry without a health worker (entries stay `unknown`, which the gateway uses), with
/// the gateway suite's way of registering upstreams and setting routes.
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

/// How an upstream's tool calls end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failing {
    /// Every call succeeds.
    Never,
    /// `n` of every 100 calls are results with `isError: true`.
    ToolErrorsPercent(usize),
    /// Every call is a JSON-RPC internal error.
    RpcErrors,
}

/// What an upstream shares across sessions.
pub(crate) struct UpstreamState {
    id: String,
    tools: RwLock<Vec<Tool>>,
    failing: Mutex<Failing>,
    pub(crate) calls: AtomicUsize,
    /// `tools/call` requests read and then dropped with their connection (see
    /// [`Upstream::start_dying_mid_call`]).
    pub(crate) dropped: AtomicUsize,
    peers: Mutex<Vec<Peer<RoleServer>>>,
    /// Open `subscriptions/listen` streams (clients on 2026-07-28).
    sinks: Mutex<Vec<SubscriptionSink>>,
    /// The protocol revisions it supports.
    versions: RwLock<&'static [ProtocolVersion]>,
    /// The revision of each tool call, as it read it.
    pub(crate) call_versions: Mutex<Vec<String>>,
}

/// A tool whose definition says calling it twice does no more than once.
pub(crate) fn idempotent(name: &str) -> Tool {
    tool(name).with_annotations(ToolAnnotations::new().idempotent(true))
}

pub(crate) fn tool(name: &str) -> Tool {
    let schema = json!({"type": "object"});
    let Value::Object(schema) = schema else {
        unreachable!("a literal object")
    };
    Tool::new(
        name.to_owned(),
        format!("The {name} tool"),
        Arc::new(schema),
    )
}

#[derive(Clone)]
struct UpstreamHandler(Arc<UpstreamState>);

impl ServerHandler for UpstreamHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new(self.0.id.clone(), "1.0.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.0.tools.read().expect("lock").clone(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst);
        let version = context
            .protocol_version()
            .map_or_else(String::new, |v| v.as_str().to_owned());
        self.0.call_versions.lock().expect("lock").push(version);
        // The request's id tells whose client sent it: rmcp's numbers, the discovery library's
        // own path strings.
        let answer = json!({"server": self.0.id, "tool": request.name, "requestId": context.id});
        match *self.0.failing.lock().expect("lock") {
            Failing::RpcErrors => Err(ErrorData::internal_error("upstream broke", None)),
            Failing::ToolErrorsPercent(p) if n % 100 < p => {
                Ok(CallToolResult::structured_error(answer).into())
            }
            _ => Ok(CallToolResult::structured(answer).into()),
        }
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.0.peers.lock().expect("lock").push(context.peer);
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(*self.0.versions.read().expect("lock"))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let sink = context.sink().clone();
        self.0.sinks.lock().expect("lock").push(sink);
        context.cancelled().await;
        Ok(())
    }
}

/// A running (or stopped) upstream MCP server.
pub(crate) struct Upstream {
    pub(crate) state: Arc<UpstreamState>,
    pub(crate) base_url: String,
    addr: SocketAddr,
    stop: Option<CancellationToken>,
    dies_mid_call: bool,
    /// When set, requests need one of these bearer tokens.
    guard: Option<mcp_fleet_test_support::Accepted>,
    /// Serves `https://` with this certificate.
    tls: Option<mcp_fleet_test_support::TestCert>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = &self.stop {
            stop.cancel();
        }
    }
}

impl Upstream {
    pub(crate) async fn start(id: &str, tools: &[&str]) -> Self {
        let tools = tools.iter().map(|t| tool(t)).collect();
        Self::start_with(id, tools, false, std::net::Ipv4Addr::LOCALHOST, None, None).await
    }

    /// [`Self::start`] on another loopback address, e.g. 127.0.0.2.
    pub(crate) async fn start_on(id: &str, tools: &[&str], ip: std::net::Ipv4Addr) -> Self {
        Self::start_with(
            id,
            tools.iter().map(|t| tool(t)).collect(),
            false,
            ip,
            None,
            None,
        )
        .await
    }

    /// An upstream offering `tools` that speaks only the protocol revisions `versions`.
    pub(crate) async fn start_speaking(
        id: &str,
        tools: &[&str],
        versions: &'static [ProtocolVersion],
    ) -> Self {
        let tools = tools.iter().map(|t| tool(t)).collect();
        let up =
            Self::start_with(id, tools, false, std::net::Ipv4Addr::LOCALHOST, None, None).await;
        *up.state.versions.write().expect("lock") = versions;
        up
    }

    /// An upstream offering `tools` as defined.
    pub(crate) async fn start_tools(id: &str, tools: Vec<Tool>) -> Self {
        Self::start_with(id, tools, false, std::net::Ipv4Addr::LOCALHOST, None, None).await
    }

    /// A fault: an upstream that serves MCP but dies in every tool call, after reading the
    /// request (its connection closes without an answer). It counts them in `dropped`.
    pub(crate) async fn start_dying_mid_call(id: &str, tools: Vec<Tool>) -> Self {
        Self::start_with(id, tools, true, std::net::Ipv4Addr::LOCALHOST, None, None).await
    }

    /// An upstream that answers only bearers of `accepted` tokens.
    pub(crate) async fn start_guarded(
        id: &str,
        tools: &[&str],
        accepted: mcp_fleet_test_support::Accepted,
    ) -> Self {
        let tools = tools.iter().map(|t| tool(t)).collect();
        Self::start_with(
            id,
            tools,
            false,
            std::net::Ipv4Addr::LOCALHOST,
            Some(accepted),
            None,
        )
        .await
    }

    /// An upstream offering `tools` over `https://` (127.0.0.1) with `cert`.
    pub(crate) async fn start_tls(
        id: &str,
        tools: &[&str],
        cert: &mcp_fleet_test_support::TestCert,
    ) -> Self {
        let tools = tools.iter().map(|t| tool(t)).collect();
        Self::start_with(
            id,
            tools,
            false,
            std::net::Ipv4Addr::LOCALHOST,
            None,
            Some(cert.clone()),
        )
        .await
    }

    async fn start_with(
        id: &str,
        tools: Vec<Tool>,
        dies_mid_call: bool,
        ip: std::net::Ipv4Addr,
        guard: Option<mcp_fleet_test_support::Accepted>,
        tls: Option<mcp_fleet_test_support::TestCert>,
    ) -> Self {
        let state = Arc::new(UpstreamState {
            id: id.to_owned(),
            tools: RwLock::new(tools),
            failing: Mutex::new(Failing::Never),
            calls: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            peers: Mutex::new(Vec::new()),
            sinks: Mutex::new(Vec::new()),
            versions: RwLock::new(ProtocolVersion::KNOWN_VERSIONS),
            call_versions: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut up = Self {
            state,
            base_url: format!("{scheme}://{addr}"),
            addr,
            stop: None,
            dies_mid_call,
            guard,
            tls,
        };
        up.serve(listener);
        up
    }

    /// Tool calls it answered.
    pub(crate) fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Tool calls it read and dropped.
    pub(crate) fn dropped(&self) -> usize {
        self.state.dropped.load(Ordering::SeqCst)
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let host = self.addr.ip().to_string();
        let config = StreamableHttpServerConfig::default()
            .with_cancellation_token(stop.child_token())
            .with_allowed_hosts(["localhost", "127.0.0.1", "::1", host.as_str()]);
        let state = self.state.clone();
        let mcp = StreamableHttpService::new(
            move || Ok(UpstreamHandler(state.clone())),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let mut app = Router::new().nest_service("/mcp", mcp);
        if let Some(accepted) = &self.guard {
            app = mcp_fleet_test_support::require_bearer(app, accepted.clone());
        }
        let until = stop.clone();
        if self.dies_mid_call {
            tokio::spawn(serve_dying_mid_call(
                listener,
                app,
                self.state.clone(),
                until,
            ));
        } else if let Some(cert) = &self.tls {
            let listener = cert.listener(listener);
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(until.cancelled_owned())
                    .await
            });
        } else {
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(until.cancelled_owned())
                    .await
            });
        }
        self.stop = Some(stop);
    }

    pub(crate) fn fail(&self, failing: Failing) {
        *self.state.failing.lock().expect("lock") = failing;
    }

    /// Adds `name` to the tools and tells connected clients.
    pub(crate) async fn add_tool(&self, name: &str) {
        self.state.tools.write().expect("lock").push(tool(name));
        let peers = self.state.peers.lock().expect("lock").clone();
        for p in peers {
            let _ = p.notify_tool_list_changed().await;
        }
        let sinks = self.state.sinks.lock().expect("lock").clone();
        for sink in sinks {
            let _ = sink.notify_tool_list_changed().await;
        }
    }

    /// Stops serving (open sessions end).
    pub(crate) fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
        self.state.peers.lock().expect("lock").clear();
        self.state.sinks.lock().expect("lock").clear();
    }

    /// Serves again on the same port.
    pub(crate) async fn restart(&mut self) {
        let listener = eventually("the port to be free again", || async {
            TcpListener::bind(self.addr).await.ok()
        })
        .await;
        self.serve(listener);
    }
}

/// Serves `app` until `stop`, except that a `tools/call` is read, counted and answered by
/// closing its connection (hyper closes a connection whose service fails).
async fn serve_dying_mid_call(
    listener: TcpListener,
    app: Router,
    state: Arc<UpstreamState>,
    stop: CancellationToken,
) {
    use tower::ServiceExt;
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (app, state, stop) = (app.clone(), state.clone(), stop.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let (app, state) = (app.clone(), state.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let bytes = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX)
                            .await
                            .map_err(|e| e.to_string())?;
                        let message: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                        if message["method"] == "tools/call" {
                            state.dropped.fetch_add(1, Ordering::SeqCst);
                            return Err("died mid-call".to_owned());
                        }
                        let request =
                            axum::http::Request::from_parts(parts, axum::body::Body::from(bytes));
                        app.oneshot(request).await.map_err(|e| match e {})
                    }
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
        });
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
