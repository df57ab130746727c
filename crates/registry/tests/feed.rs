//! The change feed: `GET /events` (server-sent events) and blocking `GET /servers?wait=`, on
//! every backend.
//!
//! Over 500 lines: seven tests of one pair of routes, sharing the stream readers they check with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fleet_registry::{AppState, Config, FeedConfig};
use mcp_fleet_store::{Store, StoreOptions};
use mcp_fleet_test_support::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::common::{fast_health, live_server, seed_body, seed_body_at, start_checked};

/// How long any one step may take before the test fails (never how long it waits).
const STEP: Duration = Duration::from_secs(10);

/// A registry with chosen feed and store settings; stops when dropped.
pub(crate) struct Registry {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    pub(crate) db_url: String,
    pub(crate) backend: &'static str,
    /// The state it serves, to drive it without a socket too.
    state: AppState,
    pub(crate) shutdown: CancellationToken,
    _db: TestDb,
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(db: TestDb, feed: FeedConfig, options: StoreOptions) -> Registry {
    start_configured(db, Config::default(), feed, options).await
}

/// [`start`] with the API's settings too.
pub(crate) async fn start_configured(
    db: TestDb,
    config: Config,
    feed: FeedConfig,
    options: StoreOptions,
) -> Registry {
    let store = mcp_fleet_store::connect_with(&db.url, options)
        .await
        .expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let state = AppState::with_feed(store, config, feed);
    tokio::spawn(mcp_fleet_registry::serve(
        listener,
        state.clone(),
        shutdown.clone(),
    ));
    Registry {
        url,
        http: reqwest::Client::new(),
        db_url: db.url.clone(),
        backend: db.backend,
        state,
        shutdown,
        _db: db,
    }
}

async fn start_default(db: TestDb) -> Registry {
    start(db, FeedConfig::default(), StoreOptions::default()).await
}

impl Registry {
    pub(crate) async fn post(&self, body: &Value) -> reqwest::Response {
        let res = self
            .http
            .post(format!("{}/servers", self.url))
            .json(body)
            .send()
            .await
            .expect("POST /servers");
        assert!(
            res.status().is_success(),
            "{}: {}",
            self.backend,
            res.status()
        );
        res
    }

    pub(crate) async fn delete(&self, id: &str) {
        let res = self
            .http
            .delete(format!("{}/servers/{id}", self.url))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(res.status(), 204, "{}", self.backend);
    }

    /// Opens `GET /events` with `query`, and `Last-Event-ID` when given.
    pub(crate) async fn events(
        &self,
        query: &str,
        last_event_id: Option<i64>,
    ) -> reqwest::Response {
        let mut req = self.http.get(format!("{}/events{query}", self.url));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        req.send().await.expect("GET /events")
    }

    /// Subscribes from now; returns once the registry has the subscription.
    pub(crate) async fn subscribe(&self) -> Sse {
        let res = self.events("", None).await;
        assert_eq!(res.status(), 200, "{}", self.backend);
        Sse::new(res)
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SseEvent {
    pub(crate) id: Option<i64>,
    pub(crate) event: String,
    pub(crate) data: String,
}

impl SseEvent {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("JSON data")
    }
}

/// Reads server-sent events off a streaming response.
pub(crate) struct Sse {
    res: reqwest::Response,
    buf: Vec<u8>,
}

impl Sse {
    pub(crate) fn new(res: reqwest::Response) -> Self {
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Self {
            res,
            buf: Vec::new(),
        }
    }

