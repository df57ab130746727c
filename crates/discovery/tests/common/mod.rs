//! Fixtures: a real registry on 127.0.0.1:0 over SQLite (from `mcp-fleet-test-support`), small
//! rmcp MCP servers whose tools can change at run time (counting the `tools/list` requests they
//! get), optional bearer/OAuth 2.0 protection, and a token endpoint.

pub(crate) mod server;

use serde_json::Value;

pub(crate) use mcp_fleet_test_support::registry::registration;
pub(crate) use mcp_fleet_test_support::{DEADLINE, TestRegistry, poll as eventually};

/// The `structuredContent` of a test server's tool result: `{server, tool, arguments}`.
pub(crate) fn echoed(result: &rmcp::model::CallToolResult) -> Value {
    let mut echo = result.structured_content.clone().unwrap_or(Value::Null);
    if let Some(fields) = echo.as_object_mut() {
        fields.remove("requestId");
    }
    echo
}

/// The JSON-RPC id the test server saw on the call that gave `result`.
pub(crate) fn request_id(result: &rmcp::model::CallToolResult) -> Value {
    result
        .structured_content
        .as_ref()
        .and_then(|c| c.get("requestId").cloned())
        .unwrap_or(Value::Null)
}

pub(crate) use mcp_fleet_test_support::Accepted;
