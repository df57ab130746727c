//! A small rmcp MCP server with a tool list that tests can change at run time (announcing it
//! with `notifications/tools/list_changed`, to sessions and to `subscriptions/listen` streams),
//! that counts the `tools/list` requests and event streams it gets, that can require a bearer
//! token, that can be limited to some protocol revisions, and that can be stopped and restarted
//! on the same port.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult, ListToolsResult,
    PaginatedRequestParams, PingRequest, Prompt, PromptMessage, ProtocolVersion, Role,
    ServerCapabilities, ServerConfig, ServerRequest, SubscriptionFilter, Tool,
};
use rmcp::service::{
    NotificationContext, Peer, RequestContext, SubscriptionContext, SubscriptionSink,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Accepted;

/// What a server shares across its sessions (and across restarts).
pub(crate) struct Shared {
    id: String,
    tools: RwLock<Vec<Tool>>,
    list_requests: AtomicUsize,
    event_streams: AtomicUsize,
    calls: AtomicUsize,
    /// TCP connections accepted.
    connections: AtomicUsize,
    peers: Mutex<Vec<Peer<RoleServer>>>,
    /// The protocol version of each tool call, as the server read it.
    call_versions: Mutex<Vec<String>>,
    /// Open `subscriptions/listen` streams (2026-07-28).
    sinks: Mutex<Vec<SubscriptionSink>>,
    /// When set, requests need `Authorization: Bearer <one of these>`.
    accepted: Option<Accepted>,
    speaks: Speaks,
}

/// The protocol side of a test server.
#[derive(Clone)]
pub(crate) struct Speaks {
    /// The revisions it supports.
    pub(crate) versions: &'static [ProtocolVersion],
    /// The `ttlMs` of its listings (2026-07-28; rmcp says 0 when not told).
    pub(crate) ttl_ms: Option<u64>,
    /// Whether it accepts `subscriptions/listen`.
    pub(crate) listen: bool,
}

impl Speaks {
    /// The newest revision with sessions only (`initialize`, server-to-client requests).
    pub(crate) fn session() -> Self {
        Self {
            versions: &[ProtocolVersion::V_2025_11_25],
            ..Self::default()
        }
    }
}

impl Default for Speaks {
    fn default() -> Self {
        Self {
            versions: ProtocolVersion::KNOWN_VERSIONS,
            ttl_ms: None,
            listen: true,
        }
    }
}

fn tool(name: &str) -> Tool {
    let schema = json!({"type": "object", "properties": {"query": {"type": "string"}}});
    let serde_json::Value::Object(schema) = schema else {
        unreachable!("a literal object")
    };
    Tool::new(
        name.to_owned(),
        format!("The {name} tool"),
        Arc::new(schema),
    )
}

/// A tool that pings the client and adds [`CHATTY_ADDS`] during its call, when offered.
pub(crate) const CHATTY: &str = "chatty";
/// The tool a call of [`CHATTY`] adds.
pub(crate) const CHATTY_ADDS: &str = "chatty_added";

#[derive(Clone)]
struct Handler(Arc<Shared>);

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
        self.0.calls.fetch_add(1, Ordering::SeqCst);
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
        Ok(CallToolResult::structured(json!({
            "server": self.0.id,
            "tool": request.name,
            "arguments": request.arguments,
            "requestId": context.id,
        }))
        .into())
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

/// A running (or stopped) test server.
pub(crate) struct TestServer {
    pub(crate) shared: Arc<Shared>,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base_url: String,
    addr: SocketAddr,
    running: Option<(CancellationToken, JoinHandle<std::io::Result<()>>)>,
    /// Serves `https://` with this certificate.
    tls: Option<mcp_fleet_test_support::TestCert>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.running {
            stop.cancel();
        }
    }
}

impl TestServer {
    /// Server `id` offering `tools`, open to anyone.
    pub(crate) async fn start(id: &str, tools: &[&str]) -> Self {
        Self::start_with(id, tools, None).await
    }

    /// Server `id` offering `tools`; with `accepted`, only to bearers of those tokens.
    pub(crate) async fn start_with(id: &str, tools: &[&str], accepted: Option<Accepted>) -> Self {
        Self::start_on(id, tools, accepted, std::net::Ipv4Addr::LOCALHOST).await
    }

    /// Server `id` offering `tools` over `https://` (127.0.0.1) with `cert`.
    pub(crate) async fn start_tls(
        id: &str,
        tools: &[&str],
        cert: &mcp_fleet_test_support::TestCert,
    ) -> Self {
        Self::start_inner(
            id,
            tools,
            None,
            std::net::Ipv4Addr::LOCALHOST,
            Some(cert.clone()),
        )
        .await
    }

    /// [`Self::start_with`] on another loopback address, e.g. 127.0.0.2.
    pub(crate) async fn start_on(
        id: &str,
        tools: &[&str],
        accepted: Option<Accepted>,
        ip: std::net::Ipv4Addr,
    ) -> Self {
        Self::start_inner(id, tools, accepted, ip, None).await
    }