    /// The next event (comments skipped), `None` when the stream ends; fails after [`STEP`].
    pub(crate) async fn next(&mut self) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("UTF-8");
                let (mut id, mut event, mut data) = (None, None, Vec::new());
                for line in block.lines() {
                    match line.split_once(": ") {
                        Some(("id", v)) => id = Some(v.parse().expect("numeric id")),
                        Some(("event", v)) => event = Some(v.to_string()),
                        Some(("data", v)) => data.push(v.to_string()),
                        _ => {} // a comment
                    }
                }
                if event.is_none() && data.is_empty() {
                    continue;
                }
                return Some(SseEvent {
                    id,
                    event: event.unwrap_or_else(|| "message".into()),
                    data: data.join("\n"),
                });
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .expect("no event in time");
            match chunk {
                Ok(Some(bytes)) => self.buf.extend_from_slice(&bytes),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next event, which must exist.
    pub(crate) async fn expect(&mut self) -> SseEvent {
        self.next().await.expect("the stream ended")
    }
}

/// Acceptance: a consumer that reconnects with `Last-Event-ID` after 100 writes were made while
/// it was away receives exactly those 100 events, in order, and then what comes next.
#[tokio::test]
async fn a_reconnecting_consumer_gets_exactly_the_writes_it_missed() {
    for db in mcp_fleet_test_support::all_backends().await {
        let reg = start_default(db).await;
        let mut sse = reg.subscribe().await;
        for id in ["a", "b", "c"] {
            reg.post(&seed_body(id, &["t"])).await;
        }
        let mut last = None;
        for id in ["a", "b", "c"] {
            let e = sse.expect().await;
            assert_eq!((e.event.as_str(), &e.json()["id"]), ("created", &json!(id)));
            last = e.id;
        }
        let last = last.expect("events have ids");
        drop(sse);

        // While it is away: 100 writes of every kind.
        let mut want = Vec::new();
        for i in 0..100 {
            let id = format!("m{}", i % 40);
            if i >= 80 {
                reg.delete(&id).await;
                want.push(("deleted", id));
            } else {
                let mut body = seed_body(&id, &["t"]);
                body["version"] = json!(format!("1.0.{i}"));
                reg.post(&body).await;
                want.push((if i < 40 { "created" } else { "replaced" }, id));
            }
        }

        // `since` is what the client first asked for; the header, sent on reconnects, wins.
        let res = reg.events("?since=0", Some(last)).await;
        assert_eq!(res.status(), 200, "{}", reg.backend);
        let mut sse = Sse::new(res);
        for (n, (kind, id)) in want.iter().enumerate() {
            let e = sse.expect().await;
            assert_eq!(
                e.id,
                Some(last + 1 + n as i64),
                "{}: event {n}",
                reg.backend
            );
            assert_eq!(e.event, *kind, "{}: event {n}", reg.backend);
            assert_eq!(e.json()["id"], json!(id), "{}: event {n}", reg.backend);
            if *kind == "deleted" {
                assert_eq!(e.json(), json!({"id": id}));
            } else {
                assert_eq!(e.json()["version"], json!(format!("1.0.{n}")));
                assert_eq!(e.json()["status"], "unknown");
            }
        }
        // Nothing more was sent: the next event is the next write.
        reg.post(&seed_body("after", &[])).await;
        let e = sse.expect().await;
        assert_eq!(e.id, Some(last + 101), "{}", reg.backend);
        assert_eq!(
            (e.event.as_str(), &e.json()["id"]),
            ("created", &json!("after"))
        );
    }
}

pub(crate) fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Acceptance: a blocking listing returns within 100 ms of a change (measured from the moment
/// the write is acknowledged; in practice a few milliseconds), and `If-None-Match` with the
/// current `ETag` gets `304`.
#[tokio::test]
async fn long_polls_return_on_a_change_and_etags_give_304() {
    for db in mcp_fleet_test_support::all_backends().await {
        let reg = start_default(db).await;
        reg.post(&seed_body("a", &["x"])).await;
        let list = format!("{}/servers?status=any&tags=x", reg.url);
        let res = reg.http.get(&list).send().await.expect("GET");
        assert_eq!(res.status(), 200);
        let etag = header(&res, "etag").to_string();
        let rev: i64 = header(&res, "x-registry-revision")
            .parse()
            .expect("revision");
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

        for tag in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
            let res = reg
                .http
                .get(&list)
                .header("if-none-match", tag)
                .send()
                .await
                .expect("GET");
            assert_eq!(res.status(), 304, "{}", reg.backend);
            assert_eq!(header(&res, "etag"), etag);
            assert_eq!(header(&res, "x-registry-revision"), rev.to_string());
            assert!(res.bytes().await.expect("body").is_empty());
        }
        let res = reg
            .http
            .get(&list)
            .header("if-none-match", "\"other\"")
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 200);

        // Nothing changes: a blocking listing answers at its timeout, unchanged.
        let asked = Instant::now();
        let res = reg
            .http
            .get(format!("{list}&wait={rev}&timeout=300ms"))
            .send()
            .await
            .expect("GET");
        assert!(
            asked.elapsed() >= Duration::from_millis(300),
            "did not block"
        );
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "etag"), etag);
        assert_eq!(header(&res, "x-registry-revision"), rev.to_string());

        // A change: the blocking listing answers as soon as it commits.
        let poll = tokio::spawn({
            let (http, url) = (reg.http.clone(), format!("{list}&wait={rev}&timeout=30s"));
            async move {
                let res = http.get(url).send().await.expect("GET");
                (Instant::now(), res)
            }
        });
        assert!(!poll.is_finished());
        reg.post(&seed_body("b", &["x"])).await;
        let acked = Instant::now();
        let (answered, res) = tokio::time::timeout(STEP, poll)
            .await
            .expect("the blocking listing never answered")
            .expect("poll task");
        let latency = answered.saturating_duration_since(acked);
        eprintln!(
            "{}: long-poll answered {latency:?} after the write's ack",
            reg.backend
        );
        assert!(
            latency < Duration::from_millis(100),
            "{}: {latency:?}",
            reg.backend
        );
        assert_eq!(res.status(), 200);
        let new_rev: i64 = header(&res, "x-registry-revision")
            .parse()
            .expect("revision");
        assert!(new_rev > rev);
        let new_etag = header(&res, "etag").to_string();
        assert_ne!(new_etag, etag, "the content changed, so must the ETag");
        let body: Value = res.json().await.expect("JSON");
        assert_eq!(body["servers"].as_array().expect("servers").len(), 2);

