//! A real registry on `127.0.0.1:0` over a throwaway database, a client for it, and the
//! registration bodies the suites send it.

use std::sync::Arc;

use mcp_fleet_registry::{AppState, Config, HealthConfig, HealthHandle};
use mcp_fleet_store::Store;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::TestDb;

/// A running registry; stops when dropped.
pub struct TestRegistry {
    /// Base URL, no trailing slash.
    pub url: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The store behind it, to check what was (not) stored.
    pub store: Arc<dyn Store>,
    /// Which backend (`sqlite` or `postgres`).
    pub backend: &'static str,
    shutdown: CancellationToken,
    db: TestDb,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves a registry over `db` on `listener`, with a health worker when `health` is given.
async fn launch(
    listener: TcpListener,
    db: TestDb,
    config: Config,
    health: Option<HealthConfig>,
) -> (TestRegistry, Option<HealthHandle>) {
    let store = mcp_fleet_store::connect(&db.url).await.expect("open store");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let state = AppState::new(store.clone(), config);
    let handle = health.map(|health| {
        state
            .start_health_worker(health, shutdown.clone())
            .expect("start health worker");
        state.health().expect("worker running").clone()
    });
    tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));
    let registry = TestRegistry {
        url: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        backend: db.backend,
        shutdown,
        db,
    };
    (registry, handle)
}

