//! rmcp's own POSTs (`initialize`, `notifications/initialized`, listings, replies) to `http://`
//! servers, over the kept connections of `call_http`.
//!
//! rmcp's reqwest client opens a connection per request (pooling would stall on delayed ACKs,
//! see `call_http`), so a connect cost three new connections besides the session's event stream,
//! and each is work on both ends, so these POSTs go on kept connections instead (figures in
//! docs/perf.md, discovery connect). The answers are read as rmcp's reqwest client reads them: `202`/`204` (or an empty `200` to a
//! notification) is accepted, JSON is one message, an event stream becomes events, a `404`
//! in a session is an expired session, `401`/`403` carry the server's challenge, `429` or
//! `5xx` without a JSON-RPC error in the body is an HTTP status error, and any other `4xx` to a
//! `server/discover` outside a session is its JSON-RPC error (so that the client falls back to
//! `initialize` on a server that predates 2026-07-28).
//!
//! The session's event stream (`GET`) and its end (`DELETE`) still go through reqwest.

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Body as _;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, ErrorData, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use std::borrow::Cow;
use std::collections::HashMap;

use crate::call_http::{self, CallHttp, finish};
use crate::sse::{self, Bounded};

/// What the transport fails with (the library's client type is reqwest's).
type HttpError = StreamableHttpError<reqwest::Error>;

/// Bytes of an unusable body kept in an error.
const PREVIEW: usize = 256;

/// Posts `message` over a kept connection and reads the answer as rmcp's transport expects it.
pub(crate) async fn post(
    http: &CallHttp,
    uri: &hyper::Uri,
    message: &ClientJsonRpcMessage,
    session_id: Option<&str>,
    token: Option<String>,
    headers: &HashMap<HeaderName, HeaderValue>,
    limits: StreamableHttpResponseLimits,
) -> Result<StreamableHttpPostResponse, HttpError> {
    let body = serde_json::to_vec(message)?;
    let request = call_http::post_request(uri, body.into(), session_id, headers, token.as_deref())
        .map_err(|e| unexpected(format!("cannot build the request: {e}")))?;
    let response = http
        .request(request)
        .await
        .map_err(|e| StreamableHttpError::Io(std::io::Error::other(e)))?;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let challenge = header("www-authenticate");
    let session = header(rmcp::transport::common::http_header::HEADER_SESSION_ID);
    let content_type = header("content-type").unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match (status, challenge) {
        (StatusCode::UNAUTHORIZED, Some(challenge)) => {
            return Err(StreamableHttpError::AuthRequired(AuthRequiredError::new(
                challenge,
            )));
        }
        (StatusCode::FORBIDDEN, Some(challenge)) => {
            let scope = required_scope(&challenge);
            return Err(StreamableHttpError::InsufficientScope(
                InsufficientScopeError::new(challenge, scope),
            ));
        }
        _ => {}
    }
    if matches!(status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
        finish(response.into_body());
        return Ok(StreamableHttpPostResponse::Accepted);
    }
    if status == StatusCode::NOT_FOUND && session_id.is_some() {
        finish(response.into_body());
        return Err(StreamableHttpError::SessionExpired);
    }
    let is_json = essence == "application/json";
    if let Some(id) = discover_id(message, session_id)
        && status.is_client_error()
        && !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
    {
        let bytes = read_all(response.into_body(), limits.max_error_response_size)
            .await
            .unwrap_or_default();
        let error = match serde_json::from_slice::<ServerJsonRpcMessage>(&bytes) {
            Ok(ServerJsonRpcMessage::Error(e)) => e.error,
            _ => ErrorData::invalid_request(
                format!(
                    "server/discover rejected with HTTP {status}: {}",
                    preview(&bytes)
                ),
                None,
            ),
        };
        // Under the request's own id, whatever the body said: rmcp's lifecycle reads it so.
        return Ok(StreamableHttpPostResponse::Json(
            ServerJsonRpcMessage::error(error, Some(id)),
            None,
        ));
    }
    if !status.is_success() {
        let http_status = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        let retry_after = header("retry-after");
        let auth_failure = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        if is_json && !auth_failure && status != StatusCode::TOO_MANY_REQUESTS {
            let bytes = read_all(response.into_body(), limits.max_json_response_size).await?;
            // A JSON-RPC error in the body is the answer; the status says no more.
            if let Ok(message @ ServerJsonRpcMessage::Error(_)) =
                serde_json::from_slice::<ServerJsonRpcMessage>(&bytes)
            {
                return Ok(StreamableHttpPostResponse::Json(message, session));
            }
            if http_status {
                return Err(HttpStatusError::new(status.as_u16(), retry_after).into());
            }
            return Err(unexpected(format!("HTTP {status}: {}", preview(&bytes))));
        }
        if http_status {
            drop(response);
            return Err(HttpStatusError::new(status.as_u16(), retry_after).into());
        }
        let bytes = read_all(response.into_body(), limits.max_error_response_size)
            .await
            .unwrap_or_default();
        return Err(unexpected(format!("HTTP {status}: {}", preview(&bytes))));
    }
    let awaits_no_response = matches!(
        message,
        ClientJsonRpcMessage::Notification(_)
            | ClientJsonRpcMessage::Response(_)
            | ClientJsonRpcMessage::Error(_)
    );
    if awaits_no_response && response.body().size_hint().exact() == Some(0) {
        finish(response.into_body());
        return Ok(StreamableHttpPostResponse::Accepted);
    }
    match essence.as_str() {
        // Dropped before its end (rmcp stops reading once it has its answer), the stream's
        // rest is read in the background so that the connection is kept.
        "text/event-stream" => Ok(StreamableHttpPostResponse::Sse(
            Box::pin(sse::events(
                Bounded::new(response.into_body(), limits.max_sse_event_size).on_drop(finish),
            )),
            session,
        )),
        "application/json" => {
            let bytes = read_all(response.into_body(), limits.max_json_response_size).await?;
            let message = serde_json::from_slice(&bytes).map_err(|e| {
                unexpected(format!(
                    "the answer is not a JSON-RPC message ({e}): {}",
                    preview(&bytes)
                ))
            })?;
            Ok(StreamableHttpPostResponse::Json(message, session))
        }
        _ => {
            drop(response);
            Err(StreamableHttpError::UnexpectedContentType(
                (!content_type.is_empty()).then_some(content_type),
            ))
        }
    }
}