        // With If-None-Match, a change that leaves this answer as it is does not end the wait.
        let poll = tokio::spawn({
            let url = format!("{list}&wait={new_rev}&timeout=1s");
            let req = reg.http.get(url).header("if-none-match", new_etag.clone());
            async move { req.send().await.expect("GET") }
        });
        reg.post(&seed_body("elsewhere", &["y"])).await;
        let res = tokio::time::timeout(STEP, poll)
            .await
            .expect("never answered")
            .expect("poll task");
        assert_eq!(res.status(), 304, "{}", reg.backend);
        let last_rev: i64 = header(&res, "x-registry-revision")
            .parse()
            .expect("revision");
        assert!(last_rev > new_rev, "reports the revision it waited past");
    }
}

/// `since` older than the kept history is `410` (the client must list again), as is one newer
/// than the registry's; malformed `since`, `Last-Event-ID`, `wait` and `timeout` are `400`s
/// naming the field.
#[tokio::test]
async fn history_gone_and_bad_revisions() {
    for db in mcp_fleet_test_support::all_backends().await {
        let options = StoreOptions {
            event_retention: 16,
        };
        let reg = start(db, FeedConfig::default(), options).await;
        for i in 0..60 {
            reg.post(&seed_body(&format!("s{i}"), &[])).await;
        }
        for (query, last_event_id) in [("?since=1", None), ("?since=999", None), ("", Some(2))] {
            let res = reg.events(query, last_event_id).await;
            assert_eq!(
                res.status(),
                410,
                "{}: {query} {last_event_id:?}",
                reg.backend
            );
            assert_eq!(header(&res, "content-type"), "application/problem+json");
            let body: Value = res.json().await.expect("problem");
            assert_eq!(body["code"], "history-gone");
        }
        // Within the retention, the stream replays.
        let mut sse = Sse::new(reg.events("?since=55", None).await);
        assert_eq!(sse.expect().await.id, Some(56));

        let fields = [
            ("/events?since=-1", None, "since"),
            ("/events?since=x", None, "since"),
            ("/events?wait=1", None, "wait"),
            ("/events", Some("abc"), "Last-Event-ID"),
            ("/servers?wait=-2", None, "wait"),
            ("/servers?wait=1&timeout=10m", None, "timeout"),
            ("/servers?wait=1&timeout=3h", None, "timeout"),
            ("/servers?wait=1&timeout=", None, "timeout"),
            ("/servers?timeout=1s", None, "timeout"),
        ];
        for (path, last_event_id, field) in fields {
            let mut req = reg.http.get(format!("{}{path}", reg.url));
            if let Some(id) = last_event_id {
                req = req.header("last-event-id", id);
            }
            let res = req.send().await.expect("GET");
            assert_eq!(res.status(), 400, "{path}");
            let body: Value = res.json().await.expect("problem");
            assert_eq!(body["code"], "validation-failed", "{path}");
            assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
        }
    }
}

