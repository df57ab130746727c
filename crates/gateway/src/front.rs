//! What every `/mcp` request meets before the fast path or rmcp: its body read within a deadline,
//! a size limit and a budget of body bytes shared by all requests, and the JSON-RPC envelope
//! checked, so malformed messages get the JSON-RPC error the MCP transport prescribes
//! (`-32700`, `-32600`, HTTP 400) on both paths. Also the header checks rmcp's
//! `StreamableHttpService` applies (Host, Origin, Accept, Content-Type), which the fast path must
//! pass before it may answer in rmcp's place.
//!
//! Over 500 lines: every check a request meets before either path is here, in the order it meets them, with their tests.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::ServeLimits;

/// The state of the front checks: the limits, the body-byte budget and the accepted hosts.
pub(crate) struct Front {
    pub(crate) limits: ServeLimits,
    budget: Arc<Semaphore>,
    /// `Host` values rmcp accepts (its `allowed_hosts`; empty accepts any).
    pub(crate) hosts: Vec<String>,
}

impl Front {
    pub(crate) fn new(limits: ServeLimits, hosts: Vec<String>) -> Self {
        let budget = limits.max_inflight_body_bytes.min(Semaphore::MAX_PERMITS);
        Self {
            limits,
            budget: Arc::new(Semaphore::new(budget)),
            hosts,
        }
    }
}

/// Why a request body was not read.
#[derive(Debug)]
enum Refusal {
    TooLarge,
    Slow,
    Busy,
    Broken,
}

/// JSON-RPC "Invalid Request".
const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC "Parse error".
const PARSE_ERROR: i32 = -32700;
/// JSON-RPC's "invalid params".
const INVALID_PARAMS: i32 = -32602;
/// Longest string `id` accepted: errors echo the id, so it is bounded like other echoes.
const MAX_ID_CHARS: usize = 256;
/// Longest protocol version accepted (they are dates, `2025-06-18`): rmcp echoes a version it
/// does not know whole.
const MAX_VERSION_CHARS: usize = 64;
/// JSON-RPC implementation-defined server error.
const SERVER_ERROR: i32 = -32000;

