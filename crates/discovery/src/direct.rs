//! `tools/call` straight over a session's HTTP connection, the library's hot path.
//!
//! rmcp's client takes a request through its service task and the transport's worker task,
//! with a channel hop each way, before and after the HTTP exchange, and reads a tool result
//! through `ServerResult`, an untagged union of every result type in which a tool result comes
//! sixteenth. For a call that is most of the client's own cost, so once a session is open
//! [`Direct`] posts a call itself, with the session's id, its protocol version and the
//! server's credentials (replaced once after a `401`), and reads the answer, JSON or an event
//! stream, straight into a `CallToolResult`. To `http://` servers it goes over kept connections
//! (see `call_http`); to `https://` ones through the session's reqwest client. On the answer's
//! stream it does what the rmcp client would: a `tools/list_changed` notification wakes the
//! supervisor, a `ping` from the server is answered, and any other request from the server is
//! refused as unsupported (this client offers no sampling, roots or elicitation).
//!
//! On 2026-07-28 there is no session: each call carries the protocol version, the client's
//! identity and capabilities in its `_meta`, and the `Mcp-Method` and `Mcp-Name` headers. A tool
//! whose schema asks for `Mcp-Param-*` headers (`x-mcp-header`), or whose name would need
//! encoding in a header, goes through rmcp, which computes those; so do session-based servers
//! that gave no session id.
//!
//! Over 500 lines: one hot path, over both transports (kept connections, reqwest) and both
//! protocol eras, kept in one file so that it reads top to bottom (its unit tests are at the end).

use rmcp::transport::common::http_header::{
    HEADER_MCP_METHOD, HEADER_MCP_NAME, HEADER_MCP_PROTOCOL_VERSION,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use http_body_util::{BodyExt, Limited};
use mcp_fleet_net::client_layer::{ClientLayer, Post};
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotification,
    CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification, ClientRequest,
    ClientResult, ErrorData, GetMeta, JsonObject, ProtocolVersion, RequestId, RequestMetaObject,
    ServerJsonRpcMessage, ServerNotification, ServerRequest, ServerResult, Tool,
};
use rmcp::transport::streamable_http_client::{StreamableHttpError, StreamableHttpPostResponse};

use crate::auth::{AuthError, AuthedClient};
use crate::call_http::{self, CallHttp, finish};
use crate::index::Signals;
use crate::sse::{self, Bounded, ReadError};

/// Why a direct call failed.
#[derive(Debug)]
pub(crate) enum DirectError {
    /// The HTTP exchange failed (connection, status, credentials, a broken stream).
    Http(StreamableHttpError<reqwest::Error>),
    /// The server answered with a JSON-RPC error.
    Rpc(ErrorData),
    /// The server answered something that is not a tool result.
    Protocol(String),
    /// The connection broke, or no answer came in time (kept-connection path).
    Transport(String),
    /// No connection could be made: nothing was sent (kept-connection path).
    Unreachable(String),
    /// The server refused the credentials (HTTP 401 or 403).
    Status(u16),
    /// No credentials could be had.
    Auth(AuthError),
}

/// Largest answer read (rmcp's own limit for a JSON answer).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// A `tools/call` request.
#[derive(serde::Serialize)]
struct CallRequest<'a> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    method: &'static str,
    params: CallParams<'a>,
}

/// A `tools/call`'s parameters, as rmcp's `CallToolRequestParams` writes a name and arguments
/// (and, on 2026-07-28, the request's `_meta`).
#[derive(serde::Serialize)]
struct CallParams<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a JsonObject>,
    #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
    meta: Option<&'a serde_json::Value>,
}

/// What a 2026-07-28 call carries instead of a session.
struct Stateless {
    /// The request `_meta`: protocol version, client info and capabilities.
    meta: RequestMetaObject,
    /// The same, as JSON, for the calls written by hand.
    meta_json: serde_json::Value,
    /// `Mcp-Name`.
    name_header: HeaderName,
}

