//! The MCP-level probe for entries without a `healthUrl`, against `<url>/mcp` over Streamable
//! HTTP and bounded by one deadline: `server/discover` for a server on 2026-07-28, which has no
//! session and no `ping`; else, as the discovery library falls back, `initialize` then `ping`,
//! the session closed afterwards.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (371 of 606 lines).

use std::error::Error;
use std::time::Duration;

use futures::StreamExt;
use mcp_fleet_net::client_layer::{ClientLayer, Delete, Get, HttpError, Layered, Post};
use mcp_fleet_net::lifecycle;
use mcp_fleet_net::rmcp_errors::{auth_status, first_line};
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientRequest, ErrorData, Implementation, PingRequest,
    ProtocolVersion,
};
use rmcp::service::{ClientInitializeError, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
};
use rmcp::{ClientServiceExt, ServiceError, ServiceExt};
use tokio::time::Instant;

use mcp_fleet_model::{Catalog, ToolDef};

use super::cause::Failure;

/// The name this probe gives in `initialize`'s `clientInfo`.
const CLIENT_NAME: &str = "mcp-fleet-health";

/// Longest `lastError` text a probe produces, in characters.
const MAX_ERROR_CHARS: usize = 200;

/// What one MCP-level probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum McpProbe {
    /// `server/discover` answered, or initialize and ping both did.
    Ok,
    /// The server answered with a JSON-RPC error (to initialize or ping): reachable but unwell.
    RpcError(String),
    /// The endpoint answered 401 or 403: it is up, and wants credentials the registry does not
    /// hold.
    AuthRejected(u16),
    /// No usable answer: connection refused/reset, timeout, not MCP, HTTP error status other
    /// than 401/403.
    Failed(Failure),
}

/// What [`probe`] found: the verdict, how long it took to reach it, and the server's catalog
/// when one was asked for and the verdict was [`McpProbe::Ok`].
#[derive(Debug)]
pub(crate) struct McpOutcome {
    /// The health verdict.
    pub(crate) probe: McpProbe,
    /// From the start to the verdict (a listing after it does not count).
    pub(crate) elapsed: Duration,
    /// The listing: `None` when not asked for or not reached, else what it found or why it
    /// failed.
    pub(crate) catalog: Option<Result<Catalog, String>>,
}

/// Probes `<base_url>/mcp` with `client` (which carries the caller's SSRF guard and no-redirect
/// policy): `server/discover`, or `initialize`, then `ping`; with `list`, then lists the
/// server's tools, prompts and resources (those its capabilities offer) in the same session;
/// then closes the session.
///
/// Everything, the session's own background work included, ends within `timeout`: a server
/// that accepts and never answers costs the probe `timeout` and leaves nothing running.
pub(crate) async fn probe(
    client: reqwest::Client,
    base_url: &str,
    timeout: Duration,
    list: bool,
) -> McpOutcome {
    let url = mcp_url(base_url);
    let started = Instant::now();
    let deadline = started + timeout;
    // rmcp's worker task sends the initialize POST and the closing DELETE without listening to
    // its cancellation token, so the deadline has to live in the HTTP client itself.
    let transport = || {
        StreamableHttpClientTransport::with_client(
            Layered(DeadlineClient {
                client: client.clone(),
                deadline,
            }),
            StreamableHttpClientTransportConfig::with_uri(url.as_str()),
        )
    };
    let mut session = None;
    let exchanged = exchange(transport, &mut session, timeout);
    let outcome = match tokio::time::timeout_at(deadline, exchanged).await {
        Ok(outcome) => outcome,
        Err(_) => McpProbe::Failed(Failure::timed_out(
            timeout,
            format!(
                "server/discover or initialize and ping at {url}: no answer within {} ms",
                timeout.as_millis()
            ),
        )),
    };
    let elapsed = started.elapsed();
    let mut catalog = None;
    if list
        && outcome == McpProbe::Ok
        && let Some(running) = &session
    {
        catalog = Some(
            match tokio::time::timeout_at(deadline, list_catalog(running)).await {
                Ok(listed) => listed,
                Err(_) => Err(format!(
                    "listing at {url}: not done within {} ms",
                    timeout.as_millis()
                )),
            },
        );
    }
    if let Some(running) = session {
        // Cancelling sends the DELETE that ends the server's session; if that does not finish
        // by the deadline, dropping the service cancels it and the client's deadline ends it.
        if let Ok(Err(error)) = tokio::time::timeout_at(deadline, running.cancel()).await {
            tracing::debug!(%url, %error, "closing the MCP probe session failed");
        }
    }
    tracing::debug!(%url, ?outcome, listed = catalog.is_some(), "MCP probe finished");
    McpOutcome {
        probe: outcome,
        elapsed,
        catalog,
    }
}