/// A JSON-RPC error answer with no request to answer (`id: null`), as the MCP transport
/// describes for input the server cannot accept.
pub(crate) fn rpc_error(status: StatusCode, id: Value, code: i32, message: String) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn refused(front: &Front, refusal: Refusal) -> Response {
    let limits = &front.limits;
    let mut response = match refusal {
        Refusal::TooLarge => rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            Value::Null,
            INVALID_REQUEST,
            format!(
                "Invalid Request: the request body exceeds {} bytes",
                limits.max_body_bytes
            ),
        ),
        Refusal::Slow => rpc_error(
            StatusCode::REQUEST_TIMEOUT,
            Value::Null,
            INVALID_REQUEST,
            format!(
                "Invalid Request: the request body did not arrive within {} s",
                limits.request_timeout.as_secs_f64()
            ),
        ),
        Refusal::Busy => {
            let mut response = rpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                Value::Null,
                SERVER_ERROR,
                format!(
                    "the gateway holds its limit of request-body bytes ({} bytes, \
                     --max-inflight-body-bytes) and found no room within {} s; retry later",
                    limits.max_inflight_body_bytes,
                    limits.request_timeout.as_secs_f64()
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Refusal::Broken => rpc_error(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: the request body was cut short".to_owned(),
        ),
    };
    // The rest of the request may still be on its way.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reserves `bytes` more of the body-byte budget, waiting until `deadline` at most.
async fn reserve(
    front: &Front,
    held: &mut Option<OwnedSemaphorePermit>,
    bytes: usize,
    deadline: Instant,
) -> Result<(), Refusal> {
    if bytes == 0 {
        return Ok(());
    }
    let Ok(n) = u32::try_from(bytes) else {
        return Err(Refusal::TooLarge);
    };
    if bytes > front.limits.max_inflight_body_bytes {
        return Err(Refusal::Busy);
    }
    let permit = tokio::time::timeout_at(deadline, front.budget.clone().acquire_many_owned(n))
        .await
        .map_err(|_| Refusal::Busy)?
        .map_err(|_| Refusal::Busy)?;
    match held {
        Some(p) => p.merge(permit),
        None => *held = Some(permit),
    }
    Ok(())
}

/// Reads `body` whole, within the size limit, the budget and the deadline.
async fn read(
    front: &Front,
    body: Body,
    declared: Option<u64>,
    held: &mut Option<OwnedSemaphorePermit>,
) -> Result<Bytes, Refusal> {
    let limits = &front.limits;
    let deadline = Instant::now() + limits.request_timeout;
    let mut reserved = 0;
    if let Some(n) = declared {
        let n = usize::try_from(n).map_err(|_| Refusal::TooLarge)?;
        reserve(front, held, n, deadline).await?;
        reserved = n;
    }
    let mut buf = Vec::with_capacity(reserved);
    let mut stream = body.into_data_stream();
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| Refusal::Slow)?;
        let chunk = match next {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(_)) => return Err(Refusal::Broken),
        };
        let total = buf.len() + chunk.len();
        if total > limits.max_body_bytes {
            return Err(Refusal::TooLarge);
        }
        if total > reserved {
            reserve(front, held, total - reserved, deadline).await?;
            reserved = total;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// The middleware in front of `/mcp`: reads the body (see the module doc), checks the JSON-RPC
/// envelope of a POST rmcp would otherwise read, and keeps the body's bytes counted against the
/// budget until the answer is sent.
pub(crate) async fn front(
    State(front): State<Arc<Front>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        // rmcp reads no body but a POST's: others are dropped unread, and cost nothing.
        let (parts, _) = request.into_parts();
        return next.run(Request::from_parts(parts, Body::empty())).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > front.limits.max_body_bytes as u64) {
        return refused(&front, Refusal::TooLarge);
    }
    let (parts, body) = request.into_parts();
    let mut held = None;
    let bytes = match read(&front, body, declared, &mut held).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refused(&front, refusal),
    };
    if rmcp_headers_pass(&parts.uri, &parts.headers, &front.hosts)
        && let Err(malformed) = check_envelope(&bytes)
    {
        return malformed.into_response();
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    match held {
        Some(permit) => response.map(|body| {
            Body::new(Holding {
                body,
                _permit: permit,
            })
        }),
        None => response,
    }
}

/// A response body that keeps its request's body bytes counted until it is sent.
struct Holding {
    body: Body,
    _permit: OwnedSemaphorePermit,
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A message refused before it reaches a handler: the JSON-RPC error to answer, as an HTTP 400.
#[derive(Debug)]
pub(crate) struct Malformed {
    id: Value,
    code: i32,
    message: String,
}

impl IntoResponse for Malformed {
    fn into_response(self) -> Response {
        rpc_error(StatusCode::BAD_REQUEST, self.id, self.code, self.message)
    }
}

/// Checks that `body` is one JSON-RPC 2.0 message as MCP allows them (no batches; ids strings
/// or integers).
pub(crate) fn check_envelope(body: &[u8]) -> Result<(), Malformed> {
    let bad = |id: Value, code: i32, message: &str| {
        Err(Malformed {
            id,
            code,
            message: message.to_owned(),
        })
    };
    let message: Value = match serde_json::from_slice(body) {
        Ok(message) => message,
        Err(e) => {
            return bad(
                Value::Null,
                PARSE_ERROR,
                &format!("Parse error: the body is not JSON ({e})"),
            );
        }
    };
    let Value::Object(message) = message else {
        return if message.is_array() {
            bad(
                Value::Null,
                INVALID_REQUEST,
                "Invalid Request: batches are not supported; send one JSON-RPC message per POST",
            )
        } else {
            bad(
                Value::Null,
                INVALID_REQUEST,
                "Invalid Request: a JSON-RPC message is a JSON object",
            )
        };
    };
    let id = message.get("id");
    let id_ok = |id: &Value| id.is_string() || id.is_i64() || id.is_u64();
    let answer_id = id.filter(|id| id_ok(id)).cloned().unwrap_or(Value::Null);
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return bad(
            answer_id,
            INVALID_REQUEST,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"",
        );
    }
    if id.is_some_and(|id| !id_ok(id)) {
        return bad(
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: \"id\" must be a string or an integer (MCP forbids null)",
        );
    }
    if id
        .and_then(Value::as_str)
        .is_some_and(|id| id.chars().count() > MAX_ID_CHARS)
    {
        return bad(
            Value::Null,
            INVALID_REQUEST,
            &format!("Invalid Request: \"id\" is longer than {MAX_ID_CHARS} characters"),
        );
    }
    match message.get("method") {
        Some(Value::String(_)) => {
            let params = message.get("params");
            let versions = [
                params.and_then(|p| p.get("protocolVersion")),
                params
                    .and_then(|p| p.get("_meta"))
                    .and_then(|m| m.get("io.modelcontextprotocol/protocolVersion")),
            ];
            if versions.into_iter().flatten().any(|v| {
                v.as_str()
                    .is_some_and(|v| v.chars().count() > MAX_VERSION_CHARS)
            }) {
                return bad(
                    answer_id,
                    INVALID_PARAMS,
                    &format!(
                        "Invalid params: a protocol version is longer than {MAX_VERSION_CHARS} \
                         characters"
                    ),
                );
            }
            Ok(())
        }
        Some(_) => bad(
            answer_id,
            INVALID_REQUEST,
            "Invalid Request: \"method\" must be a string",
        ),
        // A response to a request of the server's.
        None => {
            let result = message.contains_key("result");
            let error = message.get("error");
            let error_ok = error.is_some_and(|e| {
                e.get("code").is_some_and(|c| c.is_i64())
                    && e.get("message").is_some_and(Value::is_string)
            });
            if id.is_some() && (result != error.is_some()) && (result || error_ok) {
                Ok(())
            } else {
                bad(
                    answer_id,
                    INVALID_REQUEST,
                    "Invalid Request: a message without \"method\" is a response: an \"id\" \
                     and either \"result\" or an \"error\" with \"code\" and \"message\"",
                )
            }
        }
    }
}

/// Whether rmcp's `StreamableHttpService` lets a POST with these headers through to its body:
/// Host allowed (DNS rebinding), no `Origin` (the gateway sets no allowed origins, so rmcp
/// accepts any; with none to check there is nothing to differ on), an `Accept` naming both
/// `application/json` and `text/event-stream`, and a JSON `Content-Type`. Kept to rmcp 3.11's
/// `handle` and `handle_post`; when unsure it says no, and rmcp answers.
pub(crate) fn rmcp_headers_pass(uri: &Uri, headers: &HeaderMap, hosts: &[String]) -> bool {
    host_allowed(uri, headers, hosts)
        && !headers.contains_key(header::ORIGIN)
        && accepts_json_and_sse(headers)
        && is_json(headers)
}

fn host_allowed(uri: &Uri, headers: &HeaderMap, hosts: &[String]) -> bool {
    let authority = match headers.get(header::HOST) {
        Some(host) => {
            let Some(authority) = host
                .to_str()
                .ok()
                .and_then(|h| axum::http::uri::Authority::try_from(h).ok())
            else {
                return false;
            };
            authority
        }
        None => match uri.authority() {
            Some(authority) => authority.clone(),
            None => return false,
        },
    };
    if hosts.is_empty() {
        return true;
    }
    let host = normalize_host(authority.host());
    let port = authority.port_u16();
    hosts.iter().any(|allowed| {
        let allowed = allowed.trim();
        if allowed.is_empty() {
            return false;
        }
        let (a_host, a_port) = match axum::http::uri::Authority::try_from(allowed) {
            Ok(a) => (normalize_host(a.host()), a.port_u16()),
            Err(_) => (normalize_host(allowed), None),
        };
        a_host == host && a_port.is_none_or(|p| port == Some(p))
    })
}

fn normalize_host(host: &str) -> String {
    host.trim_matches('[')
        .trim_matches(']')
        .to_ascii_lowercase()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for essence in accepted_media_types(headers) {
        json |= essence.eq_ignore_ascii_case("application/json");
        sse |= essence.eq_ignore_ascii_case("text/event-stream");
    }
    json && sse
}

/// Splits on `delimiter` outside quoted strings (as rmcp's `split_unquoted`).
fn split_unquoted(value: &str, delimiter: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    value.split(move |c| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && c == delimiter {
            return true;
        }
        false
    })
}