/// Calls on one open session without rmcp's client service.
pub(crate) struct Direct {
    client: AuthedClient,
    /// Kept connections for `http://` servers (see `call_http`); else `client` posts.
    pooled: Option<(CallHttp, hyper::Uri)>,
    uri: Arc<str>,
    /// `None` on 2026-07-28.
    session_id: Option<Arc<str>>,
    headers: HashMap<HeaderName, HeaderValue>,
    /// Set on 2026-07-28.
    stateless: Option<Stateless>,
    signals: Arc<Signals>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Direct {
    /// The direct path of a session with `session_id` on `version`, or `None` where rmcp must
    /// stay in the loop. `client` (name, version) is given on 2026-07-28, whose calls carry it.
    pub(crate) fn new(
        client: AuthedClient,
        calls: &CallHttp,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        version: &ProtocolVersion,
        client_info: Option<(&str, &str)>,
        signals: Arc<Signals>,
    ) -> Option<Self> {
        let stateless = match client_info {
            Some((name, client_version)) if !version.has_initialize() => {
                let meta = RequestMetaObject::with_client_context(
                    version.clone(),
                    rmcp::model::Implementation::new(name, client_version),
                    rmcp::model::ClientCapabilities::default(),
                );
                let meta_json = serde_json::to_value(&meta).ok()?;
                let name_header = HeaderName::from_bytes(HEADER_MCP_NAME.as_bytes()).ok()?;
                Some(Stateless {
                    meta,
                    meta_json,
                    name_header,
                })
            }
            // A session-based revision whose requests need more headers than its version.
            _ if *version >= ProtocolVersion::STANDARD_HEADERS => return None,
            _ => None,
        };
        if stateless.is_none() && session_id.is_none() {
            return None;
        }
        let value = HeaderValue::from_str(version.as_str()).ok()?;
        // `HeaderName` keeps names lowercase; rmcp spells its constant `MCP-Protocol-Version`.
        let name = HeaderName::from_bytes(HEADER_MCP_PROTOCOL_VERSION.as_bytes()).ok()?;
        let mut headers = HashMap::from([(name, value)]);
        if stateless.is_some() {
            let method = HeaderName::from_bytes(HEADER_MCP_METHOD.as_bytes()).ok()?;
            headers.insert(method, HeaderValue::from_static("tools/call"));
        }
        let pooled = (call_http::KEEPS_CONNECTIONS && uri.starts_with("http://"))
            .then(|| uri.parse::<hyper::Uri>().ok())
            .flatten()
            .map(|parsed| (calls.clone(), parsed));
        Some(Self {
            client,
            pooled,
            uri,
            session_id: session_id.filter(|_| stateless.is_none()),
            headers,
            stateless,
            signals,
            next_id: AtomicU64::new(0),
        })
    }

    /// Whether calls of `tool` can go this way: on 2026-07-28, not when its schema asks for
    /// `Mcp-Param-*` headers or its name would need encoding as `Mcp-Name`.
    pub(crate) fn handles(&self, tool: &Tool) -> bool {
        self.stateless.is_none()
            || (plain_header_value(&tool.name) && !asks_for_param_headers(&tool.input_schema))
    }

    /// One `tools/call`, answered when the server's response to it arrives.
    pub(crate) async fn call_tool(
        &self,
        name: Cow<'static, str>,
        arguments: Option<Cow<'_, JsonObject>>,
    ) -> Result<CallToolResult, DirectError> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Strings, so that they never meet the numbers rmcp gives its own requests.
        let id = RequestId::String(format!("fleet-{n}").into());
        let mut guard = CancelOnDrop {
            direct: self,
            id: Some(id.clone()),
        };
        let answer = self.exchange(name, arguments, &id).await;
        guard.id = None;
        answer
    }