/// The server's tools, prompts and resources, each list asked for only when the server's
/// capabilities offer it, every page of it.
async fn list_catalog(
    running: &RunningService<RoleClient, ClientConfig>,
) -> Result<Catalog, String> {
    let caps = running.peer_info().map(|info| info.capabilities.clone());
    let offers = |f: fn(&rmcp::model::ServerCapabilities) -> bool| caps.as_ref().is_some_and(f);
    let mut catalog = Catalog::default();
    if offers(|c| c.tools.is_some()) {
        let tools = running.list_all_tools().await.map_err(|e| {
            format!(
                "tools/list: {}",
                first_line(&e.to_string(), MAX_ERROR_CHARS)
            )
        })?;
        for tool in tools {
            let value = serde_json::to_value(&tool).map_err(|e| format!("tools/list: {e}"))?;
            match serde_json::from_value::<ToolDef>(value) {
                Ok(def) => catalog.tools.push(def),
                Err(e) => {
                    tracing::debug!(tool = %tool.name, error = %e, "tool left out of the catalog");
                }
            }
        }
    }
    if offers(|c| c.prompts.is_some()) {
        let prompts = running.list_all_prompts().await.map_err(|e| {
            format!(
                "prompts/list: {}",
                first_line(&e.to_string(), MAX_ERROR_CHARS)
            )
        })?;
        catalog.prompts = prompts
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect();
    }
    if offers(|c| c.resources.is_some()) {
        let resources = running.list_all_resources().await.map_err(|e| {
            format!(
                "resources/list: {}",
                first_line(&e.to_string(), MAX_ERROR_CHARS)
            )
        })?;
        catalog.resources = resources
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
    }
    Ok(catalog)
}

/// `server/discover`, or `initialize` (leaving the running session in `session`, so the caller
/// closes it even if the deadline cuts this short) then `ping`; each opening on a transport
/// from `transport`.
async fn exchange(
    transport: impl Fn() -> StreamableHttpClientTransport<Layered<DeadlineClient>>,
    session: &mut Option<RunningService<RoleClient, ClientConfig>>,
    timeout: Duration,
) -> McpProbe {
    // A server that wants `initialize` is offered the newest revision that still has it, and
    // answers with the version it settles on.
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new(CLIENT_NAME, env!("CARGO_PKG_VERSION")),
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
    let opened = match info
        .clone()
        .serve_with_lifecycle(transport(), lifecycle::modern_first())
        .await
    {
        Err(error) if lifecycle::needs_initialize(&error) => info.serve(transport()).await,
        opened => opened,
    };
    let running = match opened {
        Ok(running) => session.insert(running),
        Err(error) => return initialize_failure(&error, timeout),
    };
    let modern = running
        .peer_info()
        .is_some_and(|info| !info.protocol_version.has_initialize());
    if modern {
        // The server answered `server/discover`: 2026-07-28 has no `ping`.
        return McpProbe::Ok;
    }
    match running
        .send_request(ClientRequest::PingRequest(PingRequest::default()))
        .await
    {
        Ok(_) => McpProbe::Ok,
        Err(ServiceError::McpError(error)) => rpc_error("ping", &error),
        Err(ServiceError::TransportSend(error)) => transport_failure("ping", &error, timeout),
        Err(error) => McpProbe::Failed(Failure::from_error("ping", &error, timeout)),
    }
}

