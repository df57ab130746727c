//! A small real MCP server (rmcp's streamable HTTP server) for the discovery and gateway suites:
//! a tool list tests can change at run time (announced with `notifications/tools/list_changed`),
//! counters of what it was asked (`tools/list`, tool calls, event streams, connections), tool
//! calls that fail on demand, optionally bearer-protected or over `https://`, limited to some
//! protocol revisions (with `subscriptions/listen` streams told of tool changes on 2026-07-28,
//! and the revision of every tool call recorded), stopped and restarted on the same port; and,
//! as a fault, one that dies in every tool call.
//!
//! A tool call answers `structuredContent` `{server, tool, arguments, requestId}`.
//!
//! Over 500 lines: one server with every knob the discovery and gateway suites turn (tools,
//! failures, guards, TLS, protocol revisions, faults), so that both suites test against the same
//! one.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult, ListToolsResult,
    PaginatedRequestParams, PingRequest, Prompt, PromptMessage, ProtocolVersion, Role,
    ServerCapabilities, ServerConfig, ServerRequest, SubscriptionFilter, Tool, ToolAnnotations,
};
use rmcp::service::{
    NotificationContext, Peer, RequestContext, SubscriptionContext, SubscriptionSink,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Accepted, DEADLINE, TestCert, poll};

/// A tool that pings the client and adds [`CHATTY_ADDS`] during its call, when offered.
pub const CHATTY: &str = "chatty";
/// The tool a call of [`CHATTY`] adds.
pub const CHATTY_ADDS: &str = "chatty_added";

/// Tool `name`, taking an optional string `query`.
pub fn tool(name: &str) -> Tool {
    let schema = json!({"type": "object", "properties": {"query": {"type": "string"}}});
    let Value::Object(schema) = schema else {
        unreachable!("a literal object")
    };
    Tool::new(
        name.to_owned(),
        format!("The {name} tool"),
        Arc::new(schema),
    )
}

/// A tool whose definition says calling it twice does no more than once.
pub fn idempotent(name: &str) -> Tool {
    tool(name).with_annotations(ToolAnnotations::new().idempotent(true))
}

/// How a server's tool calls end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failing {
    /// Every call succeeds.
    Never,
    /// `n` of every 100 calls are results with `isError: true`.
    ToolErrorsPercent(usize),
    /// Every call is a JSON-RPC internal error.
    RpcErrors,
}

/// The protocol side of a server.
#[derive(Debug, Clone)]
pub struct Speaks {
    /// The revisions it supports.
    pub versions: &'static [ProtocolVersion],
    /// The `ttlMs` of its listings (2026-07-28; rmcp says 0 when not told).
    pub ttl_ms: Option<u64>,
    /// Whether it accepts `subscriptions/listen`.
    pub listen: bool,
}

impl Speaks {
    /// The newest revision with sessions only (`initialize`, server-to-client requests).
    pub fn session() -> Self {
        Self {
            versions: &[ProtocolVersion::V_2025_11_25],
            ..Self::default()
        }
    }

    /// Only the revisions `versions`, with `subscriptions/listen` and no `ttlMs`.
    pub fn only(versions: &'static [ProtocolVersion]) -> Self {
        Self {
            versions,
            ..Self::default()
        }
    }
}

impl Default for Speaks {
    /// Every revision rmcp knows, `subscriptions/listen` accepted, no `ttlMs`.
    fn default() -> Self {
        Self {
            versions: ProtocolVersion::KNOWN_VERSIONS,
            ttl_ms: None,
            listen: true,
        }
    }
}