/// A client that stops reading holds up neither writers nor other clients; once it is further
/// behind than the feed's buffer it gets `event: resync` and its stream ends.
#[tokio::test]
async fn a_slow_consumer_blocks_nobody_and_is_told_to_resync() {
    use tower::ServiceExt;

    const WRITES: usize = 200;
    let feed = FeedConfig {
        buffer: 16,
        ..FeedConfig::default()
    };
    let reg = start(
        mcp_fleet_test_support::sqlite(),
        feed,
        StoreOptions::default(),
    )
    .await;

    // A stuck stream, without a socket: its body is not read at all until the end, so only
    // the feed's own buffer stands between it and the writers.
    let request = axum::http::Request::get("/events")
        .body(axum::body::Body::empty())
        .expect("request");
    let stuck = mcp_fleet_registry::router(reg.state.clone())
        .oneshot(request)
        .await
        .expect("GET /events");
    assert_eq!(stuck.status(), 200);
    // A stuck client over TCP: a small receive window and never a read (the kernel's buffers
    // take a few megabytes before the registry notices).
    let addr = reg.url.trim_start_matches("http://").parse().expect("addr");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stuck_tcp = socket.connect(addr).await.expect("connect");
    stuck_tcp
        .write_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("send");
    // A client that keeps up.
    let mut fast = reg.subscribe().await;
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < WRITES {
            let e = fast.expect().await;
            ids.push(e.id.expect("id"));
        }
        ids
    });

    // Events of about 8 KiB each.
    let pad = "x".repeat(8000);
    let writes = async {
        let mut slowest = Duration::ZERO;
        for i in 0..WRITES {
            let mut body = seed_body(&format!("s{i}"), &[]);
            body["metadata"] = json!({ "pad": pad });
            let started = Instant::now();
            reg.post(&body).await;
            slowest = slowest.max(started.elapsed());
        }
        slowest
    };
    let slowest = tokio::time::timeout(Duration::from_secs(120), writes)
        .await
        .expect("writes stalled behind clients that do not read");
    eprintln!("{WRITES} writes with stuck subscribers: slowest {slowest:?}");

    let ids = tokio::time::timeout(STEP, reader)
        .await
        .expect("the fast client fell behind")
        .expect("reader");
    let first = ids[0];
    assert_eq!(ids, (first..first + WRITES as i64).collect::<Vec<_>>());

    let body = tokio::time::timeout(STEP, axum::body::to_bytes(stuck.into_body(), usize::MAX))
        .await
        .expect("the stuck stream never ended")
        .expect("body");
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with("event: resync\ndata: {\"revision\":") && body.ends_with("}\n\n"),
        "{body}"
    );
    let mut some = [0; 1024];
    let read = tokio::time::timeout(STEP, stuck_tcp.read(&mut some)).await;
    assert!(
        matches!(read, Ok(Ok(n)) if n > 0),
        "the TCP client got nothing"
    );
}

/// Status changes by the in-process health worker are events too.
#[tokio::test]
async fn status_changes_are_events() {
    let live = CancellationToken::new();
    let base = live_server(live.clone()).await;
    let reg = start_checked(mcp_fleet_test_support::sqlite(), fast_health()).await;
    let res = reg
        .http
        .get(format!("{}/events", reg.url))
        .send()
        .await
        .expect("GET");
    let mut sse = Sse::new(res);
    reg.post(&seed_body_at(&base, "live", &[])).await;
    let created = sse.expect().await;
    assert_eq!(created.event, "created");
    let status = sse.expect().await;
    assert_eq!(status.event, "status");
    assert_eq!(status.id, created.id.map(|id| id + 1));
    let data = status.json();
    assert_eq!(
        (&data["id"], &data["from"], &data["to"], &data["lastError"]),
        (
            &json!("live"),
            &json!("unknown"),
            &json!("healthy"),
            &Value::Null
        )
    );
    live.cancel();
}

/// Changes made by another process on the same database (a `health-worker`, another replica)
/// reach streams and blocking listings through the feed's poll.
#[tokio::test]
async fn changes_by_other_processes_are_followed() {
    for db in mcp_fleet_test_support::all_backends().await {
        let reg = start_default(db).await;
        let elsewhere: Arc<dyn Store> = mcp_fleet_store::connect(&reg.db_url)
            .await
            .expect("second store");
        let mut sse = reg.subscribe().await;
        let res = reg
            .http
            .get(format!("{}/servers?status=any", reg.url))
            .send()
            .await
            .expect("GET");
        let rev = header(&res, "x-registry-revision").to_string();
        let poll = tokio::spawn({
            let url = format!("{}/servers?status=any&wait={rev}", reg.url);
            let http = reg.http.clone();
            async move { http.get(url).send().await.expect("GET") }
        });
        let reg_body = mcp_fleet_model::Registration::from_json(&seed_body("other", &[]), None)
            .expect("registration");
        elsewhere
            .upsert(reg_body, chrono::Utc::now())
            .await
            .expect("write elsewhere");
        let e = sse.expect().await;
        assert_eq!(
            (e.event.as_str(), &e.json()["id"]),
            ("created", &json!("other"))
        );
        let res = tokio::time::timeout(STEP, poll)
            .await
            .expect("never answered")
            .expect("poll");
        let body: Value = res.json().await.expect("JSON");
        assert_eq!(body["servers"][0]["id"], "other", "{}", reg.backend);
    }
}

/// Idle streams get keep-alive comments; shutting the registry down ends every stream.
#[tokio::test]
async fn keep_alives_and_shutdown() {
    let feed = FeedConfig {
        keep_alive: Duration::from_millis(50),
        ..FeedConfig::default()
    };
    let reg = start(
        mcp_fleet_test_support::sqlite(),
        feed,
        StoreOptions::default(),
    )
    .await;
    let mut res = reg.events("", None).await;
    let chunk = tokio::time::timeout(STEP, res.chunk())
        .await
        .expect("no keep-alive")
        .expect("chunk")
        .expect("open");
    assert_eq!(&chunk[..], b": keep-alive\n\n");
    reg.shutdown.cancel();
    let mut sse = Sse::new(res);
    assert_eq!(sse.next().await, None, "the stream outlived the server");
}