/// The id of `message` when it is a `server/discover` sent outside a session.
fn discover_id(
    message: &ClientJsonRpcMessage,
    session_id: Option<&str>,
) -> Option<rmcp::model::RequestId> {
    match message {
        ClientJsonRpcMessage::Request(request)
            if session_id.is_none()
                && matches!(request.request, ClientRequest::DiscoverRequest(_)) =>
        {
            Some(request.id.clone())
        }
        _ => None,
    }
}

fn unexpected(text: String) -> HttpError {
    StreamableHttpError::UnexpectedServerResponse(Cow::Owned(text))
}

/// The start of `bytes`, as text, for an error.
fn preview(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "<empty>".into();
    }
    let cut = &bytes[..bytes.len().min(PREVIEW)];
    String::from_utf8_lossy(cut).into_owned()
}

/// The whole body, refused beyond `limit` bytes.
async fn read_all(body: hyper::body::Incoming, limit: usize) -> Result<bytes::Bytes, HttpError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(StreamableHttpError::ResponseBodyTooLarge { max_size: limit })
        }
        Err(e) => Err(StreamableHttpError::Io(std::io::Error::other(e))),
    }
}

/// The `scope` a `403` challenge asks for (`Bearer error="insufficient_scope", scope="a b"`).
fn required_scope(challenge: &str) -> Option<String> {
    let at = challenge.find("scope=")? + "scope=".len();
    let rest = &challenge[at..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_from_challenges() {
        let quoted = r#"Bearer error="insufficient_scope", scope="tools:read tools:call""#;
        assert_eq!(
            required_scope(quoted).as_deref(),
            Some("tools:read tools:call")
        );
        assert_eq!(
            required_scope("Bearer scope=admin, error=x").as_deref(),
            Some("admin")
        );
        assert_eq!(required_scope(r#"Bearer realm="mcp""#), None);
    }

    #[test]
    fn previews_are_short() {
        assert_eq!(preview(b""), "<empty>");
        assert_eq!(preview(&[b'x'; 1000]).len(), PREVIEW);
    }
}
