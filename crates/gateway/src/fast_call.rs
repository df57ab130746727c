//! `tools/call` answered in front of rmcp's session machinery, the gateway's hot path.
//!
//! rmcp's Streamable HTTP server takes a request through a session worker, the service task
//! and an event stream per answer; for the gateway that is as much work again as the upstream
//! call it forwards (measured: a gateway answering at once cost what the upstream costs).
//! So a `POST /mcp` that is a single JSON-RPC `tools/call` in a session this gateway already
//! knows is answered here: the same routing, canary accounting and timeout as every call
//! ([`Inner::call`]), and the answer as one `application/json` message, which the MCP
//! Streamable HTTP transport allows for any request. Everything else (initialize, listings,
//! notifications, batches, unknown sessions, clients that do not accept JSON answers) goes to
//! rmcp untouched.
//!
//! A session becomes known when its `notifications/initialized` reaches the session's handler,
//! which only rmcp creates, after its own checks of the request (Host, protocol version);
//! knowing a session id is what lets a request in, and the id is a random value handed to that
//! client alone. A `notifications/cancelled` for a call answered here finds nothing to cancel in
//! rmcp: the call runs to its end or to the gateway's call timeout, as if the notice came late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mcp_fleet_model::Version;
use rmcp::ErrorData;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::gateway::Inner;

/// A session's version per service (sticky routing).
pub(crate) type Sticky = Mutex<HashMap<String, Version>>;

/// The sessions rmcp has opened, by `Mcp-Session-Id`.
#[derive(Default)]
pub(crate) struct Sessions(RwLock<HashMap<Arc<str>, Arc<Sticky>>>);

impl Sessions {
    pub(crate) fn insert(&self, id: Arc<str>, sticky: Arc<Sticky>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, sticky);
    }

    pub(crate) fn remove(&self, id: &str) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    fn get(&self, id: &str) -> Option<Arc<Sticky>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// Largest request body read here (the size rmcp's client accepts for one message); a larger
/// one is refused with `413`.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The header naming a Streamable HTTP session.
pub(crate) const SESSION_HEADER: &str = "mcp-session-id";

/// A JSON-RPC request, as far as this path needs to read it.
#[derive(Deserialize)]
struct Call {
    jsonrpc: String,
    id: Value,
    method: String,
    #[serde(default)]
    params: Option<CallParams>,
}

#[derive(Deserialize)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
}

/// A JSON-RPC response, written straight from the result.
#[derive(serde::Serialize)]
struct Answer<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    result: &'a mcp_fleet_discovery::CallToolResult,
}

/// The middleware in front of rmcp's `/mcp` service.
pub(crate) async fn fast_call(
    State(inner): State<Arc<Inner>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(sticky) = eligible(&inner, &request) else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or cut short",
        )
            .into_response();
    };
    let Some(call) = parse(&bytes) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let arguments = call.arguments.map_or(Value::Null, Value::Object);
    let answer = match inner.call(&sticky, &call.name, arguments).await {
        Ok(result) => serde_json::to_vec(&Answer {
            jsonrpc: "2.0",
            id: &call.id,
            result: &result,
        })
        .unwrap_or_else(|e| {
            let error = ErrorData::internal_error(format!("cannot encode the result: {e}"), None);
            error_message(call.id.clone(), error)
                .to_string()
                .into_bytes()
        }),
        Err(error) => error_message(call.id, error).to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(answer));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The session of a request this path may answer: a `POST` in a known session, from a client
/// that accepts a JSON answer.
fn eligible(inner: &Inner, request: &Request) -> Option<Arc<Sticky>> {
    if request.method() != Method::POST {
        return None;
    }
    let headers = request.headers();
    let accepts_json = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !accepts_json || !is_json {
        return None;
    }
    let id = headers.get(SESSION_HEADER)?.to_str().ok()?;
    inner.sessions.get(id)
}

/// The tool call in `body`, when it is exactly one well-formed `tools/call` request.
struct ToolCall {
    id: Value,
    name: String,
    arguments: Option<Map<String, Value>>,
}

fn parse(body: &Bytes) -> Option<ToolCall> {
    let call: Call = serde_json::from_slice(body).ok()?;
    let id_ok = matches!(call.id, Value::Number(_) | Value::String(_));
    if call.jsonrpc != "2.0" || call.method != "tools/call" || !id_ok {
        return None;
    }
    let params = call.params?;
    Some(ToolCall {
        id: call.id,
        name: params.name,
        arguments: params.arguments,
    })
}

fn error_message(id: Value, error: ErrorData) -> Value {
    let mut body = json!({"code": error.code.0, "message": error.message});
    if let Some(data) = error.data {
        body["data"] = data;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": body})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Bytes {
        Bytes::from(v.to_string())
    }

    #[test]
    fn reads_a_single_tool_call() {
        let call = parse(&body(json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "svc__echo", "arguments": {"x": 1}, "_meta": {"progressToken": 1}}
        })))
        .expect("a tool call");
        assert_eq!(call.id, json!(7));
        assert_eq!(call.name, "svc__echo");
        assert_eq!(call.arguments.expect("arguments")["x"], json!(1));
    }

    #[test]
    fn leaves_everything_else_to_rmcp() {
        for other in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "a"}}),
            json!({"jsonrpc": "2.0", "id": null, "method": "tools/call", "params": {"name": "a"}}),
            json!({"jsonrpc": "1.0", "id": 1, "method": "tools/call", "params": {"name": "a"}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}}),
            json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a"}}]),
        ] {
            assert!(parse(&body(other.clone())).is_none(), "{other}");
        }
        assert!(parse(&Bytes::from_static(b"{not json")).is_none());
    }

    #[test]
    fn errors_keep_code_message_and_data() {
        let e = ErrorData::internal_error("upstream x: down", Some(json!({"upstream": "x"})));
        let m = error_message(json!("a"), e);
        assert_eq!(m["id"], json!("a"));
        assert_eq!(m["error"]["code"], json!(-32603));
        assert_eq!(m["error"]["message"], json!("upstream x: down"));
        assert_eq!(m["error"]["data"]["upstream"], json!("x"));
    }
}
