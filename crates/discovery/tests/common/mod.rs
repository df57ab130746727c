//! Fixtures: a real registry on 127.0.0.1:0 over SQLite, small rmcp MCP servers whose tools can
//! change at run time (counting the `tools/list` requests they get), optional bearer/OAuth 2.0
//! protection, and a token endpoint.

pub(crate) mod server;

use std::time::Duration;

use mcp_fleet_registry::{AppState, Config};
use mcp_fleet_test_support::TestDb;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How long any condition in these tests may take to come true.
pub(crate) const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `check` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    mcp_fleet_test_support::eventually(DEADLINE, what, check).await
}

/// A running registry (no health worker: entries stay `unknown`, which discovery connects
/// to); stops when dropped.
pub(crate) struct TestRegistry {
    /// Base URL, no trailing slash.
    pub(crate) url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestRegistry {
    /// A registry over a fresh SQLite file.
    pub(crate) async fn start() -> Self {
        let db = mcp_fleet_test_support::sqlite();
        let store = mcp_fleet_store::connect(&db.url).await.expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let state = AppState::new(store, Config::default());
        tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));
        Self {
            url,
            http: reqwest::Client::new(),
            shutdown,
            _db: db,
        }
    }

    /// Registers `body`, panicking unless the registry accepts it.
    pub(crate) async fn register(&self, body: &Value) {
        let res = self
            .http
            .post(format!("{}/servers", self.url))
            .json(body)
            .send()
            .await
            .expect("POST /servers");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert!(status.is_success(), "registering {body}: {status} {text}");
    }

    /// Deletes entry `id`.
    pub(crate) async fn deregister(&self, id: &str) {
        let res = self
            .http
            .delete(format!("{}/servers/{id}", self.url))
            .send()
            .await
            .expect("DELETE /servers/{id}");
        assert_eq!(res.status().as_u16(), 204, "deleting {id}");
    }
}

/// A registration of a server at `base_url` with `auth`.
pub(crate) fn registration(id: &str, base_url: &str, tags: &[&str], auth: Value) -> Value {
    json!({
        "id": id,
        "name": format!("Test server {id}"),
        "url": base_url,
        "version": "1.2.3",
        "tags": tags,
        "auth": auth,
    })
}

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
