//! The health worker end to end: a real registry probing real servers over HTTP and MCP, flap
//! damping, TTL heartbeats and their expiry guard, deregistration, the SSRF guard, webhooks
//! and on-demand checks. Fakes only stand in for faults (a black hole, a refused port).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use mcp_fleet_registry::{Config, HealthConfig};
use mcp_fleet_sample_servers::Sample;
use mcp_fleet_test_support::{TestDb, all_backends, eventually, sqlite};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::common::{
    TestRegistry, black_hole, live_server, refused_url, start_checked, start_checked_denying,
    start_checked_with, start_sqlite, timed_black_hole,
};

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

/// A self-signed certificate for 127.0.0.1 that expired on 2020-01-02, and its key: test data,
/// made with Python's `cryptography` (not valid before 2020-01-01, P-256).
const EXPIRED_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBUDCB96ADAgECAhQ+MnMgKADtzahriMaCJSL6SqaIojAKBggqhkjOPQQDAjAX
MRUwEwYDVQQDDAxleHBpcmVkLnRlc3QwHhcNMjAwMTAxMDAwMDAwWhcNMjAwMTAy
MDAwMDAwWjAXMRUwEwYDVQQDDAxleHBpcmVkLnRlc3QwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAAR+mk5jQo5nwZ06B562RYWKn3mBVeX3J9hEEVr0uw7Bwzd2V8jP
JmQgZ5OnT/vZP/IUTsRD1ud8Y8NMUkcrtm+GoyEwHzAPBgNVHREECDAGhwR/AAAB
MAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0EAwIDSAAwRQIhALbWA/XKj4ZKX4I5823W
ZTcq3JP/frqX6ipKx63F9PfIAiA5V7HHFpEeqMw3ZUqi8Zkg6g7WBwbBzTAbN+3c
aSEy2A==
-----END CERTIFICATE-----
";
const EXPIRED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/jsS5xnyNYcV5yzr
r5FAOLkr6ySKrGTZiIk4iXTC1lqhRANCAAR+mk5jQo5nwZ06B562RYWKn3mBVeX3
J9hEEVr0uw7Bwzd2V8jPJmQgZ5OnT/vZP/IUTsRD1ud8Y8NMUkcrtm+G
-----END PRIVATE KEY-----
";

