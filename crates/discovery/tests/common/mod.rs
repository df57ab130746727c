//! Fixtures: a real registry on 127.0.0.1:0 over SQLite and small rmcp MCP servers whose tools
//! can change at run time (counting the `tools/list` requests they get), optionally behind
//! bearer/OAuth 2.0 protection, all from `mcp-fleet-test-support`.

/// The MCP test server (test-support's, shared with the gateway suite).
pub(crate) mod server {
    pub(crate) use mcp_fleet_test_support::mcp_server::{
        CHATTY, CHATTY_ADDS, McpServer as TestServer, Speaks,
    };
}

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
