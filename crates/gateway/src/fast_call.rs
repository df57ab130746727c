//! `tools/call` answered in front of rmcp's session machinery, the gateway's hot path.
//!
//! rmcp's Streamable HTTP server takes a request through a session worker, the service task
//! and an event stream per answer; for the gateway that is as much work again as the upstream
//! call it forwards (docs/perf.md, gateway overhead).
//! So a `POST /mcp` that is a single JSON-RPC `tools/call` in a session this gateway already
//! knows, or of a sessionless revision (2026-07-28; its `_meta` and `Mcp-Method`/`Mcp-Name`
//! headers agreeing with the body), is answered here: the same routing, canary accounting and timeout as every call
//! ([`Inner::call`]), and the answer as one `application/json` message, which the MCP
//! Streamable HTTP transport allows for any request. Everything else (initialize, listings,
//! notifications, batches, unknown sessions, clients that do not accept JSON answers) goes to
//! rmcp untouched.
//!
//! A session becomes known when its `notifications/initialized` reaches the session's handler,
//! which only rmcp creates. Each request is held to every check rmcp would apply to it (Host,
//! Origin, Accept, Content-Type, the `MCP-Protocol-Version` header, protocol metadata in the
//! body; see `front`): a request rmcp would refuse, or that this path cannot be sure of, goes
//! to rmcp, which answers it as it answers any other. A `notifications/cancelled` for a call
//! answered here finds nothing to cancel in rmcp: the call runs to its end or to the gateway's
//! call timeout, as if the notice came late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use mcp_fleet_model::Version;
use rmcp::ErrorData;
use rmcp::model::{ProtocolVersion, RequestMetaObject};
use rmcp::transport::common::http_header::{
    BASE64_HEADER_PREFIX, HEADER_MCP_METHOD, HEADER_MCP_NAME,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::front::{Front, rmcp_headers_pass};
use crate::gateway::Inner;

/// A session's version per service (sticky routing), and the seed its versions are drawn
/// from (from its id, so every replica draws the same; none for stateless requests).
#[derive(Default)]
pub(crate) struct Sticky {
    seed: OnceLock<u64>,
    /// When its id expires (seconds since the Unix epoch).
    expires: OnceLock<u64>,
    pub(crate) pins: Mutex<HashMap<String, Version>>,
}

impl Sticky {
    /// Takes up the session whose id carries `claims`.
    pub(crate) fn take_up(&self, claims: &crate::session_id::Claims, expires: u64) {
        let _ = self.seed.set(claims.seed);
        let _ = self.expires.set(expires);
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        for (service, version) in &claims.pins {
            if let Ok(version) = version.parse() {
                pins.entry(service.clone()).or_insert(version);
            }
        }
    }

    /// Whether its id has expired at `now`.
    fn expired(&self, now: u64) -> bool {
        self.expires.get().is_some_and(|e| now > *e)
    }

    /// The draw for `service`'s version: the session's own, else a random one.
    pub(crate) fn roll(&self, service: &str) -> u32 {
        match self.seed.get() {
            Some(seed) => crate::session_id::Claims::roll(*seed, service),
            None => fastrand::u32(..),
        }
    }
}

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

    /// The session `id` if it is open here and its id has not expired.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Sticky>> {
        let now = crate::session_id::now_secs();
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .filter(|sticky| !sticky.expired(now))
            .cloned()
    }
}

/// The header naming a Streamable HTTP session.
pub(crate) const SESSION_HEADER: &str = rmcp::transport::common::http_header::HEADER_SESSION_ID;

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
    #[serde(default, rename = "_meta")]
    meta: Option<Map<String, Value>>,
}

/// A JSON-RPC request's envelope alone, to answer one whose params do not fit its method.
#[derive(Deserialize)]
struct Envelope {
    jsonrpc: String,
    id: Value,
    method: String,
}

/// The `_meta` key of a request that names its protocol version (2026-07-28 and later): such
/// requests are rmcp's to route and check.
pub(crate) const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";

/// A JSON-RPC response, written straight from the result.
#[derive(serde::Serialize)]
struct Answer<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    result: &'a mcp_fleet_discovery::CallToolResult,
}

