//! The health worker end to end: a real registry probing real servers over HTTP and MCP, one
//! file per concern (below); this file holds what they share: fast settings, registrations, a
//! switchable `/health`, a webhook receiver and the check-now request. Fakes only stand in for
//! faults (a black hole, a refused port).

mod alerts;
mod catalog;
mod check_now;
mod concurrency;
mod damping;
mod expiry;
mod kinds;
mod replicas;
mod ssrf;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use mcp_fleet_registry::HealthConfig;
use mcp_fleet_test_support::eventually;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::common::TestRegistry;

/// How long a slow server takes to answer: above `degraded_latency`, below `timeout`.
const SLOW: Duration = Duration::from_millis(500);

/// Short settings, so a test sees many probes in a second.
fn quick() -> HealthConfig {
    HealthConfig {
        interval: Duration::from_millis(250),
        timeout: Duration::from_secs(1),
        degraded_latency: Duration::from_millis(250),
        refresh: Duration::from_millis(100),
        rise: 1,
        fall: 1,
        ..HealthConfig::default()
    }
}

/// Serves `app` on `listener` until `shutdown`; the task ends once the port is closed.
fn serve_on(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    })
}

/// Serves `app` on 127.0.0.1:0 until `shutdown`; returns its base URL.
async fn serve(app: Router, shutdown: CancellationToken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    serve_on(listener, app, shutdown);
    url
}

/// A registration at `url`, probed at `health_url` when given (else over MCP).
fn entry(id: &str, url: &str, health_url: Option<&str>, auth: &str) -> Value {
    let mut body = json!({
        "id": id,
        "name": format!("Server {id}"),
        "url": url,
        "version": "1.0.0",
        "auth": {"type": auth},
    });
    if let Some(health_url) = health_url {
        body["healthUrl"] = json!(health_url);
    }
    body
}

/// A registration checked by heartbeats only.
fn ttl_entry(id: &str) -> Value {
    json!({
        "id": id,
        "name": format!("Server {id}"),
        "url": "http://127.0.0.1:9",
        "version": "1.0.0",
        "healthCheck": {"mode": "ttl"},
        "ttlSeconds": 5,
    })
}

async fn register(reg: &TestRegistry, body: &Value) {
    let (status, answer) = reg.post(body).await;
    assert_eq!(status, 201, "{}: registering {body}: {answer}", reg.backend);
}

/// The entry `id`, once `pred` holds for it (within 10 s).
async fn entry_when(
    reg: &TestRegistry,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    eventually(
        Duration::from_secs(10),
        &format!("{}: {id} {what}", reg.backend),
        || async {
            let (status, body) = reg.get(&format!("/servers/{id}")).await;
            (status == 200 && pred(&body)).then_some(body)
        },
    )
    .await
}

/// The entry `id`, once its status is `status`.
async fn status_is(reg: &TestRegistry, id: &str, status: &str) -> Value {
    entry_when(reg, id, &format!("to be {status}"), |e| {
        e["status"] == status
    })
    .await
}

/// A JSON timestamp.
fn time(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("a timestamp, got {v}"));
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

/// The keys of a JSON object.
fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// A `/health` whose answer the test switches at run time. While it fails, each answer first
/// takes a permit from `gate`, so a gated switch lets the test decide how many failed probes
/// the registry gets to see.
#[derive(Clone)]
struct Switch {
    code: Arc<AtomicU16>,
    gate: Arc<Semaphore>,
    /// Failing answers sent.
    failed: Arc<AtomicUsize>,
    /// Failing requests waiting at the gate.
    held: Arc<AtomicUsize>,
}

impl Switch {
    /// Answers 200 until told otherwise; failing answers wait for [`Switch::let_through`].
    fn gated() -> Self {
        Self {
            code: Arc::new(AtomicU16::new(200)),
            gate: Arc::new(Semaphore::new(0)),
            failed: Arc::default(),
            held: Arc::default(),
        }
    }

    /// Answers 200 until told otherwise; failing answers are not held.
    fn open() -> Self {
        let s = Self::gated();
        s.gate.add_permits(Semaphore::MAX_PERMITS / 2);
        s
    }

    fn set(&self, code: u16) {
        self.code.store(code, Ordering::SeqCst);
    }

    fn let_through(&self, n: usize) {
        self.gate.add_permits(n);
    }

    fn failed(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }

    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/health", get(switched))
            .with_state(self.clone())
    }
}

async fn switched(State(s): State<Switch>) -> StatusCode {
    let mut code = s.code.load(Ordering::SeqCst);
    if code != 200 {
        s.held.fetch_add(1, Ordering::SeqCst);
        s.gate.acquire().await.expect("gate never closes").forget();
        s.held.fetch_sub(1, Ordering::SeqCst);
        code = s.code.load(Ordering::SeqCst);
    }
    if code != 200 {
        s.failed.fetch_add(1, Ordering::SeqCst);
    }
    StatusCode::from_u16(code).expect("valid status")
}

fn health_app() -> Router {
    Router::new().route("/health", get(|| async { "ok" }))
}

/// Records every webhook body.
#[derive(Clone, Default)]
struct Hook(Arc<Mutex<Vec<Value>>>);

impl Hook {
    fn bodies(&self) -> Vec<Value> {
        self.0.lock().expect("not poisoned").clone()
    }
}

async fn hook(State(hook): State<Hook>, Json(body): Json<Value>) -> StatusCode {
    hook.0.lock().expect("not poisoned").push(body);
    StatusCode::NO_CONTENT
}

async fn check(reg: &TestRegistry, id: &str) -> reqwest::Response {
    reg.http
        .post(format!("{}/servers/{id}/check", reg.url))
        .send()
        .await
        .expect("POST check")
}

async fn problem(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: Value = res.json().await.expect("problem body");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    body
}