/// `<base_url>/mcp`, with exactly one slash before `mcp`.
fn mcp_url(base_url: &str) -> String {
    format!("{}/mcp", base_url.trim_end_matches('/'))
}

fn initialize_failure(error: &ClientInitializeError, timeout: Duration) -> McpProbe {
    match error {
        // `server/discover` drew a legacy answer: what `initialize` then met is the failure.
        ClientInitializeError::LegacyFallbackFailed { fallback, .. } => {
            initialize_failure(fallback, timeout)
        }
        ClientInitializeError::JsonRpcError(error) => rpc_error("initialize", error),
        // The transport error is a field, not the `source()`, of this variant.
        ClientInitializeError::TransportError { error, context } => {
            transport_failure(context, error, timeout)
        }
        other => McpProbe::Failed(Failure::from_error("initialize", other, timeout)),
    }
}

fn rpc_error(step: &str, error: &ErrorData) -> McpProbe {
    McpProbe::RpcError(short(&format!(
        "{step}: JSON-RPC error {}: {}",
        error.code.0, error.message
    )))
}

/// A transport failure is an auth rejection if a 401/403 is behind it, else a failure with its
/// cause read from the chain (the address policy's refusal reads `refused: …`, as the HTTP
/// probe says it).
fn transport_failure(step: &str, error: &(dyn Error + 'static), timeout: Duration) -> McpProbe {
    if super::ssrf::refused_by_policy(error).is_none()
        && let Some(status) = auth_status(error)
    {
        return McpProbe::AuthRejected(status);
    }
    McpProbe::Failed(Failure::from_error(step, error, timeout))
}

/// The first line of `text`, at most [`MAX_ERROR_CHARS`] characters: it becomes `lastError`.
fn short(text: &str) -> String {
    first_line(text, MAX_ERROR_CHARS)
}

/// The caller's reqwest client with every request, and every event stream, cut off at the
/// probe's deadline.
#[derive(Clone)]
struct DeadlineClient {
    client: reqwest::Client,
    deadline: Instant,
}

impl DeadlineClient {
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, HttpError>>,
    ) -> Result<T, HttpError> {
        match tokio::time::timeout_at(self.deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(StreamableHttpError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "probe deadline passed",
            ))),
        }
    }

    fn bounded_stream(&self, stream: BoxedSseResponse) -> BoxedSseResponse {
        stream
            .take_until(tokio::time::sleep_until(self.deadline))
            .boxed()
    }

    fn bounded_response(&self, response: StreamableHttpPostResponse) -> StreamableHttpPostResponse {
        match response {
            StreamableHttpPostResponse::Sse(stream, session_id) => {
                StreamableHttpPostResponse::Sse(self.bounded_stream(stream), session_id)
            }
            other => other,
        }
    }
}

impl ClientLayer for DeadlineClient {
    async fn post(&self, request: Post) -> Result<StreamableHttpPostResponse, HttpError> {
        let response = self.bounded(request.send(&self.client)).await?;
        Ok(self.bounded_response(response))
    }

    async fn delete(&self, request: Delete) -> Result<(), HttpError> {
        self.bounded(request.send(&self.client)).await
    }

