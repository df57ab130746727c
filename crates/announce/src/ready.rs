//! Waiting until a server's MCP endpoint answers, before it is registered.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderValue};
use rmcp::transport::common::http_header::HEADER_SESSION_ID;
use serde_json::json;
use tokio::time::Instant;

use crate::error::{AnnounceError, human, root_cause};

/// Time between two attempts.
const POLL: Duration = Duration::from_millis(100);
/// How long one attempt may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// Protocol version of the `initialize` sent; servers answer with the one they speak.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// Polls `mcp_url` with an MCP `initialize` until it answers `2xx` (or `401`/`403` when
/// `auth_required`: the server is up, and the registry holds no credentials either), for at most
/// `timeout`. A session the answer opened is closed again.
pub(crate) async fn wait(
    http: &reqwest::Client,
    mcp_url: &str,
    auth_required: bool,
    timeout: Duration,
) -> Result<(), AnnounceError> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt finished");
    loop {
        match tokio::time::timeout_at(deadline, attempt(http, mcp_url, auth_required)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(why)) => last = why,
            Err(_) => break,
        }
        if Instant::now() + POLL >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    Err(AnnounceError::NotReady {
        url: mcp_url.to_owned(),
        waited: human(timeout),
        last,
    })
}

/// One `initialize`: `Err` says what was wrong, briefly.
async fn attempt(http: &reqwest::Client, mcp_url: &str, auth_required: bool) -> Result<(), String> {
    let initialize = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-fleet-announce", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let res = http
        .post(mcp_url)
        .header(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        )
        .timeout(ATTEMPT)
        .json(&initialize)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {}", human(ATTEMPT))
            } else {
                root_cause(&e)
            }
        })?;
    let status = res.status();
    let session = res.headers().get(HEADER_SESSION_ID).cloned();
    drop(res);
    if let Some(session) = session {
        let _ = http
            .delete(mcp_url)
            .header(HEADER_SESSION_ID, session)
            .timeout(ATTEMPT)
            .send()
            .await;
    }
    let up = status.is_success()
        || (auth_required && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN));
    if up {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}