/// What a server shares across its sessions (and across restarts).
pub struct McpState {
    id: String,
    tools: RwLock<Vec<Tool>>,
    failing: Mutex<Failing>,
    /// Tool calls answered.
    pub calls: AtomicUsize,
    /// `tools/call` requests read and then dropped with their connection (see
    /// [`McpServer::start_dying_mid_call`]).
    pub dropped: AtomicUsize,
    list_requests: AtomicUsize,
    event_streams: AtomicUsize,
    /// TCP connections accepted.
    connections: AtomicUsize,
    peers: Mutex<Vec<Peer<RoleServer>>>,
    /// The protocol revision of each tool call, as the server read it.
    call_versions: Mutex<Vec<String>>,
    /// Open `subscriptions/listen` streams (2026-07-28).
    sinks: Mutex<Vec<SubscriptionSink>>,
    speaks: Speaks,
}

#[derive(Clone)]
struct Handler(Arc<McpState>);

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new(self.0.id.clone(), "1.2.3"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.0.list_requests.fetch_add(1, Ordering::SeqCst);
        let tools = self.0.tools.read().expect("tools lock").clone();
        let listing = ListToolsResult::with_all_items(tools);
        Ok(match self.0.speaks.ttl_ms {
            Some(ttl) => listing.with_ttl_ms(ttl),
            None => listing,
        })
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(self.0.speaks.versions)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        self.0
            .speaks
            .listen
            .then(|| requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.0
            .sinks
            .lock()
            .expect("sinks lock")
            .push(context.sink().clone());
        context.cancelled().await;
        Ok(())
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
        self.0
            .call_versions
            .lock()
            .expect("versions lock")
            .push(version);
        if request.name == CHATTY {
            // Talks back before answering: a ping the client must answer, then a new tool
            // announced with `tools/list_changed`, both on this call's response stream.
            context
                .peer
                .send_request(ServerRequest::PingRequest(PingRequest::default()))
                .await
                .map_err(|e| ErrorData::internal_error(format!("ping failed: {e}"), None))?;
            self.0
                .tools
                .write()
                .expect("tools lock")
                .push(tool(CHATTY_ADDS));
            let _ = context.peer.notify_tool_list_changed().await;
        }
        let known = self
            .0
            .tools
            .read()
            .expect("tools lock")
            .iter()
            .any(|t| t.name == request.name);
        if !known {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {}", request.name),
                None,
            ));
        }
        // The request's id tells whose client sent it: rmcp's numbers, the discovery library's
        // own path strings.
        let answer = json!({
            "server": self.0.id,
            "tool": request.name,
            "arguments": request.arguments,
            "requestId": context.id,
        });
        match *self.0.failing.lock().expect("failing lock") {
            Failing::RpcErrors => Err(ErrorData::internal_error("upstream broke", None)),
            Failing::ToolErrorsPercent(p) if n % 100 < p => {
                Ok(CallToolResult::structured_error(answer).into())
            }
            _ => Ok(CallToolResult::structured(answer).into()),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "greet",
            Some("Say hello"),
            None,
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let text = format!("hello from {} ({})", self.0.id, request.name);
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).into())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.0.peers.lock().expect("peers lock").push(context.peer);
    }
}

/// How a server is started.
struct Options {
    ip: Ipv4Addr,
    accepted: Option<Accepted>,
    tls: Option<TestCert>,
    dies_mid_call: bool,
    speaks: Speaks,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ip: Ipv4Addr::LOCALHOST,
            accepted: None,
            tls: None,
            dies_mid_call: false,
            speaks: Speaks::default(),
        }
    }
}

/// A running (or stopped) MCP server at `base_url` + `/mcp`.
pub struct McpServer {
    /// Its counters, shared by its sessions.
    pub state: Arc<McpState>,
    /// `http://127.0.0.1:PORT` (or `https://`).
    pub base_url: String,
    addr: SocketAddr,
    options: Options,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.running {
            stop.cancel();
        }
    }
}

impl McpServer {
    /// Server `id` offering `tools`, open to anyone.
    pub async fn start(id: &str, tools: &[&str]) -> Self {
        Self::start_inner(id, named(tools), Options::default()).await
    }