    /// The headers of a call of `tool`.
    fn call_headers(&self, tool: &str) -> Cow<'_, HashMap<HeaderName, HeaderValue>> {
        let Some(stateless) = &self.stateless else {
            return Cow::Borrowed(&self.headers);
        };
        let mut headers = self.headers.clone();
        if let Ok(value) = HeaderValue::from_str(tool) {
            headers.insert(stateless.name_header.clone(), value);
        }
        Cow::Owned(headers)
    }

    async fn exchange(
        &self,
        name: Cow<'static, str>,
        arguments: Option<Cow<'_, JsonObject>>,
        id: &RequestId,
    ) -> Result<CallToolResult, DirectError> {
        let headers = self.call_headers(&name);
        if let Some((http, uri)) = &self.pooled {
            // Written straight from the parameters (rmcp's message type serializes through a
            // flattened map), borrowed: a caller may send them again elsewhere.
            let request = CallRequest {
                jsonrpc: "2.0",
                id,
                method: "tools/call",
                params: CallParams {
                    name: &name,
                    arguments: arguments.as_deref(),
                    meta: self.stateless.as_ref().map(|s| &s.meta_json),
                },
            };
            let body = serde_json::to_vec(&request).map_err(|e| DirectError::Http(e.into()))?;
            return self
                .exchange_pooled(http, uri, body.into(), &headers, id)
                .await;
        }
        let mut params = CallToolRequestParams::new(name);
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments.into_owned());
        }
        let mut request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        if let Some(stateless) = &self.stateless {
            request.get_meta_mut().extend(stateless.meta.clone());
        }
        let message = ClientJsonRpcMessage::request(request, id.clone());
        let posted = self
            .client
            .post(Post::new(
                self.uri.clone(),
                message,
                self.session_id.clone(),
                headers.into_owned(),
            ))
            .await
            .map_err(DirectError::Http)?;
        match posted {
            StreamableHttpPostResponse::Json(message, _) => match self.take(message, id) {
                Some(answer) => answer,
                None => Err(DirectError::Protocol(
                    "the JSON answer to tools/call is not its response".into(),
                )),
            },
            StreamableHttpPostResponse::Sse(mut events, _) => {
                while let Some(event) = events.next().await {
                    let event = event.map_err(|e| DirectError::Http(e.into()))?;
                    let Some(data) = event.data.filter(|d| !d.is_empty()) else {
                        continue;
                    };
                    if let Some(answer) = self.read(&data, id)? {
                        return answer;
                    }
                }
                Err(DirectError::Http(
                    StreamableHttpError::UnexpectedEndOfStream,
                ))
            }
            _ => Err(DirectError::Protocol(
                "the server accepted tools/call without answering it".into(),
            )),
        }
    }

    /// [`Direct::exchange`] over a kept connection.
    async fn exchange_pooled(
        &self,
        http: &CallHttp,
        uri: &hyper::Uri,
        body: bytes::Bytes,
        headers: &HashMap<HeaderName, HeaderValue>,
        id: &RequestId,
    ) -> Result<CallToolResult, DirectError> {
        let tokens = self.client.tokens.as_deref();
        let mut token = match tokens {
            Some(source) => Some(source.token(None).await.map_err(DirectError::Auth)?),
            None => None,
        };
        let mut refreshed = false;
        let response = loop {
            let response = self
                .post(http, uri, body.clone(), headers, token.as_deref())
                .await?;
            let status = response.status().as_u16();
            match (status, tokens) {
                // A rejected token is replaced once, as on the library's other requests.
                (401, Some(source)) if !refreshed => {
                    refreshed = true;
                    token = Some(
                        source
                            .token(token.as_deref())
                            .await
                            .map_err(DirectError::Auth)?,
                    );
                }
                _ => break response,
            }
        };
        let status = response.status().as_u16();
        match status {
            200..=299 if status != 202 && status != 204 => {}
            202 | 204 => {
                return Err(DirectError::Protocol(
                    "the server accepted tools/call without answering it".into(),
                ));
            }
            401 | 403 => return Err(DirectError::Status(status)),
            404 => return Err(DirectError::Http(StreamableHttpError::SessionExpired)),
            _ => {
                return Err(DirectError::Transport(format!(
                    "the server answered tools/call with HTTP {status}"
                )));
            }
        }
        let is_json = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = response.into_body();
        if is_json {
            let bytes = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| DirectError::Transport(format!("reading the answer: {e}")))?
                .to_bytes();
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| DirectError::Protocol(format!("the answer is not UTF-8: {e}")))?;
            return self.read(text, id)?.unwrap_or_else(|| {
                Err(DirectError::Protocol(
                    "the JSON answer to tools/call is not its response".into(),
                ))
            });
        }
        // Dropped with the answer read, the stream's rest is read so that the connection is kept.
        let mut events = sse::events(Bounded::new(body, MAX_ANSWER).on_drop(finish));
        while let Some(event) = events.next().await {
            let data = match event.map_err(ReadError::from) {
                Ok(event) => event.data.filter(|d| !d.is_empty()),
                Err(e @ (ReadError::TooLarge(_) | ReadError::Malformed(_))) => {
                    return Err(DirectError::Protocol(e.to_string()));
                }
                Err(e) => return Err(DirectError::Transport(format!("the answer broke off: {e}"))),
            };
            if let Some(data) = data
                && let Some(answer) = self.read(&data, id)?
            {
                return answer;
            }
        }
        Err(DirectError::Http(
            StreamableHttpError::UnexpectedEndOfStream,
        ))
    }

    async fn post(
        &self,
        http: &CallHttp,
        uri: &hyper::Uri,
        body: bytes::Bytes,
        headers: &HashMap<HeaderName, HeaderValue>,
        token: Option<&str>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, DirectError> {
        let request =
            call_http::post_request(uri, body, self.session_id.as_deref(), headers, token)
                .map_err(|e| DirectError::Transport(format!("cannot build the request: {e}")))?;
        match tokio::time::timeout(self.client.head_timeout, http.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => {
                Err(DirectError::Unreachable(crate::rmcp_errors::chain_text(&e)))
            }
            Ok(Err(e)) => Err(DirectError::Transport(crate::rmcp_errors::chain_text(&e))),
            Err(_) => Err(DirectError::Transport(format!(
                "no answer within {:?}",
                self.client.head_timeout
            ))),
        }
    }

    /// [`Direct::take`] of the message in `data`. A tool result for `id` is read straight into
    /// its type; anything else goes through rmcp's message type, whose result is an untagged
    /// union of every result type (costly to try in turn).
    fn read(
        &self,
        data: &str,
        id: &RequestId,
    ) -> Result<Option<Result<CallToolResult, DirectError>>, DirectError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            id: Option<RequestId>,
            result: Option<CallToolResult>,
            method: Option<serde::de::IgnoredAny>,
        }
        if let Ok(Answer {
            id: Some(answered),
            result: Some(result),
            method: None,
        }) = serde_json::from_str::<Answer>(data)
            && answered == *id
        {
            return Ok(Some(Ok(result)));
        }
        let message: ServerJsonRpcMessage =
            serde_json::from_str(data).map_err(|e| DirectError::Http(e.into()))?;
        Ok(self.take(message, id))
    }

    /// The answer to request `id` when `message` is it; otherwise handles `message` as the rmcp
    /// client would and returns `None`.
    fn take(
        &self,
        message: ServerJsonRpcMessage,
        id: &RequestId,
    ) -> Option<Result<CallToolResult, DirectError>> {
        match message {
            ServerJsonRpcMessage::Response(r) if r.id == *id => Some(tool_result(r.result)),
            ServerJsonRpcMessage::Error(e) if e.id.as_ref() == Some(id) => {
                Some(Err(DirectError::Rpc(e.error)))
            }
            ServerJsonRpcMessage::Notification(n) => {
                if matches!(
                    n.notification,
                    ServerNotification::ToolListChangedNotification(_)
                ) {
                    self.signals.tools_changed.notify_one();
                }
                None
            }
            ServerJsonRpcMessage::Request(r) => {
                let reply = match r.request {
                    ServerRequest::PingRequest(_) => {
                        ClientJsonRpcMessage::response(ClientResult::empty(()), r.id)
                    }
                    _ => ClientJsonRpcMessage::error(
                        ErrorData::new(
                            rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                            "this client offers no such capability",
                            None,
                        ),
                        Some(r.id),
                    ),
                };
                self.send_in_background(reply);
                None
            }
            _ => None,
        }
    }

    /// Posts `message` (a reply or a notification) without waiting for it. Not on 2026-07-28:
    /// with no session there is nothing to post it to (a call is cancelled by closing its
    /// stream, and the revision has no `ping`).
    fn send_in_background(&self, message: ClientJsonRpcMessage) {
        if self.stateless.is_some() {
            return;
        }
        let (client, uri, session, headers) = (
            self.client.clone(),
            self.uri.clone(),
            self.session_id.clone(),
            self.headers.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = client.post(Post::new(uri, message, session, headers)).await {
                tracing::debug!(error = %e, "posting to an MCP server failed");
            }
        });
    }
}