/// A fault: a TLS server on 127.0.0.1:0 presenting [`EXPIRED_CERT`], which only shakes hands
/// (the client gives up on the certificate) until `shutdown`; returns its `https://` base URL.
async fn expired_tls_server(shutdown: CancellationToken) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(EXPIRED_CERT.as_bytes()).expect("test cert");
    let key = PrivateKeyDer::from_pem_slice(EXPIRED_KEY.as_bytes()).expect("test key");
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok(stream) = accepted.and_then(|(s, _)| s.into_std()) else {
                return;
            };
            let config = config.clone();
            // Blocking rustls on its own thread: the handshake ends when the client refuses the
            // certificate and closes, or at the read timeout.
            tokio::task::spawn_blocking(move || {
                let mut stream = stream;
                if stream.set_nonblocking(false).is_err()
                    || stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .is_err()
                {
                    return;
                }
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                while conn.is_handshaking() {
                    if conn.complete_io(&mut stream).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// A fault: reads each connection's request and closes it without an answer, until
/// `shutdown`; returns its base URL. (Reading first makes the close a FIN: unread data would
/// make it a reset.)
async fn hang_up(shutdown: CancellationToken) -> String {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((mut socket, _)) = accepted else {
                return;
            };
            tokio::spawn(async move {
                let mut request = [0; 4096];
                let _ = socket.read(&mut request).await;
            });
        }
    });
    url
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

/// One row per kind of server: the status its first probe gives, the short cause `lastError`
/// says, what the whole chain in `lastErrorDetail` holds, and `latencyMs` (null for a server
/// that never answered: refused, black-holed).
#[tokio::test]
async fn every_kind_of_server_gets_its_status() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let healthy = live_server(servers.clone()).await;
    let failing = serve(
        Router::new().route("/health", get(|| async { StatusCode::SERVICE_UNAVAILABLE })),
        servers.clone(),
    )
    .await;
    let slow = serve(
        Router::new().route(
            "/health",
            get(|| async {
                tokio::time::sleep(SLOW).await;
                "ok"
            }),
        ),
        servers.clone(),
    )
    .await;
    let hanging = black_hole(servers.clone()).await;
    let refused = refused_url();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mcp = mcp_fleet_sample_servers::start(Sample::Catalog, listener, servers.clone())
        .await
        .expect("sample server starts");
    // An MCP endpoint that wants credentials the registry does not hold.
    let guarded = serve(
        Router::new().route(
            "/mcp",
            any(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, r#"Bearer realm="mcp""#)],
                )
            }),
        ),
        servers.clone(),
    )
    .await;

    // TLS spoken to a server that speaks plain HTTP, and a certificate that expired.
    let tls = healthy.replacen("http://", "https://", 1);
    let expired = expired_tls_server(servers.clone()).await;
    let hangs_up = hang_up(servers.clone()).await;
    let reg = start_checked(sqlite(), quick()).await;
    let h = |base: &str| format!("{base}/health");
    // (id, registration, status, lastError (None: null; a trailing `…` matches a prefix),
    // text in lastErrorDetail, lastSeen set, latencyMs in this range (None: null))
    type Row<'a> = (
        &'a str,
        Value,
        &'a str,
        Option<&'a str>,
        &'a str,
        bool,
        Option<std::ops::Range<u64>>,
    );
    let fast = Some(0..250);
    let rows: Vec<Row> = vec![
        (
            "healthy",
            entry("healthy", &healthy, Some(&h(&healthy)), "none"),
            "healthy",
            None,
            "",
            true,
            fast.clone(),
        ),
        (
            "failing",
            entry("failing", &failing, Some(&h(&failing)), "none"),
            "degraded",
            Some("HTTP 503"),
            "answered HTTP 503 Service Unavailable",
            false,
            fast.clone(),
        ),
        (
            "slow",
            entry("slow", &slow, Some(&h(&slow)), "none"),
            "degraded",
            Some("slow: answered in …"),
            "slower than --degraded-latency (250 ms)",
            false,
            Some(500..1000),
        ),
        (
            "hanging",
            entry("hanging", &hanging, Some(&h(&hanging)), "none"),
            "down",
            Some("timed out after 1 s"),
            "GET health check: ",
            false,
            None,
        ),
        (
            "refused",
            entry("refused", &refused, Some(&h(&refused)), "none"),
            "down",
            Some("connection refused"),
            "GET health check: error sending request: client error (Connect): tcp connect error: Connection refused",
            false,
            None,
        ),
        (
            "tls",
            entry("tls", &healthy, Some(&h(&tls)), "none"),
            "down",
            Some("TLS: not a TLS server"),
            "GET health check: error sending request",
            false,
            None,
        ),
        (
            "expired",
            entry("expired", &expired, Some(&h(&expired)), "none"),
            "down",
            Some("TLS: certificate expired"),
            "invalid peer certificate",
            false,
            None,
        ),
        (
            "hangs-up",
            entry("hangs-up", &hangs_up, Some(&h(&hangs_up)), "none"),
            "down",
            Some("connection closed"),
            "GET health check: error sending request",
            false,
            None,
        ),
        (
            "mcp-refused",
            entry("mcp-refused", &refused, None, "none"),
            "down",
            Some("connection refused"),
            "send initialize request: ",
            false,
            None,
        ),
        (
            "mcp",
            entry("mcp", &mcp.base_url, None, "none"),
            "healthy",
            None,
            "",
            true,
            fast.clone(),
        ),
        (
            "wants-token",
            entry("wants-token", &guarded, None, "bearer"),
            "healthy",
            None,
            "",
            true,
            fast.clone(),
        ),
        (
            "no-auth",
            entry("no-auth", &guarded, None, "none"),
            "degraded",
            Some("HTTP 401 (auth.type is none)"),
            "answered HTTP 401 but the entry's auth.type is none",
            false,
            fast,
        ),
    ];
    for (_, body, ..) in &rows {
        register(&reg, body).await;
    }
    for (id, _, status, error, detail, seen, latency) in rows {
        let e = entry_when(&reg, id, "to be probed", |e| !e["lastCheckedAt"].is_null()).await;
        assert_eq!(e["status"], status, "{id}: {e}");
        match error {
            None => assert!(
                e["lastError"].is_null() && e["lastErrorDetail"].is_null(),
                "{id}: {e}"
            ),
            Some(want) => {
                let got = e["lastError"].as_str().unwrap_or_default();
                match want.strip_suffix('…') {
                    Some(prefix) => assert!(got.starts_with(prefix), "{id}: lastError {got:?}"),
                    None => assert_eq!(got, want, "{id}: lastError"),
                }
                let chain = e["lastErrorDetail"].as_str().unwrap_or_default();
                assert!(
                    chain.contains(detail),
                    "{id}: lastErrorDetail {chain:?} lacks {detail:?}"
                );
            }
        }
        assert_eq!(e["lastSeen"].is_string(), seen, "{id}: {e}");
        match latency {
            None => assert!(e["latencyMs"].is_null(), "{id}: never answered: {e}"),
            Some(range) => {
                let ms = e["latencyMs"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{id}: latencyMs in {e}"));
                assert!(range.contains(&ms), "{id}: {ms} ms, not in {range:?}");
            }
        }
        assert!(
            time(&e["lastCheckedAt"]) >= time(&e["registeredAt"]),
            "{id}: {e}"
        );
    }

    // An entry read with its error detail goes back with PUT as it is (seed clients echo
    // entries): lastErrorDetail is the registry's own field, ignored, not an unknown one.
    let (_, echoed) = reg.get("/servers/refused").await;
    assert!(echoed["lastErrorDetail"].is_string(), "{echoed}");
    let res = reg
        .http
        .put(format!("{}/servers/refused", reg.url))
        .json(&echoed)
        .send()
        .await
        .expect("PUT");
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}