    /// Server `id` offering `tools`; with `accepted`, only to bearers of those tokens.
    pub async fn start_with(id: &str, tools: &[&str], accepted: Option<Accepted>) -> Self {
        let options = Options {
            accepted,
            ..Options::default()
        };
        Self::start_inner(id, named(tools), options).await
    }

    /// Server `id` offering `tools` only to bearers of `accepted` tokens.
    pub async fn start_guarded(id: &str, tools: &[&str], accepted: Accepted) -> Self {
        Self::start_with(id, tools, Some(accepted)).await
    }

    /// [`Self::start`] on another loopback address, e.g. 127.0.0.2.
    pub async fn start_on(id: &str, tools: &[&str], ip: Ipv4Addr) -> Self {
        let options = Options {
            ip,
            ..Options::default()
        };
        Self::start_inner(id, named(tools), options).await
    }

    /// Server `id` offering `tools` over `https://` (127.0.0.1) with `cert`.
    pub async fn start_tls(id: &str, tools: &[&str], cert: &TestCert) -> Self {
        let options = Options {
            tls: Some(cert.clone()),
            ..Options::default()
        };
        Self::start_inner(id, named(tools), options).await
    }

    /// Server `id` offering `tools` as defined.
    pub async fn start_tools(id: &str, tools: Vec<Tool>) -> Self {
        Self::start_inner(id, tools, Options::default()).await
    }

    /// Server `id` offering `tools`, speaking as `speaks` says.
    pub async fn start_speaking(id: &str, tools: &[&str], speaks: Speaks) -> Self {
        let options = Options {
            speaks,
            ..Options::default()
        };
        Self::start_inner(id, named(tools), options).await
    }

    /// A fault: a server that serves MCP but dies in every tool call, after reading the
    /// request (its connection closes without an answer). It counts them in `dropped`.
    pub async fn start_dying_mid_call(id: &str, tools: Vec<Tool>) -> Self {
        let options = Options {
            dies_mid_call: true,
            ..Options::default()
        };
        Self::start_inner(id, tools, options).await
    }