/// Tells the server a call is no longer wanted when its future is dropped unanswered (a
/// timeout, a caller that went away), as rmcp's client does.
struct CancelOnDrop<'a> {
    direct: &'a Direct,
    id: Option<RequestId>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let notice = ClientNotification::CancelledNotification(CancelledNotification::new(
            CancelledNotificationParam::new(Some(id), Some("the caller stopped waiting".into())),
        ));
        self.direct
            .send_in_background(ClientJsonRpcMessage::notification(notice));
    }
}

/// Whether `text` goes into a header as it is (tool names that follow the specification's
/// advice, `A-Z a-z 0-9 _ - .`, always do).
fn plain_header_value(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

/// Whether an input schema marks any argument for an `Mcp-Param-*` header.
fn asks_for_param_headers(schema: &JsonObject) -> bool {
    fn walk(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(map) => {
                map.contains_key("x-mcp-header") || map.values().any(walk)
            }
            serde_json::Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    schema.contains_key("x-mcp-header") || schema.values().any(walk)
}

/// A response to `tools/call` as its result; a result without content (`{}`) is an empty one,
/// as rmcp reads it.
fn tool_result(result: ServerResult) -> Result<CallToolResult, DirectError> {
    match result {
        ServerResult::CallToolResult(r) => Ok(r),
        ServerResult::EmptyResult(_) => Ok(CallToolResult::default()),
        other => Err(DirectError::Protocol(format!(
            "the answer to tools/call is not a tool result: {}",
            serde_json::to_string(&other).unwrap_or_else(|_| "unreadable".into())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_that_need_more_headers_go_through_rmcp() {
        let schema = |value: serde_json::Value| match value {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a literal object"),
        };
        let plain = schema(serde_json::json!({
            "type": "object",
            "properties": {"region": {"type": "string"}},
        }));
        let annotated = schema(serde_json::json!({
            "type": "object",
            "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
        }));
        assert!(!asks_for_param_headers(&plain));
        assert!(asks_for_param_headers(&annotated));
        for (name, plain) in [
            ("search", true),
            ("catalog.search-v2_x", true),
            ("", false),
            ("with space", false),
            ("naïve", false),
        ] {
            assert_eq!(plain_header_value(name), plain, "{name:?}");
        }
    }
}