/// With fall 2, one failed probe leaves a healthy entry healthy and the second does not; one
/// good probe (rise 1) brings it back. A server that dies and comes back on the same port goes
/// down and then healthy again.
#[tokio::test]
async fn flaps_are_damped_and_servers_recover() {
    futures::future::join_all(all_backends().await.into_iter().map(flap_and_recover)).await;
}

async fn flap_and_recover(db: TestDb) {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    // A long timeout: a failing answer held at the switch's gate must not time out.
    let health = HealthConfig {
        fall: 2,
        rise: 1,
        timeout: Duration::from_secs(10),
        ..quick()
    };
    let reg = start_checked(db, health).await;
    let backend = reg.backend;

    let switch = Switch::gated();
    let base = serve(switch.router(), servers.clone()).await;
    register(
        &reg,
        &entry("flappy", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    status_is(&reg, "flappy", "healthy").await;

    switch.set(503);
    switch.let_through(1);
    let once = entry_when(&reg, "flappy", "to record a failed probe", |e| {
        !e["lastError"].is_null()
    })
    .await;
    assert_eq!(once["status"], "healthy", "{backend}: {once}");
    assert!(
        once["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 503")),
        "{backend}: {once}"
    );
    // The next probe is in flight, held at the gate: nothing changes until it answers.
    eventually(
        Duration::from_secs(10),
        "the second failing probe to arrive",
        || async { (switch.held() == 1).then_some(()) },
    )
    .await;
    let (_, still) = reg.get("/servers/flappy").await;
    assert_eq!(switch.failed(), 1, "{backend}");
    assert_eq!(still["status"], "healthy", "{backend}: {still}");
    assert_eq!(still["lastCheckedAt"], once["lastCheckedAt"], "{backend}");

    switch.let_through(1);
    let twice = entry_when(&reg, "flappy", "to leave healthy", |e| {
        e["status"] != "healthy"
    })
    .await;
    assert_eq!(twice["status"], "degraded", "{backend}: {twice}");
    assert_eq!(switch.failed(), 2, "{backend}");
    assert!(time(&twice["lastCheckedAt"]) > time(&once["lastCheckedAt"]));

    switch.set(200);
    switch.let_through(Semaphore::MAX_PERMITS / 2);
    let back = status_is(&reg, "flappy", "healthy").await;
    assert!(back["lastError"].is_null(), "{backend}: {back}");
    assert!(time(&back["lastSeen"]) > time(&twice["lastCheckedAt"]));

    // Dies, and comes back on the same address.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let first_life = CancellationToken::new();
    let running = serve_on(listener, health_app(), first_life.clone());
    let url = format!("http://{addr}");
    register(
        &reg,
        &entry("phoenix", &url, Some(&format!("{url}/health")), "none"),
    )
    .await;
    status_is(&reg, "phoenix", "healthy").await;
    first_life.cancel();
    running
        .await
        .expect("server task")
        .expect("server stops cleanly");
    let dead = status_is(&reg, "phoenix", "down").await;
    let error = dead["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("refused"), "{backend}: {dead}");
    // Failed probes do not count as seen.
    assert!(
        time(&dead["lastSeen"]) < time(&dead["lastCheckedAt"]),
        "{backend}: {dead}"
    );

    let listener = TcpListener::bind(addr).await.expect("rebind the same port");
    serve_on(listener, health_app(), servers.clone());
    let again = status_is(&reg, "phoenix", "healthy").await;
    assert!(again["lastError"].is_null(), "{backend}: {again}");
    assert!(time(&again["lastSeen"]) > time(&dead["lastCheckedAt"]));
}

/// A `ttl` entry is healthy while it heartbeats and goes down `ttlSeconds` after the last
/// heartbeat, not after its registration.
#[tokio::test]
async fn a_ttl_entry_lives_by_its_heartbeats() {
    let reg = start_checked(sqlite(), quick()).await;
    assert_eq!(reg.heartbeat("nobody").await, 404);
    register(&reg, &ttl_entry("beating")).await;
    let first = status_is(&reg, "beating", "healthy").await;
    assert!(first["lastError"].is_null(), "{first}");

    let mut last_beat = Utc::now();
    for _ in 0..3 {
        // Pacing the client, not waiting for the registry.
        tokio::time::sleep(Duration::from_millis(300)).await;
        last_beat = Utc::now();
        assert_eq!(reg.heartbeat("beating").await, 204);
        let (_, e) = reg.get("/servers/beating").await;
        assert_eq!(e["status"], "healthy", "{e}");
        assert!(time(&e["lastSeen"]) >= last_beat - chrono::Duration::milliseconds(1));
    }
    let registered = time(&first["registeredAt"]);
    assert!(last_beat - registered >= chrono::Duration::milliseconds(900));

    let down = entry_when(&reg, "beating", "to expire", |e| e["status"] == "down").await;
    assert_eq!(down["lastError"], "ttl expired", "{down}");
    let expired_at = time(&down["lastCheckedAt"]);
    assert!(
        expired_at >= last_beat + chrono::Duration::milliseconds(4999),
        "expired at {expired_at}, last heartbeat at {last_beat}"
    );
}

/// An entry that stays down longer than `deregister_after` is removed; a healthy one stays.
#[tokio::test]
async fn long_dead_entries_are_deregistered() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let live = live_server(servers.clone()).await;
    let dead = refused_url();
    let health = HealthConfig {
        deregister_after: Duration::from_millis(500),
        ..quick()
    };
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    register(
        &reg,
        &entry("keeper", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    register(
        &reg,
        &entry("goner", &dead, Some(&format!("{dead}/health")), "none"),
    )
    .await;
    let down = status_is(&reg, "goner", "down").await;
    let since = time(&down["statusSince"]);
    eventually(
        Duration::from_secs(10),
        "goner to be deregistered",
        || async { (reg.get("/servers/goner").await.0 == 404).then_some(()) },
    )
    .await;
    assert!(
        Utc::now() - since >= chrono::Duration::milliseconds(500),
        "removed too early: down since {since}"
    );
    assert_eq!(worker.stats().deregistered.load(Ordering::Relaxed), 1);
    let (status, keeper) = reg.get("/servers/keeper").await;
    assert_eq!(status, 200);
    assert_eq!(keeper["status"], "healthy", "{keeper}");
    let (_, listed) = reg.get("/servers?status=any").await;
    assert_eq!(
        listed["servers"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

/// URLs at denied literal addresses are refused at registration, naming the field.
#[tokio::test]
async fn registering_a_denied_address_names_the_field() {
    let reg = start_sqlite().await;
    let ok = "http://10.0.0.5:8080";
    let metadata = "http://169.254.169.254/latest/meta-data";
    // (url, healthUrl, field named)
    let rows = [
        (metadata, None, "url"),
        ("http://[::ffff:169.254.169.254]", None, "url"),
        (ok, Some(metadata), "healthUrl"),
    ];
    for (url, health_url, field) in rows {
        let (status, problem) = reg.post(&entry("meta", url, health_url, "none")).await;
        assert_eq!(status, 400, "{url} {health_url:?}: {problem}");
        assert_eq!(problem["code"], "validation-failed");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("169.254.0.0/16"), "{problem}");
    }
    assert_eq!(reg.count().await, 0, "nothing is stored");
}

/// With loopback denied, a name that resolves to loopback is never connected to: `localhost`
/// is refused at registration like a literal loopback address, and an entry at another such name
/// (here `localhost`, stored under a looser policy) is down with a "refused: " error from both
/// probe kinds (HTTP and MCP), while the listener behind the name accepts nothing.
#[tokio::test]
async fn a_denied_name_is_never_probed() {
    let mut trap = mcp_fleet_test_support::Trap::start().await;
    let addr = trap.addr;
    let denied = ["127.0.0.0/8", "::1/128"];
    let (checked, _checked_worker) = start_checked_denying(sqlite(), quick(), &denied).await;
    let base = format!("http://localhost:{}", addr.port());
    for url in [format!("http://{addr}"), base.clone()] {
        let (status, problem) = checked.post(&entry("literal", &url, None, "none")).await;
        assert_eq!(status, 400, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("127.0.0.0/8"), "{problem}");
    }
    drop(checked);

    // The worker refuses entries however they got in.
    let mut health = quick();
    health.deny = denied
        .iter()
        .map(|s| mcp_fleet_registry::parse_cidr(s).expect("test CIDR"))
        .collect();
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    register(
        &reg,
        &entry("sneaky", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    register(&reg, &entry("sneaky-mcp", &base, None, "none")).await;
    for id in ["sneaky", "sneaky-mcp"] {
        let e = status_is(&reg, id, "down").await;
        let error = e["lastError"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("refused: ") && error.contains("127.0.0.0/8"),
            "{e}"
        );
        assert!(e["lastSeen"].is_null(), "{e}");
    }
    let probes = worker.stats().probes.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "another probe", || async {
        (worker.stats().probes.load(Ordering::Relaxed) > probes).then_some(())
    })
    .await;

    trap.assert_untouched("the probes").await;
}

/// A strict worker (`--probe-policy strict`) never probes loopback, named or literal, unless
/// `--probe-allow-cidr` names it; the entries got in under a laxer registry.
#[tokio::test]
async fn a_strict_worker_probes_loopback_only_where_allowed() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let live = live_server(servers.clone()).await;
    let port = live.rsplit(':').next().expect("port");
    let strict = |allow: &[&str]| HealthConfig {
        policy: mcp_fleet_model::PolicyMode::Strict,
        allow: allow
            .iter()
            .map(|s| mcp_fleet_registry::parse_cidr(s).expect("test CIDR"))
            .collect(),
        ..quick()
    };
    let (reg, _worker) = start_checked_with(sqlite(), Config::default(), strict(&[])).await;
    let named = format!("http://localhost:{port}");
    register(
        &reg,
        &entry("literal", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    register(
        &reg,
        &entry("named", &named, Some(&format!("{named}/health")), "none"),
    )
    .await;
    for id in ["literal", "named"] {
        let e = status_is(&reg, id, "down").await;
        let error = e["lastError"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("refused: address 127.0.0.1 is in the denied range 127.0.0.0/8"),
            "{e}"
        );
    }

    let (allowed, _worker) =
        start_checked_with(sqlite(), Config::default(), strict(&["127.0.0.1"])).await;
    register(
        &allowed,
        &entry("literal", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    status_is(&allowed, "literal", "healthy").await;
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

/// unknown → healthy → degraded → healthy reaches the webhook as exactly those transitions.
#[tokio::test]
async fn transitions_reach_the_webhook_in_order() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let received = Hook::default();
    let hook_url = serve(
        Router::new()
            .route("/hook", post(hook))
            .with_state(received.clone()),
        servers.clone(),
    )
    .await;
    let switch = Switch::open();
    let base = serve(switch.router(), servers.clone()).await;
    let health = HealthConfig {
        webhooks: vec![format!("{hook_url}/hook").parse().expect("url")],
        ..quick()
    };
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    register(
        &reg,
        &entry("alerting", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    status_is(&reg, "alerting", "healthy").await;
    switch.set(503);
    status_is(&reg, "alerting", "degraded").await;
    switch.set(200);
    status_is(&reg, "alerting", "healthy").await;

    let bodies = eventually(Duration::from_secs(10), "3 webhook calls", || async {
        let bodies = received.bodies();
        (bodies.len() >= 3).then_some(bodies)
    })
    .await;
    let steps: Vec<(&str, &str, &Value)> = bodies
        .iter()
        .map(|b| {
            (
                b["from"].as_str().unwrap_or_default(),
                b["to"].as_str().unwrap_or_default(),
                &b["lastError"],
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("unknown", "healthy", &Value::Null),
            ("healthy", "degraded", &json!("HTTP 503")),
            ("degraded", "healthy", &Value::Null),
        ],
        "{bodies:#?}"
    );
    assert_eq!(
        bodies[1]["lastErrorDetail"], "GET health check: answered HTTP 503 Service Unavailable",
        "the chain goes with the short cause"
    );
    let fields = BTreeSet::from([
        "id",
        "name",
        "from",
        "to",
        "at",
        "lastError",
        "lastErrorDetail",
    ]);
    for b in &bodies {
        assert_eq!(keys(b), fields, "{b}");
        assert_eq!(b["id"], "alerting");
        assert_eq!(b["name"], "Server alerting");
    }
    let at: Vec<_> = bodies.iter().map(|b| time(&b["at"])).collect();
    assert!(at.is_sorted(), "{at:?}");

    // Steady probes after the recovery send nothing more.
    let probes = worker.stats().probes.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "two more probes", || async {
        (worker.stats().probes.load(Ordering::Relaxed) >= probes + 2).then_some(())
    })
    .await;
    assert_eq!(received.bodies().len(), 3);
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

/// `POST /servers/{id}/check` probes at once and answers with the recorded result; it is rate
/// limited per entry, and refuses unknown, unprobed and worker-less cases with problems.
#[tokio::test]
async fn check_now_answers_with_the_recorded_probe() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let live = live_server(servers.clone()).await;
    let dead = refused_url();
    // Scheduled probes are rare here: the first one, on registration, and then a minute on.
    let health = HealthConfig {
        interval: Duration::from_secs(60),
        ..quick()
    };
    let reg = start_checked(sqlite(), health).await;
    register(
        &reg,
        &entry("checked", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    register(
        &reg,
        &entry("dead", &dead, Some(&format!("{dead}/health")), "none"),
    )
    .await;
    register(&reg, &ttl_entry("beating")).await;

    let res = check(&reg, "checked").await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.expect("report");
    assert_eq!(
        keys(&report),
        BTreeSet::from([
            "id",
            "outcome",
            "status",
            "latencyMs",
            "error",
            "errorDetail",
            "checkedAt"
        ]),
        "{report}"
    );
    assert_eq!(report["id"], "checked");
    assert_eq!(report["outcome"], "healthy");
    assert_eq!(report["status"], "healthy");
    assert!(report["error"].is_null(), "{report}");
    assert!(report["latencyMs"].is_u64(), "{report}");
    // Answered once recorded.
    let (_, e) = reg.get("/servers/checked").await;
    assert!(
        time(&e["lastCheckedAt"]) >= time(&report["checkedAt"]),
        "{e}"
    );
    assert_eq!(e["status"], "healthy");

    let res = check(&reg, "checked").await;
    assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    problem(res, 429, "rate-limited").await;

    let res = check(&reg, "dead").await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.expect("report");
    assert_eq!(report["outcome"], "down", "{report}");
    assert_eq!(report["status"], "down", "{report}");
    assert_eq!(report["error"], "connection refused", "{report}");
    assert!(report["errorDetail"].is_string(), "{report}");
    assert!(report["latencyMs"].is_null(), "never answered: {report}");

    problem(check(&reg, "nobody").await, 404, "not-found").await;
    let conflict = problem(check(&reg, "beating").await, 409, "conflict").await;
    assert!(
        conflict["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("ttl"),
        "{conflict}"
    );

    let plain = start_sqlite().await;
    register(
        &plain,
        &entry("checked", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    problem(check(&plain, "checked").await, 503, "not-running").await;
}

/// Makes the TTL entries `ids` look as if their last heartbeat was 6 s ago (their TTL is 5 s),
/// all at one instant, as when a partition cuts them off together.
async fn silence(reg: &TestRegistry, ids: &[&str]) {
    let long_ago = Utc::now() - chrono::Duration::seconds(6);
    for id in ids {
        let id = id.parse().expect("id");
        assert!(reg.store.heartbeat(&id, long_ago).await.expect("heartbeat"));
    }
}

/// When most TTL entries stop heartbeating at once, the registry blames its own network: none
/// of them is marked down while expiry is suspended, and one that keeps heartbeating stays
/// healthy. Expiry resumes when heartbeats return.
#[tokio::test]
async fn expiry_guard_holds_when_most_heartbeats_stop() {
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), quick()).await;
    let silent = ["silent-a", "silent-b", "silent-c", "silent-d"];
    let all: Vec<&str> = silent.iter().copied().chain(["steady"]).collect();
    for id in &all {
        register(&reg, &ttl_entry(id)).await;
    }
    for id in &all {
        status_is(&reg, id, "healthy").await;
    }
    let suspended = || worker.stats().expiry_suspended.load(Ordering::Relaxed);
    assert!(!suspended());

    silence(&reg, &silent).await;
    eventually(
        Duration::from_secs(10),
        "expiry to be suspended",
        || async { suspended().then_some(()) },
    )
    .await;
    // Held for several refreshes: nobody goes down, the steady one keeps heartbeating.
    let until = tokio::time::Instant::now() + Duration::from_millis(700);
    while tokio::time::Instant::now() < until {
        assert_eq!(reg.heartbeat("steady").await, 204);
        assert!(suspended());
        for id in &all {
            let (status, e) = reg.get(&format!("/servers/{id}")).await;
            assert_eq!(status, 200, "{id}");
            assert_eq!(e["status"], "healthy", "{id}: {e}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for id in silent {
        assert_eq!(reg.heartbeat(id).await, 204);
    }
    eventually(Duration::from_secs(10), "expiry to resume", || async {
        (!suspended()).then_some(())
    })
    .await;
    // Expiry works again: one silent entry is now alone, and goes down.
    silence(&reg, &["silent-a"]).await;
    let down = status_is(&reg, "silent-a", "down").await;
    assert_eq!(down["lastError"], "ttl expired", "{down}");
    for id in &all[1..] {
        let (_, e) = reg.get(&format!("/servers/{id}")).await;
        assert_eq!(e["status"], "healthy", "{id}: {e}");
    }
}

/// The guard suspends deregistration too, and lifts once the silent entries are deleted: a
/// long-dead probed entry is then deregistered.
#[tokio::test]
async fn expiry_guard_lifts_when_the_silent_entries_are_deleted() {
    let dead = refused_url();
    let health = HealthConfig {
        deregister_after: Duration::from_millis(300),
        ..quick()
    };
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    let silent = ["silent-a", "silent-b", "silent-c"];
    for id in silent {
        register(&reg, &ttl_entry(id)).await;
        status_is(&reg, id, "healthy").await;
    }
    silence(&reg, &silent).await;
    let suspended = || worker.stats().expiry_suspended.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(10),
        "expiry to be suspended",
        || async { suspended().then_some(()) },
    )
    .await;
    register(
        &reg,
        &entry("goner", &dead, Some(&format!("{dead}/health")), "none"),
    )
    .await;
    let down = status_is(&reg, "goner", "down").await;
    let since = time(&down["statusSince"]);
    // Kept throughout, until well past deregister_after.
    eventually(Duration::from_secs(10), "goner down for 1 s", || async {
        assert_eq!(reg.get("/servers/goner").await.0, 200, "deregistered");
        (Utc::now() - since >= chrono::Duration::seconds(1)).then_some(())
    })
    .await;
    assert_eq!(worker.stats().deregistered.load(Ordering::Relaxed), 0);

    for id in silent {
        let res = reg
            .http
            .delete(format!("{}/servers/{id}", reg.url))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(res.status(), 204);
    }
    eventually(
        Duration::from_secs(10),
        "goner to be deregistered",
        || async { (reg.get("/servers/goner").await.0 == 404).then_some(()) },
    )
    .await;
    assert!(!suspended());
    assert_eq!(worker.stats().deregistered.load(Ordering::Relaxed), 1);
}

/// A deleted entry is gone for the worker too: checking it answers 404 (not a report about a
/// server the registry no longer lists), and its failing probe raises no alert.
#[tokio::test]
async fn a_deleted_entry_is_neither_checked_nor_alerted() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let received = Hook::default();
    let hook_url = serve(
        Router::new()
            .route("/hook", post(hook))
            .with_state(received.clone()),
        servers.clone(),
    )
    .await;
    let app_life = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = serve_on(listener, health_app(), app_life.clone());
    // No scheduled probe after the first one: the worker learns of the deletion no other way.
    let health = HealthConfig {
        interval: Duration::from_secs(60),
        webhooks: vec![format!("{hook_url}/hook").parse().expect("url")],
        ..quick()
    };
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    register(
        &reg,
        &entry("retired", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    status_is(&reg, "retired", "healthy").await;
    let transitions = || worker.stats().transitions.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "the first transition", || async {
        (transitions() == 1).then_some(())
    })
    .await;

    app_life.cancel();
    app.await.expect("task").expect("server stops");
    let res = reg
        .http
        .delete(format!("{}/servers/retired", reg.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 204);

    problem(check(&reg, "retired").await, 404, "not-found").await;
    assert_eq!(transitions(), 1, "no alert about a deleted entry");
    let bodies = eventually(Duration::from_secs(10), "the first alert", || async {
        let bodies = received.bodies();
        (!bodies.is_empty()).then_some(bodies)
    })
    .await;
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(bodies[0]["to"], "healthy");
}

/// Registers `n` entries `hang-<i>` whose health URL is the black hole `hole`; returns their ids.
async fn register_hanging(reg: &TestRegistry, hole: &str, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| format!("hang-{i}")).collect();
    for id in &ids {
        register(
            reg,
            &entry(id, hole, Some(&format!("{hole}/health")), "none"),
        )
        .await;
    }
    ids
}

#[tokio::test]
async fn probes_stay_within_the_concurrency_bound() {
    const BOUND: usize = 3;
    const TIMEOUT: Duration = Duration::from_millis(500);
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let (hole, accepted) = timed_black_hole(servers.clone()).await;
    let health = HealthConfig {
        concurrency: BOUND,
        timeout: TIMEOUT,
        interval: Duration::from_secs(600),
        ..quick()
    };
    let reg = start_checked(sqlite(), health).await;
    let ids = register_hanging(&reg, &hole, 3 * BOUND).await;
    for id in &ids {
        let e = status_is(&reg, id, "down").await;
        assert!(
            e["lastError"]
                .as_str()
                .is_some_and(|m| m.contains("timed out")),
            "{e}"
        );
    }
    let mut at = accepted.lock().expect("lock").clone();
    at.sort();
    assert_eq!(at.len(), ids.len(), "each entry probed once");
    // A probe starts only once one of the `BOUND` before it has run into its time limit: so
    // the connection `BOUND` places later came at least (nearly) a time limit later.
    for (i, later) in at.iter().enumerate().skip(BOUND) {
        let gap = *later - at[i - BOUND];
        assert!(
            gap >= TIMEOUT * 4 / 5,
            "probe {i} started {gap:?} after probe {}: more than {BOUND} in flight",
            i - BOUND
        );
    }
}

/// While probes queue for a slot, results are written less often, but they are written: the
/// first ones are visible long before the queue drains.
#[tokio::test]
async fn results_are_written_while_probes_queue() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    const ENTRIES: usize = 12;
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let (hole, _) = timed_black_hole(servers.clone()).await;
    let health = HealthConfig {
        concurrency: 1,
        timeout: TIMEOUT,
        interval: Duration::from_secs(600),
        ..quick()
    };
    let reg = start_checked(sqlite(), health).await;
    register_hanging(&reg, &hole, ENTRIES).await;
    // One probe at a time, each running into its limit: the queue takes ENTRIES × TIMEOUT
    // (3.6 s) to drain; results are written at least every second meanwhile.
    let statuses = eventually(
        Duration::from_secs(10),
        "a first result written",
        || async {
            let (status, body) = reg.get("/servers?status=any&limit=100").await;
            assert_eq!(status, 200, "{body}");
            let statuses: Vec<String> = body["servers"]
                .as_array()
                .expect("servers")
                .iter()
                .map(|e| e["status"].as_str().unwrap_or_default().to_string())
                .collect();
            statuses.iter().any(|s| s == "down").then_some(statuses)
        },
    )
    .await;
    let unknown = statuses.iter().filter(|s| *s == "unknown").count();
    assert!(
        unknown >= ENTRIES / 3,
        "results were written only as the queue drained: {statuses:?}"
    );
}