/// The media ranges of `Accept` not excluded by a zero weight (as rmcp's
/// `accepted_media_types`).
fn accepted_media_types(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| split_unquoted(value, ','))
        .filter_map(|entry| {
            let mut parts = split_unquoted(entry, ';');
            let essence = parts.next()?.trim();
            parts
                .all(|parameter| {
                    let Some((name, value)) = parameter.split_once('=') else {
                        return true;
                    };
                    !name.trim().eq_ignore_ascii_case("q") || quality_is_acceptable(value.trim())
                })
                .then_some(essence)
        })
}

fn quality_is_acceptable(quality: &str) -> bool {
    let (whole, fraction) = quality.split_once('.').unwrap_or((quality, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|d| d.is_ascii_digit()) {
        return true;
    }
    whole != "0" || fraction.bytes().any(|d| d != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        map
    }

    #[test]
    fn header_checks_follow_rmcp() {
        let loopback: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        let uri = Uri::from_static("/mcp");
        let ok = [
            ("host", "127.0.0.1:4100"),
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json; charset=utf-8"),
        ];
        assert!(rmcp_headers_pass(&uri, &headers(&ok), &loopback));
        // One row per check: the header changed, and whether rmcp still passes it.
        let rows: [(&'static str, &str, bool); 10] = [
            ("host", "evil.example", false),
            ("host", "[::1]:80", true),
            ("host", "LOCALHOST", true),
            ("host", "bad host", false),
            ("accept", "application/json", false),
            ("accept", "application/json, text/event-stream;q=0", false),
            (
                "accept",
                "application/json;q=0.5, text/event-stream;q=x",
                true,
            ),
            ("content-type", "application/jsonx", false),
            ("content-type", "text/plain", false),
            ("origin", "http://127.0.0.1", false),
        ];
        for (name, value, passes) in rows {
            let mut map = headers(&ok);
            map.insert(name, HeaderValue::from_str(value).expect("value"));
            assert_eq!(
                rmcp_headers_pass(&uri, &map, &loopback),
                passes,
                "{name}: {value}"
            );
        }
        let mut map = headers(&ok);
        map.insert("host", HeaderValue::from_static("gw.example:8443"));
        assert!(rmcp_headers_pass(&uri, &map, &["gw.example".into()]));
        assert!(!rmcp_headers_pass(&uri, &map, &["gw.example:443".into()]));
        assert!(rmcp_headers_pass(&uri, &map, &[]));
    }

    #[test]
    fn envelopes() {
        let long_id = format!(
            r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#,
            "i".repeat(257)
        );
        let long_version = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{}"}}}}"#,
            "9".repeat(65)
        );
        let long_meta_version = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"_meta":{{"io.modelcontextprotocol/protocolVersion":"{}"}}}}}}"#,
            "9".repeat(65)
        );
        let bounded = [
            (long_id.as_bytes(), Some(INVALID_REQUEST)),
            (long_version.as_bytes(), Some(INVALID_PARAMS)),
            (long_meta_version.as_bytes(), Some(INVALID_PARAMS)),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#
                    .as_slice(),
                None,
            ),
        ];
        for (body, code) in bounded {
            let got = check_envelope(body).err().map(|m| m.code);
            assert_eq!(got, code, "{}", &String::from_utf8_lossy(body)[..60]);
        }
        let rows: [(&[u8], Option<i32>); 14] = [
            (b"{not json", Some(PARSE_ERROR)),
            (b"", Some(PARSE_ERROR)),
            (
                b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
                Some(INVALID_REQUEST),
            ),
            (b"5", Some(INVALID_REQUEST)),
            (
                b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}",
                Some(INVALID_REQUEST),
            ),
            (b"{\"id\":1,\"method\":\"ping\"}", Some(INVALID_REQUEST)),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
                Some(INVALID_REQUEST),
            ),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}",
                Some(INVALID_REQUEST),
            ),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}",
                Some(INVALID_REQUEST),
            ),
            (b"{\"jsonrpc\":\"2.0\",\"id\":1}", Some(INVALID_REQUEST)),
            (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", None),
            (
                b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
                None,
            ),
            (b"{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}", None),
            (
                b"{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1,\"message\":\"m\"}}",
                None,
            ),
        ];
        for (body, code) in rows {
            let got = check_envelope(body).err().map(|m| m.code);
            assert_eq!(got, code, "{}", String::from_utf8_lossy(body));
        }
    }
}
