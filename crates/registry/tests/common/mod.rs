//! A real registry on `127.0.0.1:0` over a throwaway database, and a client for it.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use mcp_fleet_registry::{AppState, Config, HealthConfig};
use mcp_fleet_store::Store;
use mcp_fleet_test_support::TestDb;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A running registry; stops when dropped.
pub(crate) struct TestRegistry {
    /// Base URL, no trailing slash.
    pub(crate) url: String,
    /// An HTTP client.
    pub(crate) http: reqwest::Client,
    /// The store behind it, to check what was (not) stored.
    pub(crate) store: Arc<dyn Store>,
    /// Which backend.
    pub(crate) backend: &'static str,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a registry over `db` with `config`, without a health worker.
pub(crate) async fn start_with(db: TestDb, config: Config) -> TestRegistry {
    start_inner(db, config, None).await
}

/// Health settings for tests: fast probes, fast refresh.
pub(crate) fn fast_health() -> HealthConfig {
    HealthConfig {
        timeout: std::time::Duration::from_secs(2),
        interval: std::time::Duration::from_secs(1),
        refresh: std::time::Duration::from_millis(200),
        ..HealthConfig::default()
    }
}

/// Starts a registry over `db` with an in-process health worker.
pub(crate) async fn start_checked(db: TestDb, health: HealthConfig) -> TestRegistry {
    start_inner(db, Config::default(), Some(health)).await
}

/// A plain HTTP server on 127.0.0.1:0 answering `200 {"status":"ok"}` on `/health`, until
/// `shutdown`; returns its base URL.
pub(crate) async fn live_server(shutdown: CancellationToken) -> String {
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(|| async { axum::Json(json!({"status": "ok"})) }),
    );
    mcp_fleet_test_support::serve(app, shutdown).await
}

async fn start_inner(db: TestDb, config: Config, health: Option<HealthConfig>) -> TestRegistry {
    let store = mcp_fleet_store::connect(&db.url).await.expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let state = AppState::new(store.clone(), config);
    if let Some(health) = health {
        state
            .start_health_worker(health, shutdown.clone())
            .expect("start health worker");
    }
    tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));
    TestRegistry {
        url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        backend: db.backend,
        shutdown,
        _db: db,
    }
}

/// A registry over a fresh SQLite file with default settings.
pub(crate) async fn start_sqlite() -> TestRegistry {
    start_with(mcp_fleet_test_support::sqlite(), Config::default()).await
}

/// A registry per configured backend.
pub(crate) async fn start_all() -> Vec<TestRegistry> {
    let mut out = Vec::new();
    for db in mcp_fleet_test_support::all_backends().await {
        out.push(start_with(db, Config::default()).await);
    }
    out
}

/// A valid registration body with the seed's fields only.
pub(crate) fn seed_body(id: &str, tags: &[&str]) -> Value {
    seed_body_at("http://127.0.0.1:3001", id, tags)
}

/// A seed body whose server (and `healthUrl`) is at `base`.
pub(crate) fn seed_body_at(base: &str, id: &str, tags: &[&str]) -> Value {
    json!({
        "id": id,
        "name": format!("Server {id}"),
        "description": "A sample server",
        "url": format!("{base}/{id}"),
        "version": "1.0.0",
        "tags": tags,
        "auth": {"type": "none"},
        "healthUrl": format!("{base}/health"),
    })
}

impl TestRegistry {
    /// POSTs a registration; returns the status and JSON body.
    pub(crate) async fn post(&self, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/servers", self.url))
            .json(body)
            .send()
            .await
            .expect("POST /servers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// GETs `path`; returns the status and JSON body.
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// How many entries are stored, whatever their status.
    pub(crate) async fn count(&self) -> usize {
        self.store.status_rows().await.expect("status rows").len()
    }
}

/// Starts a registry with `config` and an in-process health worker; also returns the worker's
/// handle, for its counters.
pub(crate) async fn start_checked_with(
    db: TestDb,
    config: Config,
    health: HealthConfig,
) -> (TestRegistry, mcp_fleet_registry::HealthHandle) {
    let store = mcp_fleet_store::connect(&db.url).await.expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let state = AppState::new(store.clone(), config);
    state
        .start_health_worker(health, shutdown.clone())
        .expect("start health worker");
    let handle = state.health().expect("worker running").clone();
    tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));
    let reg = TestRegistry {
        url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        backend: db.backend,
        shutdown,
        _db: db,
    };
    (reg, handle)
}

/// Starts a registry whose registration check (`Config.probe_deny`) and health worker
/// (`HealthConfig.deny`) both refuse the CIDR ranges `deny`.
pub(crate) async fn start_checked_denying(
    db: TestDb,
    mut health: HealthConfig,
    deny: &[&str],
) -> (TestRegistry, mcp_fleet_registry::HealthHandle) {
    let deny: Vec<_> = deny
        .iter()
        .map(|s| mcp_fleet_registry::parse_cidr(s).expect("test CIDR"))
        .collect();
    health.deny = deny.clone();
    let config = Config {
        probe_deny: deny,
        ..Config::default()
    };
    start_checked_with(db, config, health).await
}

/// The base URL of a loopback port nothing listens on (bound, then released): connections to
/// it are refused.
pub(crate) fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}", listener.local_addr().expect("addr"))
}

/// A black hole on 127.0.0.1:0: accepts connections and holds them without ever answering,
/// until `shutdown`; returns its base URL.
pub(crate) async fn black_hole(shutdown: CancellationToken) -> String {
    timed_black_hole(shutdown).await.0
}

/// [`black_hole`], also noting when it accepted each connection.
pub(crate) async fn timed_black_hole(
    shutdown: CancellationToken,
) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let times = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => {
                        times.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
                        held.push(socket);
                    }
                    Err(_) => break,
                },
            }
        }
    });
    (url, accepted)
}

impl TestRegistry {
    /// PUTs `/servers/{id}/heartbeat`; returns the status.
    pub(crate) async fn heartbeat(&self, id: &str) -> u16 {
        self.http
            .put(format!("{}/servers/{id}/heartbeat", self.url))
            .send()
            .await
            .expect("PUT heartbeat")
            .status()
            .as_u16()
    }
}

impl TestRegistry {
    /// The database URL the registry runs on.
    pub(crate) fn db_url(&self) -> &str {
        &self._db.url
    }

    /// Sends `method path` with `body` (JSON when given) and `Authorization: Bearer token`
    /// (when given); returns the response.
    pub(crate) async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("request")
    }
}