    async fn get_stream(&self, request: Get) -> Result<BoxedSseResponse, HttpError> {
        let stream = self.bounded(request.send(&self.client)).await?;
        Ok(self.bounded_stream(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use axum::Router;
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use mcp_fleet_sample_servers::Sample;
    use reqwest::header::HeaderValue;
    use serde_json::{Value, json};
    use tokio::net::TcpListener;
    use tokio_util::sync::{CancellationToken, DropGuard};

    /// Generous: only the black-hole test is meant to reach its timeout.
    const TIMEOUT: Duration = Duration::from_secs(10);

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("client builds")
    }

    async fn loopback() -> TcpListener {
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds a loopback port")
    }

    /// Serves `router` on a loopback port until the guard drops; returns the base URL.
    async fn serve(router: Router) -> (String, DropGuard) {
        let listener = loopback().await;
        let base_url = format!("http://{}", listener.local_addr().expect("bound address"));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        (base_url, shutdown.drop_guard())
    }

    /// A hand-written MCP endpoint: answers `initialize` (echoing the requested protocol
    /// version) unless `fail` names it, accepts `notifications/initialized`, and answers the
    /// method named by `fail` with a JSON-RPC error.
    fn scripted(fail: &'static str) -> Router {
        let handler = move |axum::Json(request): axum::Json<Value>| async move {
            let id = request.get("id").cloned().unwrap_or(Value::Null);
            let method = request["method"].as_str().unwrap_or_default();
            if method == fail {
                let error = json!({ "code": -32603, "message": "boom" });
                return axum::Json(json!({ "jsonrpc": "2.0", "id": id, "error": error }))
                    .into_response();
            }
            match method {
                "initialize" => axum::Json(json!({
                    "jsonrpc": "2.0",
                    "id": id,
                    "result": {
                        "protocolVersion": request["params"]["protocolVersion"],
                        "capabilities": {},
                        "serverInfo": { "name": "scripted", "version": "0.0.1" },
                    },
                }))
                .into_response(),
                "notifications/initialized" => StatusCode::ACCEPTED.into_response(),
                "ping" => {
                    axum::Json(json!({ "jsonrpc": "2.0", "id": id, "result": {} })).into_response()
                }
                _ => StatusCode::BAD_REQUEST.into_response(),
            }
        };
        Router::new().route("/mcp", post(handler))
    }

    /// An endpoint answering every POST with `status`, an optional challenge, and a text body.
    fn answering(
        status: u16,
        challenge: Option<&'static str>,
        content_type: &'static str,
    ) -> Router {
        let handler = move || async move {
            let status = StatusCode::from_u16(status).expect("valid status");
            let mut response: Response =
                (status, [(header::CONTENT_TYPE, content_type)], "nope").into_response();
            if let Some(challenge) = challenge {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            response
        };
        Router::new().route("/mcp", post(handler))
    }

    #[tokio::test]
    async fn a_real_mcp_server_answers_initialize_and_ping() {
        let shutdown = CancellationToken::new();
        let _stop = shutdown.clone().drop_guard();
        let sample = mcp_fleet_sample_servers::start(Sample::Catalog, loopback().await, shutdown)
            .await
            .expect("sample server starts");

        let outcome = probe(client(), &sample.base_url, TIMEOUT, false)
            .await
            .probe;
        assert_eq!(outcome, McpProbe::Ok);

        let with_slash = format!("{}/", sample.base_url);
        let outcome = probe(client(), &with_slash, TIMEOUT, false).await.probe;
        assert_eq!(outcome, McpProbe::Ok, "a trailing slash still reaches /mcp");
    }

    #[tokio::test]
    async fn a_listing_probe_returns_the_catalog_and_its_verdict_time() {
        let shutdown = CancellationToken::new();
        let _stop = shutdown.clone().drop_guard();
        let sample = mcp_fleet_sample_servers::start(Sample::Catalog, loopback().await, shutdown)
            .await
            .expect("sample server starts");
        let outcome = probe(client(), &sample.base_url, TIMEOUT, true).await;
        assert_eq!(outcome.probe, McpProbe::Ok);
        let catalog = outcome.catalog.expect("listed").expect("listing succeeds");
        assert!(!catalog.tools.is_empty(), "the catalog sample offers tools");
        assert!(catalog.tools.iter().all(|t| !t.name.is_empty()));
        assert!(outcome.elapsed <= TIMEOUT);

        // A probe that does not answer lists nothing.
        let outcome = probe(client(), "http://127.0.0.1:9", TIMEOUT, true).await;
        assert!(matches!(outcome.probe, McpProbe::Failed(_)));
        assert!(outcome.catalog.is_none());
    }

    #[tokio::test]
    async fn a_server_that_never_answers_fails_at_the_timeout() {
        let listener = loopback().await;
        let base_url = format!("http://{}", listener.local_addr().expect("bound address"));
        // Accepts every connection and hands it to the test, answering nothing.
        let (accepted, mut connections) = tokio::sync::mpsc::unbounded_channel();
        let black_hole = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if accepted.send(stream).is_err() {
                    break;
                }
            }
        });

        let started = Instant::now();
        let outcome = probe(client(), &base_url, Duration::from_millis(500), false)
            .await
            .probe;
        let elapsed = started.elapsed();

        assert!(
            matches!(&outcome, McpProbe::Failed(f) if f.cause == "timed out after 500 ms" && !f.answered),
            "{outcome:?}"
        );
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");

        // Nothing is left behind holding the connection open: the client hangs up.
        let connection = connections.try_recv().expect("the probe connected");
        let hung_up = tokio::time::timeout(Duration::from_secs(2), until_closed(connection)).await;
        assert!(hung_up.is_ok(), "the probe's connection is still open");
        black_hole.abort();
    }