async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Starts a registry over `db` with `config`, without a health worker (entries stay
/// `unknown`).
pub async fn start_with(db: TestDb, config: Config) -> TestRegistry {
    launch(loopback().await, db, config, None).await.0
}

/// A registry over a fresh SQLite file with default settings, without a health worker.
pub async fn start_sqlite() -> TestRegistry {
    start_with(crate::sqlite(), Config::default()).await
}

/// A registry per configured backend, with default settings.
pub async fn start_all() -> Vec<TestRegistry> {
    let mut out = Vec::new();
    for db in crate::all_backends().await {
        out.push(start_with(db, Config::default()).await);
    }
    out
}

/// Starts a registry over `db` with an in-process health worker.
pub async fn start_checked(db: TestDb, health: HealthConfig) -> TestRegistry {
    launch(loopback().await, db, Config::default(), Some(health))
        .await
        .0
}

/// Starts a registry with `config` and an in-process health worker; also returns the worker's
/// handle, for its counters.
pub async fn start_checked_with(
    db: TestDb,
    config: Config,
    health: HealthConfig,
) -> (TestRegistry, HealthHandle) {
    let (registry, handle) = launch(loopback().await, db, config, Some(health)).await;
    (registry, handle.expect("worker running"))
}

/// Starts another registry over the database of `first`, with `config` and a health worker
/// of its own: a replica, as `mcp-fleet serve` run twice on one PostgreSQL database is.
pub async fn start_replica(
    first: &TestRegistry,
    config: Config,
    health: HealthConfig,
) -> (TestRegistry, HealthHandle) {
    let (registry, handle) =
        launch(loopback().await, first.db.shared(), config, Some(health)).await;
    (registry, handle.expect("worker running"))
}

/// Starts a registry whose registration check (`Config.probe_deny`) and health worker
/// (`HealthConfig.deny`) both refuse the CIDR ranges `deny`.
pub async fn start_checked_denying(
    db: TestDb,
    mut health: HealthConfig,
    deny: &[&str],
) -> (TestRegistry, HealthHandle) {
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

/// Health settings for tests: fast probes, fast refresh.
pub fn fast_health() -> HealthConfig {
    HealthConfig {
        timeout: std::time::Duration::from_secs(2),
        interval: std::time::Duration::from_secs(1),
        refresh: std::time::Duration::from_millis(200),
        ..HealthConfig::default()
    }
}

/// Health settings for tests that count connections at servers: each entry is probed and its
/// catalog listed at registration, then left alone for an hour, so later connections are
/// someone else's.
pub fn listed_once() -> HealthConfig {
    HealthConfig {
        interval: std::time::Duration::from_secs(3600),
        catalog_refresh: Some(std::time::Duration::from_secs(3600)),
        ..fast_health()
    }
}

impl TestRegistry {
    /// A registry over a fresh SQLite file with default settings, without a health worker.
    pub async fn start() -> Self {
        start_sqlite().await
    }

    /// [`Self::start`] on `listener`.
    pub async fn start_on(listener: TcpListener) -> Self {
        launch(listener, crate::sqlite(), Config::default(), None)
            .await
            .0
    }

    /// The database URL the registry runs on.
    pub fn db_url(&self) -> &str {
        &self.db.url
    }

    /// POSTs a registration; returns the status and JSON body.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, "/servers", Some(body))
            .await
    }

    /// GETs `path`; returns the status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// Registers `body`, panicking unless the registry accepts it.
    pub async fn register(&self, body: &Value) {
        let (status, answer) = self.post(body).await;
        assert!(
            (200..300).contains(&status),
            "registering {body}: {status} {answer}"
        );
    }

    /// Deletes entry `id`, panicking unless the registry answers 204.
    pub async fn deregister(&self, id: &str) {
        let res = self
            .http
            .delete(format!("{}/servers/{id}", self.url))
            .send()
            .await
            .expect("DELETE /servers/{id}");
        assert_eq!(res.status().as_u16(), 204, "deleting {id}");
    }

    /// PUTs `/servers/{id}/heartbeat`; returns the status.
    pub async fn heartbeat(&self, id: &str) -> u16 {
        self.http
            .put(format!("{}/servers/{id}/heartbeat", self.url))
            .send()
            .await
            .expect("PUT heartbeat")
            .status()
            .as_u16()
    }

    /// The catalog of entry `id` once the health worker has listed it (`GET /servers/{id}/tools`
    /// with `fetchedAt` set).
    pub async fn listed(&self, id: &str) -> Value {
        let path = format!("/servers/{id}/tools");
        crate::poll("the health worker to list the server", || async {
            let (status, catalog) = self.get(&path).await;
            (status == 200 && !catalog["fetchedAt"].is_null()).then_some(catalog)
        })
        .await
    }

    /// Has entry `id` listed again now (`POST /servers/{id}/tools/refresh`, retried while the
    /// registry answers that the last refresh was too recent); the new catalog.
    pub async fn relist(&self, id: &str) -> Value {
        let path = format!("/servers/{id}/tools/refresh");
        let (status, catalog) = crate::poll("a refresh of the listing", || async {
            let (status, catalog) = self.send(reqwest::Method::POST, &path, None).await;
            (status != 429).then_some((status, catalog))
        })
        .await;
        assert_eq!(status, 200, "refreshing {id}: {catalog}");
        catalog
    }

    /// How many entries are stored, whatever their status.
    pub async fn count(&self) -> usize {
        let (all, _) = self.store.count_entries(None).await.expect("count entries");
        usize::try_from(all).expect("a count that fits")
    }

    /// Sends `method path` with `body` (JSON when given) and `Authorization: Bearer token`
    /// (when given); returns the response.
    pub async fn send_as(
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

    /// Sends `method path` with `body` (JSON when given); returns the status and JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let res = self.send_as(method, path, None, body).await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `PUT /services/{service}/routing` with `body`; returns the status and JSON body.
    pub async fn put_routing(&self, service: &str, body: &Value) -> (u16, Value) {
        let path = format!("/services/{service}/routing");
        self.send(reqwest::Method::PUT, &path, Some(body)).await
    }

    /// `GET /services/{service}/routing`.
    pub async fn routing(&self, service: &str) -> Value {
        self.http
            .get(format!("{}/services/{service}/routing", self.url))
            .send()
            .await
            .expect("GET routing")
            .json()
            .await
            .expect("JSON")
    }
}

/// A valid registration body with the seed's fields only.
pub fn seed_body(id: &str, tags: &[&str]) -> Value {
    seed_body_at("http://127.0.0.1:3001", id, tags)
}

/// A seed body whose server (and `healthUrl`) is at `base`.
pub fn seed_body_at(base: &str, id: &str, tags: &[&str]) -> Value {
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

/// A registration of an MCP server at `base_url` with `auth`.
pub fn registration(id: &str, base_url: &str, tags: &[&str], auth: Value) -> Value {
    json!({
        "id": id,
        "name": format!("Test server {id}"),
        "url": base_url,
        "version": "1.2.3",
        "tags": tags,
        "auth": auth,
    })
}