    async fn start_inner(id: &str, tools: Vec<Tool>, options: Options) -> Self {
        let state = Arc::new(McpState {
            id: id.to_owned(),
            tools: RwLock::new(tools),
            failing: Mutex::new(Failing::Never),
            calls: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            list_requests: AtomicUsize::new(0),
            event_streams: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            peers: Mutex::new(Vec::new()),
            call_versions: Mutex::new(Vec::new()),
            sinks: Mutex::new(Vec::new()),
            speaks: options.speaks.clone(),
        });
        let listener = TcpListener::bind((options.ip, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut server = Self {
            state,
            base_url: format!("{scheme}://{addr}"),
            addr,
            options,
            running: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let host = self.addr.ip().to_string();
        let config = StreamableHttpServerConfig::default()
            .with_cancellation_token(stop.child_token())
            .with_allowed_hosts(["localhost", "127.0.0.1", "::1", host.as_str()]);
        let state = self.state.clone();
        let mcp = StreamableHttpService::new(
            move || Ok(Handler(state.clone())),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let state = self.state.clone();
        let mut app = Router::new()
            .nest_service("/mcp", mcp)
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    if req.method() == Method::GET {
                        state.event_streams.fetch_add(1, Ordering::SeqCst);
                    }
                    next.run(req)
                },
            ));
        if let Some(accepted) = &self.options.accepted {
            app = crate::require_bearer(app, accepted.clone());
        }
        let until = stop.clone();
        let state = self.state.clone();
        let count = move || {
            state.connections.fetch_add(1, Ordering::SeqCst);
        };
        let task = if self.options.dies_mid_call {
            tokio::spawn(serve_dying_mid_call(
                listener,
                app,
                self.state.clone(),
                until,
            ))
        } else if let Some(cert) = &self.options.tls {
            // Nagle's algorithm stays on, as with most servers (axum's default).
            let listener = cert.listener(listener).tap_io(move |_| count());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(until.cancelled_owned())
                    .await;
            })
        } else {
            let listener = listener.tap_io(move |_| count());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(until.cancelled_owned())
                    .await;
            })
        };
        self.running = Some((stop, task));
    }

    /// Makes its tool calls end as `failing` says.
    pub fn fail(&self, failing: Failing) {
        *self.state.failing.lock().expect("failing lock") = failing;
    }

    /// Adds tool `name` and tells every connected client.
    pub async fn add_tool(&self, name: &str) {
        self.state
            .tools
            .write()
            .expect("tools lock")
            .push(tool(name));
        self.tell_tools_changed().await;
    }

    /// Replaces its tools with `tools` (the same names with other descriptions or schemas, say)
    /// and tells every connected client.
    pub async fn set_tools(&self, tools: Vec<Tool>) {
        *self.state.tools.write().expect("tools lock") = tools;
        self.tell_tools_changed().await;
    }

    /// The tools it lists now.
    pub fn tools(&self) -> Vec<Tool> {
        self.state.tools.read().expect("tools lock").clone()
    }

    async fn tell_tools_changed(&self) {
        let peers = self.state.peers.lock().expect("peers lock").clone();
        for peer in peers {
            // A client that went away is no reason to fail.
            let _ = peer.notify_tool_list_changed().await;
        }
        let sinks = self.state.sinks.lock().expect("sinks lock").clone();
        for sink in sinks {
            let _ = sink.notify_tool_list_changed().await;
        }
    }

    /// Stops serving at once (open sessions end).
    pub fn kill(&mut self) {
        if let Some((stop, _)) = self.running.take() {
            stop.cancel();
        }
        self.state.peers.lock().expect("peers lock").clear();
        self.state.sinks.lock().expect("sinks lock").clear();
    }

    /// Stops the server and waits until it has: its sessions end and its port refuses
    /// connections.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            let done = tokio::time::timeout(DEADLINE, task).await;
            assert!(done.is_ok(), "server {} did not stop", self.state.id);
        }
        self.state.peers.lock().expect("peers lock").clear();
        self.state.sinks.lock().expect("sinks lock").clear();
    }

    /// Starts the stopped server again on the same port (sessions are not kept).
    pub async fn restart(&mut self) {
        let listener = poll("the port to be free again", || async {
            TcpListener::bind(self.addr).await.ok()
        })
        .await;
        self.serve(listener);
    }

    /// How many `tools/list` requests it has answered.
    pub fn list_requests(&self) -> usize {
        self.state.list_requests.load(Ordering::SeqCst)
    }

    /// How many event streams (`GET /mcp`) clients have opened.
    pub fn event_streams(&self) -> usize {
        self.state.event_streams.load(Ordering::SeqCst)
    }

    /// How many TCP connections it has accepted.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// How many tool calls it has answered.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The protocol revision of each tool call so far.
    pub fn call_versions(&self) -> Vec<String> {
        self.state
            .call_versions
            .lock()
            .expect("versions lock")
            .clone()
    }

    /// How many sessions were opened with `initialize` (since the last restart).
    pub fn sessions(&self) -> usize {
        self.state.peers.lock().expect("peers lock").len()
    }

    /// How many `subscriptions/listen` streams were opened (since the last restart).
    pub fn subscriptions(&self) -> usize {
        self.state.sinks.lock().expect("sinks lock").len()
    }

    /// How many tool calls it read and dropped.
    pub fn dropped(&self) -> usize {
        self.state.dropped.load(Ordering::SeqCst)
    }
}

fn named(tools: &[&str]) -> Vec<Tool> {
    tools.iter().map(|t| tool(t)).collect()
}

/// Serves `app` until `stop`, except that a `tools/call` is read, counted and answered by
/// closing its connection (hyper closes a connection whose service fails).
async fn serve_dying_mid_call(
    listener: TcpListener,
    app: Router,
    state: Arc<McpState>,
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
        state.connections.fetch_add(1, Ordering::SeqCst);
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