    /// Reads and discards until the peer closes `stream` (or it fails).
    async fn until_closed(stream: tokio::net::TcpStream) {
        let mut buf = [0; 4096];
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_fails() {
        let listener = loopback().await;
        let addr = listener.local_addr().expect("bound address");
        drop(listener);

        let outcome = probe(client(), &format!("http://{addr}"), TIMEOUT, false)
            .await
            .probe;
        let McpProbe::Failed(failure) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(failure.cause, "connection refused");
        assert!(!failure.answered);
        assert!(
            failure.detail.starts_with("send discover request: ")
                && failure.detail.contains("Connection refused"),
            "the chain is kept: {}",
            failure.detail
        );
    }

    /// A name the address policy refuses fails with the `refused: ` prefix that `lastError`
    /// promises (as the HTTP probe's does), and nothing connects to the listener behind it.
    #[tokio::test]
    async fn a_name_the_policy_denies_is_refused() {
        let listener = loopback().await;
        let port = listener.local_addr().expect("bound address").port();
        let net = |s| mcp_fleet_model::parse_cidr(s).expect("test CIDR");
        let policy = mcp_fleet_model::AddressPolicy::new(
            mcp_fleet_model::PolicyMode::Default,
            vec![net("127.0.0.0/8"), net("::1/128")],
            Vec::new(),
        );
        let guarded =
            super::super::ssrf::probe_client(Arc::new(policy), TIMEOUT).expect("client builds");

        let outcome = probe(guarded, &format!("http://localhost:{port}"), TIMEOUT, false)
            .await
            .probe;
        assert!(
            matches!(&outcome, McpProbe::Failed(f)
                if f.cause.starts_with("refused: localhost resolved only to denied addresses")),
            "{outcome:?}"
        );
        let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
        assert!(accepted.is_err(), "something connected");
    }

    #[tokio::test]
    async fn unauthorized_and_forbidden_are_auth_rejections() {
        let cases = [
            (401, Some("Bearer"), 401),
            (401, None, 401),
            (403, None, 403),
            (
                403,
                Some(r#"Bearer error="insufficient_scope", scope="a""#),
                403,
            ),
        ];
        for (status, challenge, want) in cases {
            let (base_url, _stop) = serve(answering(status, challenge, "text/plain")).await;
            let outcome = probe(client(), &base_url, TIMEOUT, false).await.probe;
            assert_eq!(
                outcome,
                McpProbe::AuthRejected(want),
                "HTTP {status} with challenge {challenge:?}"
            );
        }
    }

    #[tokio::test]
    async fn other_http_answers_fail() {
        let cases = [
            (500, "text/plain", "HTTP 500"),
            (503, "text/plain", "HTTP 503"),
            (404, "text/plain", "HTTP 404"),
            (200, "text/html", "not an MCP server: answered text/html"),
        ];
        for (status, content_type, want) in cases {
            let (base_url, _stop) = serve(answering(status, None, content_type)).await;
            let outcome = probe(client(), &base_url, TIMEOUT, false).await.probe;
            assert!(
                matches!(&outcome, McpProbe::Failed(f) if f.cause == want && f.answered),
                "HTTP {status} {content_type}: {outcome:?}"
            );
        }
    }

    #[tokio::test]
    async fn json_rpc_errors_are_rpc_errors() {
        let cases = [
            ("ping", "ping: JSON-RPC error -32603: boom"),
            ("initialize", "initialize: JSON-RPC error -32603: boom"),
        ];
        for (fail, want) in cases {
            let (base_url, _stop) = serve(scripted(fail)).await;
            let outcome = probe(client(), &base_url, TIMEOUT, false).await.probe;
            assert_eq!(
                outcome,
                McpProbe::RpcError(want.to_owned()),
                "failing {fail}"
            );
        }
    }

    /// A hand-written endpoint that records the methods it is sent and answers
    /// `server/discover` with `discover` (a result or an error object), else as [`scripted`].
    fn recording(discover: Value, methods: Arc<std::sync::Mutex<Vec<String>>>) -> Router {
        let legacy = scripted("nothing");
        let handler = move |request: axum::extract::Request| {
            let (discover, methods, legacy) = (discover.clone(), methods.clone(), legacy.clone());
            async move {
                use tower::ServiceExt as _;
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let message: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let method = message["method"].as_str().unwrap_or_default().to_owned();
                methods.lock().expect("methods lock").push(method.clone());
                if method == "server/discover" {
                    let key = if discover.get("code").is_some() {
                        "error"
                    } else {
                        "result"
                    };
                    let mut answer = json!({ "jsonrpc": "2.0", "id": message["id"] });
                    answer[key] = discover;
                    return axum::Json(answer).into_response();
                }
                let request =
                    axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
                match legacy.oneshot(request).await {
                    Ok(response) => response.into_response(),
                    Err(never) => match never {},
                }
            }
        };
        Router::new().route("/mcp", post(handler))
    }

    #[tokio::test]
    async fn a_2026_server_is_probed_with_server_discover_alone() {
        let methods = Arc::default();
        let discovered = json!({
            "resultType": "complete",
            "supportedVersions": ["2026-07-28"],
            "capabilities": {},
            "_meta": { "io.modelcontextprotocol/serverInfo": { "name": "modern", "version": "1" } },
            "ttlMs": 0,
            "cacheScope": "public",
        });
        let (base_url, _stop) = serve(recording(discovered, Arc::clone(&methods))).await;
        assert_eq!(
            probe(client(), &base_url, TIMEOUT, false).await.probe,
            McpProbe::Ok
        );
        assert_eq!(*methods.lock().expect("methods lock"), ["server/discover"]);
    }

    #[tokio::test]
    async fn a_server_on_session_revisions_only_is_probed_with_initialize() {
        let methods = Arc::default();
        let unsupported = json!({
            "code": -32022,
            "message": "Unsupported protocol version",
            "data": { "supported": ["2025-06-18"], "requested": "2026-07-28" },
        });
        let (base_url, _stop) = serve(recording(unsupported, Arc::clone(&methods))).await;
        assert_eq!(
            probe(client(), &base_url, TIMEOUT, false).await.probe,
            McpProbe::Ok
        );
        let methods = methods.lock().expect("methods lock").clone();
        assert_eq!(
            methods[..4],
            [
                "server/discover",
                "initialize",
                "notifications/initialized",
                "ping"
            ],
            "{methods:?}"
        );
    }

    #[tokio::test]
    async fn the_scripted_server_passes_when_nothing_fails() {
        // Keeps the RpcError test honest: the hand-written endpoint is a valid MCP server.
        let (base_url, _stop) = serve(scripted("nothing")).await;
        assert_eq!(
            probe(client(), &base_url, TIMEOUT, false).await.probe,
            McpProbe::Ok
        );
    }

    #[test]
    fn the_endpoint_is_base_url_slash_mcp() {
        let cases = [
            ("http://127.0.0.1:4100", "http://127.0.0.1:4100/mcp"),
            ("http://127.0.0.1:4100/", "http://127.0.0.1:4100/mcp"),
            ("http://h/api//", "http://h/api/mcp"),
        ];
        for (base, want) in cases {
            assert_eq!(mcp_url(base), want, "{base}");
        }
    }

    #[test]
    fn errors_are_one_short_line() {
        assert_eq!(short("first\nsecond"), "first");
        let long = "x".repeat(500);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(short(&"é".repeat(200)), "é".repeat(200));
    }
}
