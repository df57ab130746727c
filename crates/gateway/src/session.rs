//! One MCP session of a gateway client: the rmcp `ServerHandler` that answers it from the
//! shared catalog, remembering the version of each service it was routed to (sticky sessions).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CustomRequest, CustomResult, ErrorCode,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, Prompt,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::streamable_http_server::session::SessionRestoreMarker;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use crate::fast_call::{SESSION_HEADER, Sticky};
use crate::gateway::Inner;

/// The client-to-server request methods of MCP that the gateway answers.
const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/call",
    "tools/list",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

/// A client session.
pub(crate) struct Session {
    gateway: Arc<Inner>,
    /// Service → the version this session's calls go to.
    sticky: Arc<Sticky>,
    counted: AtomicBool,
    /// Its `Mcp-Session-Id`, once initialized: calls with it may skip rmcp (`fast_call`).
    id: OnceLock<Arc<str>>,
}

impl Session {
    pub(crate) fn new(gateway: Arc<Inner>) -> Self {
        Self {
            gateway,
            sticky: Arc::default(),
            counted: AtomicBool::new(false),
            id: OnceLock::new(),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.counted.load(Ordering::Relaxed) {
            self.gateway.metrics.sessions.dec();
        }
        if let Some(id) = self.id.get() {
            self.gateway.sessions.remove(id);
        }
    }
}

/// Whether the request of `context` is of a sessionless revision (2026-07-28 and later), whose
/// listings carry caching hints.
fn sessionless(context: &RequestContext<RoleServer>) -> bool {
    context
        .peer
        .peer_info()
        .is_some_and(|info| !info.protocol_version.has_initialize())
}

fn upstream_error(e: &mcp_fleet_discovery::DiscoveryError) -> ErrorData {
    if e.is_upstream() {
        ErrorData::internal_error(e.to_string(), None)
    } else {
        ErrorData::invalid_params(e.to_string(), None)
    }
}

impl ServerHandler for Session {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-fleet-gateway",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "The tools of an mcp-fleet fleet, named <service>__<tool>. Calls go to a healthy \
             instance of the service; a session keeps the version it was first routed to.",
        )
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if !self.counted.swap(true, Ordering::Relaxed) {
            self.gateway.metrics.sessions.inc();
        }
        let id = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get(SESSION_HEADER)?.to_str().ok());
        if let Some(id) = id {
            // The id carries the session: its seed and pinned versions, here as on the replica
            // that opened it.
            if let Ok(claims) = self.gateway.session_ids.open(id) {
                let expires = self.gateway.session_ids.sealer.expiry(claims.issued);
                self.sticky.take_up(&claims, expires);
            }
            if context.extensions.get::<SessionRestoreMarker>().is_some() {
                self.gateway.metrics.sessions_taken_up.inc();
                tracing::debug!(
                    "took up a session opened by another replica (or before a restart)"
                );
            }
            let id: Arc<str> = Arc::from(id);
            if self.id.set(id.clone()).is_ok() {
                self.gateway.sessions.insert(id, self.sticky.clone());
            }
        }
        self.gateway.add_peer(context.peer);
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // rmcp checks a sessionless request's `Mcp-Param-*` headers against the tool's schema.
        self.gateway.catalog().tool(name).cloned()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = self.gateway.list_tools()?;
        let listed = ListToolsResult::with_all_items(tools.as_ref().clone());
        Ok(if sessionless(&context) {
            // The same for every client (the gateway has no per-user view): public.
            listed
                .with_ttl_ms(self.gateway.list_ttl_ms())
                .with_cache_scope(CacheScope::Public)
        } else {
            listed
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.map_or(Value::Null, Value::Object);
        self.gateway
            .call(&self.sticky, &request.name, arguments)
            .await
            .map(Into::into)
    }

    /// rmcp hands a request whose params do not parse as its method's to this hook: for a
    /// method MCP defines that is invalid params, not an unknown method.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        if MCP_METHODS.contains(&request.method.as_str()) {
            return Err(ErrorData::invalid_params(
                format!(
                    "Invalid params: the params of {:?} do not fit it",
                    request.method
                ),
                None,
            ));
        }
        // rmcp's default answer repeats the method whole.
        Err(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            format!(
                "unknown method {:?}",
                mcp_fleet_discovery::clip(&request.method)
            ),
            None,
        ))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        // Fail open: what the reachable upstreams list.
        let listed = self.gateway.discovery().resources().await;
        for failure in &listed.failures {
            tracing::debug!(error = %failure, "resources/list of an upstream failed");
        }
        let mut resources: Vec<_> = listed.items.into_iter().map(|r| r.resource).collect();
        resources.sort_by(|a, b| a.uri.cmp(&b.uri));
        let listed = ListResourcesResult::with_all_items(resources);
        Ok(if sessionless(&context) {
            listed
                .with_ttl_ms(self.gateway.list_ttl_ms())
                .with_cache_scope(CacheScope::Public)
        } else {
            listed
        })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let listed = self.gateway.discovery().resources().await;
        let Some(owner) = listed.items.iter().find(|r| r.resource.uri == request.uri) else {
            return Err(ErrorData::resource_not_found(
                format!(
                    "no upstream lists resource {:?}",
                    mcp_fleet_discovery::clip(&request.uri)
                ),
                None,
            ));
        };
        self.gateway
            .discovery()
            .read_resource(&owner.server_id, &request.uri)
            .await
            .map(Into::into)
            .map_err(|e| upstream_error(&e))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let listed = self.gateway.discovery().prompts().await;
        let mut prompts: Vec<Prompt> = listed
            .items
            .into_iter()
            .map(|p| {
                let mut prompt: Prompt = p.prompt;
                prompt.name = p.qualified_name;
                prompt
            })
            .collect();
        // The same order whatever order the upstreams answered in.
        prompts.sort_by(|a, b| a.name.cmp(&b.name));
        let listed = ListPromptsResult::with_all_items(prompts);
        Ok(if sessionless(&context) {
            listed
                .with_ttl_ms(self.gateway.list_ttl_ms())
                .with_cache_scope(CacheScope::Public)
        } else {
            listed
        })
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let arguments = request.arguments.map_or(Value::Null, Value::Object);
        self.gateway
            .discovery()
            .get_prompt(&request.name, arguments)
            .await
            .map(Into::into)
            .map_err(|e| upstream_error(&e))
    }
}
