//! `tools/call` straight over a session's HTTP client, the library's hot path.
//!
//! rmcp's client takes a request through its service task and the transport's worker task,
//! with a channel hop each way, before and after the HTTP exchange. For a call that is most of
//! the client's own cost, so once a session is open [`Direct`] posts a call itself: the same
//! HTTP client (with its credentials and their refresh on `401`), the session's id and
//! protocol version, and rmcp's own parsing of the answer, JSON or an event stream. On that
//! stream it does what the rmcp client would: a `tools/list_changed` notification wakes the
//! supervisor, a `ping` from the server is answered, and any other request from the server is
//! refused as unsupported (this client offers no sampling, roots or elicitation).
//!
//! Sessions on a protocol revision that adds per-request headers (rmcp computes those), and
//! servers that gave no session id, keep going through rmcp.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotification,
    CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification, ClientRequest,
    ClientResult, ErrorData, ProtocolVersion, RequestId, ServerJsonRpcMessage, ServerNotification,
    ServerRequest, ServerResult,
};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};

use crate::auth::AuthedClient;
use crate::index::Signals;

/// Why a direct call failed.
#[derive(Debug)]
pub(crate) enum DirectError {
    /// The HTTP exchange failed (connection, status, credentials, a broken stream).
    Http(StreamableHttpError<reqwest::Error>),
    /// The server answered with a JSON-RPC error.
    Rpc(ErrorData),
    /// The server answered something that is not a tool result.
    Protocol(String),
}

/// Calls on one open session without rmcp's client service.
pub(crate) struct Direct {
    client: AuthedClient,
    uri: Arc<str>,
    session_id: Arc<str>,
    headers: HashMap<HeaderName, HeaderValue>,
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
    /// stay in the loop.
    pub(crate) fn new(
        client: AuthedClient,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        version: &ProtocolVersion,
        signals: Arc<Signals>,
    ) -> Option<Self> {
        if *version >= ProtocolVersion::STANDARD_HEADERS {
            return None;
        }
        let value = HeaderValue::from_str(version.as_str()).ok()?;
        let headers = HashMap::from([(HeaderName::from_static("mcp-protocol-version"), value)]);
        Some(Self {
            client,
            uri,
            session_id: session_id?,
            headers,
            signals,
            next_id: AtomicU64::new(0),
        })
    }

    /// One `tools/call`, answered when the server's response to it arrives.
    pub(crate) async fn call_tool(
        &self,
        params: CallToolRequestParams,
    ) -> Result<CallToolResult, DirectError> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Strings, so that they never meet the numbers rmcp gives its own requests.
        let id = RequestId::String(format!("fleet-{n}").into());
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let message = ClientJsonRpcMessage::request(request, id.clone());
        let mut guard = CancelOnDrop {
            direct: self,
            id: Some(id.clone()),
        };
        let answer = self.exchange(message, &id).await;
        guard.id = None;
        answer
    }

    async fn exchange(
        &self,
        message: ClientJsonRpcMessage,
        id: &RequestId,
    ) -> Result<CallToolResult, DirectError> {
        let posted = self
            .client
            .post_message(
                self.uri.clone(),
                message,
                Some(self.session_id.clone()),
                None,
                self.headers.clone(),
            )
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
                    let message: ServerJsonRpcMessage =
                        serde_json::from_str(&data).map_err(|e| DirectError::Http(e.into()))?;
                    if let Some(answer) = self.take(message, id) {
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

    /// Posts `message` (a reply or a notification) without waiting for it.
    fn send_in_background(&self, message: ClientJsonRpcMessage) {
        let (client, uri, session, headers) = (
            self.client.clone(),
            self.uri.clone(),
            self.session_id.clone(),
            self.headers.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = client
                .post_message(uri, message, Some(session), None, headers)
                .await
            {
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