/// The middleware in front of rmcp's `/mcp` service.
pub(crate) async fn fast_call(
    State((inner, front)): State<(Arc<Inner>, Arc<Front>)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(route) = eligible(&inner, &front, &request) else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    // `front` has read the body already, within its limits.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return next.run(Request::from_parts(parts, Body::empty())).await;
    };
    let parsed = match route {
        Route::Session(_) => parse(&bytes),
        Route::Stateless(version) => parse_stateless(&inner, &bytes, &parts.headers, version),
    };
    let call = match parsed {
        Parsed::Call(call) => call,
        Parsed::BadParams(id) => {
            let error = ErrorData::invalid_params(
                "Invalid params: tools/call takes {\"name\": string, \"arguments\": object}",
                None,
            );
            return json_answer(error_message(id, error).to_string().into_bytes());
        }
        Parsed::Other => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
    };
    let sticky = match route {
        Route::Session(sticky) => sticky,
        // No session: the version is drawn afresh, as rmcp's stateless path does.
        Route::Stateless(_) => Arc::default(),
    };
    inner.metrics.fast_calls.inc();
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
    json_answer(answer)
}

fn json_answer(body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Who a request this path may answer comes from.
enum Route {
    /// A session this gateway knows (a revision with `initialize`).
    Session(Arc<Sticky>),
    /// A sessionless revision (2026-07-28 and later): each request stands alone.
    Stateless(&'static ProtocolVersion),
}

/// Whether this path may answer `request`: a `POST` that passes rmcp's header checks, either in
/// a known session naming no protocol version or one that has sessions (before 2026-07-28, so
/// rmcp would neither require `_meta` nor `Mcp-Method` headers), or naming a sessionless
/// version rmcp knows (the body is checked by [`parse_stateless`]).
fn eligible(inner: &Inner, front: &Front, request: &Request) -> Option<Route> {
    if request.method() != Method::POST {
        return None;
    }
    let headers = request.headers();
    if !rmcp_headers_pass(request.uri(), headers, &front.hosts) {
        return None;
    }
    if let Some(version) = headers.get(PROTOCOL_VERSION_HEADER) {
        let version = version.to_str().ok()?;
        let known = ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .find(|v| v.as_str() == version)?;
        if !known.has_initialize() {
            return Some(Route::Stateless(known));
        }
    }
    // `admit` found it already.
    if let Some(Live(sticky)) = request.extensions().get::<Live>() {
        return Some(Route::Session(sticky.clone()));
    }
    let id = headers.get(SESSION_HEADER)?.to_str().ok()?;
    inner.sessions.get(id).map(Route::Session)
}

/// A request's session, open here: put in its extensions by `session_store::admit`.
#[derive(Clone)]
pub(crate) struct Live(pub(crate) Arc<Sticky>);

/// The header naming the protocol version of a request.
pub(crate) const PROTOCOL_VERSION_HEADER: &str =
    rmcp::transport::common::http_header::HEADER_MCP_PROTOCOL_VERSION;

/// The tool call in `body`, when it is exactly one well-formed `tools/call` request.
struct ToolCall {
    id: Value,
    name: String,
    arguments: Option<Map<String, Value>>,
}

/// What `parse` found.
enum Parsed {
    /// One well-formed `tools/call` this path answers.
    Call(ToolCall),
    /// A `tools/call` request (this id) whose params are not a call's.
    BadParams(Value),
    /// Anything else: rmcp's.
    Other,
}

fn parse(body: &Bytes) -> Parsed {
    let id_ok = |id: &Value| id.is_string() || id.is_i64() || id.is_u64();
    let Ok(call) = serde_json::from_slice::<Call>(body) else {
        return match serde_json::from_slice::<Envelope>(body) {
            Ok(e) if e.jsonrpc == "2.0" && e.method == "tools/call" && id_ok(&e.id) => {
                Parsed::BadParams(e.id)
            }
            _ => Parsed::Other,
        };
    };
    if call.jsonrpc != "2.0" || call.method != "tools/call" || !id_ok(&call.id) {
        return Parsed::Other;
    }
    let Some(params) = call.params else {
        return Parsed::BadParams(call.id);
    };
    if params
        .meta
        .as_ref()
        .is_some_and(|m| m.contains_key(PROTOCOL_VERSION_META))
    {
        return Parsed::Other;
    }
    Parsed::Call(ToolCall {
        id: call.id,
        name: params.name,
        arguments: params.arguments,
    })
}

/// A `tools/call` of a sessionless revision, as far as this path reads it: anything more in
/// its params (a task, input responses) is rmcp's.
#[derive(Deserialize)]
struct StatelessCall {
    jsonrpc: String,
    id: Value,
    method: String,
    params: StatelessParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatelessParams {
    name: String,
    #[serde(default)]
    arguments: Option<Map<String, Value>>,
    #[serde(rename = "_meta")]
    meta: RequestMetaObject,
}

/// The tool call in `body` of a request at sessionless protocol `version`, when this path can
/// be sure rmcp would accept it: its `_meta` names `version` (the header's) and has what the
/// revision requires, `Mcp-Method` and `Mcp-Name` are given once each and plainly agree with
/// the body, and no `Mcp-Param-*` header is sent nor expected by the tool. Anything else,
/// mismatches included, rmcp answers (a `HeaderMismatch` error, `-32020`, HTTP 400).
fn parse_stateless(
    inner: &Inner,
    body: &Bytes,
    headers: &HeaderMap,
    version: &ProtocolVersion,
) -> Parsed {
    let Ok(call) = serde_json::from_slice::<StatelessCall>(body) else {
        return Parsed::Other;
    };
    let id_ok = call.id.is_string() || call.id.is_i64() || call.id.is_u64();
    let meta_ok = call
        .params
        .meta
        .protocol_version()
        .is_some_and(|v| v.as_str() == version.as_str())
        && call.params.meta.missing_required_keys(version).is_empty();
    if call.jsonrpc != "2.0" || call.method != "tools/call" || !id_ok || !meta_ok {
        return Parsed::Other;
    }
    let name = call.params.name;
    let plain = |value: &str| !value.starts_with(BASE64_HEADER_PREFIX);
    if only(headers, HEADER_MCP_METHOD) != Some("tools/call")
        || only(headers, HEADER_MCP_NAME).is_none_or(|n| !plain(n) || n != name)
        || headers
            .keys()
            .any(|h| h.as_str().starts_with(PARAM_HEADER_PREFIX))
    {
        return Parsed::Other;
    }
    if inner
        .catalog()
        .by_name
        .get(&name)
        .is_some_and(|offered| offered.param_headers)
    {
        return Parsed::Other;
    }
    Parsed::Call(ToolCall {
        id: call.id,
        name,
        arguments: call.params.arguments,
    })
}

/// The value of header `name` when it is given exactly once, as text.
fn only<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// `Mcp-Param-` in lower case, as header names are stored.
const PARAM_HEADER_PREFIX: &str = "mcp-param-";

/// A JSON-RPC error response; `ErrorData` serializes as the spec's error object (`code`,
/// `message`, and `data` when there is some).
fn error_message(id: Value, error: ErrorData) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Bytes {
        Bytes::from(v.to_string())
    }

    #[test]
    fn reads_a_single_tool_call() {
        let Parsed::Call(call) = parse(&body(json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "svc__echo", "arguments": {"x": 1}, "_meta": {"progressToken": 1}}
        }))) else {
            panic!("a tool call")
        };
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
            json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a"}}]),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a",
                "_meta": {PROTOCOL_VERSION_META: "2026-07-28"}}}),
        ] {
            assert!(
                matches!(parse(&body(other.clone())), Parsed::Other),
                "{other}"
            );
        }
        assert!(matches!(
            parse(&Bytes::from_static(b"{not json")),
            Parsed::Other
        ));
    }

    #[test]
    fn calls_with_bad_params_are_told_so() {
        for bad in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}}),
            json!({"jsonrpc": "2.0", "id": "x", "method": "tools/call",
                "params": {"name": "a", "arguments": [1]}}),
        ] {
            assert!(
                matches!(parse(&body(bad.clone())), Parsed::BadParams(_)),
                "{bad}"
            );
        }
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