    /// Server `id` offering `tools`, speaking as `speaks` says.
    pub(crate) async fn start_speaking(id: &str, tools: &[&str], speaks: Speaks) -> Self {
        Self::start_full(id, tools, None, std::net::Ipv4Addr::LOCALHOST, None, speaks).await
    }

    async fn start_inner(
        id: &str,
        tools: &[&str],
        accepted: Option<Accepted>,
        ip: std::net::Ipv4Addr,
        tls: Option<mcp_fleet_test_support::TestCert>,
    ) -> Self {
        Self::start_full(id, tools, accepted, ip, tls, Speaks::default()).await
    }

    async fn start_full(
        id: &str,
        tools: &[&str],
        accepted: Option<Accepted>,
        ip: std::net::Ipv4Addr,
        tls: Option<mcp_fleet_test_support::TestCert>,
        speaks: Speaks,
    ) -> Self {
        let shared = Arc::new(Shared {
            id: id.to_owned(),
            tools: RwLock::new(tools.iter().map(|t| tool(t)).collect()),
            list_requests: AtomicUsize::new(0),
            event_streams: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            peers: Mutex::new(Vec::new()),
            call_versions: Mutex::new(Vec::new()),
            sinks: Mutex::new(Vec::new()),
            accepted,
            speaks,
        });
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut server = Self {
            shared,
            base_url: format!("{scheme}://{addr}"),
            addr,
            running: None,
            tls,
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
        let shared = self.shared.clone();
        let mcp = StreamableHttpService::new(
            move || Ok(Handler(shared.clone())),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let shared = self.shared.clone();
        let app = Router::new()
            .nest_service("/mcp", mcp)
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    let shared = shared.clone();
                    async move { gate(shared, req, next).await }
                },
            ));
        let until = stop.clone();
        let counted = self.shared.clone();
        let count = move || {
            counted.connections.fetch_add(1, Ordering::SeqCst);
        };
        let tls = self.tls.clone();
        let task = tokio::spawn(async move {
            // Nagle's algorithm stays on, as with most servers (axum's default).
            match tls {
                Some(cert) => {
                    let listener = cert.listener(listener).tap_io(move |_| count());
                    axum::serve(listener, app)
                        .with_graceful_shutdown(until.cancelled_owned())
                        .await
                }
                None => {
                    let listener = listener.tap_io(move |_| count());
                    axum::serve(listener, app)
                        .with_graceful_shutdown(until.cancelled_owned())
                        .await
                }
            }
        });
        self.running = Some((stop, task));
    }

    /// Stops the server: its sessions end and its port refuses connections.
    pub(crate) async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            stop.cancel();
            let done = tokio::time::timeout(super::DEADLINE, task).await;
            assert!(done.is_ok(), "server {} did not stop", self.shared.id);
        }
        self.shared.peers.lock().expect("peers lock").clear();
        self.shared.sinks.lock().expect("sinks lock").clear();
    }

    /// Starts the stopped server again on the same port (sessions are not kept).
    pub(crate) async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("rebind the same port");
        self.serve(listener);
    }

    /// Adds tool `name` and tells every connected client.
    pub(crate) async fn add_tool(&self, name: &str) {
        self.shared
            .tools
            .write()
            .expect("tools lock")
            .push(tool(name));
        let peers = self.shared.peers.lock().expect("peers lock").clone();
        for peer in peers {
            // A client that went away is no reason to fail.
            let _ = peer.notify_tool_list_changed().await;
        }
        let sinks = self.shared.sinks.lock().expect("sinks lock").clone();
        for sink in sinks {
            let _ = sink.notify_tool_list_changed().await;
        }
    }

    /// How many `tools/list` requests the server has answered.
    pub(crate) fn list_requests(&self) -> usize {
        self.shared.list_requests.load(Ordering::SeqCst)
    }

    /// How many event streams (`GET /mcp`) clients have opened.
    pub(crate) fn event_streams(&self) -> usize {
        self.shared.event_streams.load(Ordering::SeqCst)
    }

    /// How many TCP connections the server has accepted.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The protocol version of each tool call so far.
    pub(crate) fn call_versions(&self) -> Vec<String> {
        self.shared
            .call_versions
            .lock()
            .expect("versions lock")
            .clone()
    }

    /// How many sessions were opened with `initialize` (since the last restart).
    pub(crate) fn sessions(&self) -> usize {
        self.shared.peers.lock().expect("peers lock").len()
    }

    /// How many `subscriptions/listen` streams were opened (since the last restart).
    pub(crate) fn subscriptions(&self) -> usize {
        self.shared.sinks.lock().expect("sinks lock").len()
    }

    /// How many tool calls the server has answered.
    pub(crate) fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }
}

/// Counts event streams, and turns away requests without an accepted bearer token.
async fn gate(shared: Arc<Shared>, req: Request, next: Next) -> Response {
    if let Some(accepted) = &shared.accepted
        && !mcp_fleet_test_support::bearer_accepted(req.headers(), accepted)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"test\"")],
            "missing or invalid bearer token",
        )
            .into_response();
    }
    if req.method() == Method::GET {
        shared.event_streams.fetch_add(1, Ordering::SeqCst);
    }
    next.run(req).await
}
