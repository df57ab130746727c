//! Alerts: status transitions and silent tool changes are logged, counted, and POSTed as JSON to
//! each `--alert-webhook`.
//!
//! [`Alerts::publish`] never waits: it logs the transition and puts it on one bounded queue per
//! webhook, so a slow or dead receiver can never hold up the probe loop. One task per webhook
//! drains its queue strictly in order, retrying each event with exponential backoff until the
//! receiver takes it or the process shuts down. When a queue is full the event is dropped and
//! counted, trading completeness for bounded memory.
//!
//! A 4xx answer other than 408 and 429 is a verdict on the payload, not on the receiver's health:
//! the event is logged as an error, counted as a failed attempt and skipped, so one poison event
//! cannot block every later one. Everything else that is not a 2xx (connection errors, timeouts,
//! 408, 429, 3xx since redirects are not followed, 5xx) is retried.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (322 of 654 lines).

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_fleet_model::{HealthStatus, Timestamp, format_timestamp};
use mcp_fleet_net::Backoff;
use reqwest::StatusCode;
use serde::{Serialize, Serializer};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use super::ssrf::AddressPolicy;

/// Events waiting per webhook before new ones are dropped.
pub(crate) const QUEUE_CAPACITY: usize = 10_000;

/// How long one delivery attempt (connect, send, answer) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A server's health changed; serialized as the webhook body
/// `{"id","name","from","to","at","lastError","lastErrorDetail"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transition {
    /// The entry's id.
    pub(crate) id: String,
    /// The entry's human-readable name.
    pub(crate) name: String,
    /// Status before the change.
    pub(crate) from: HealthStatus,
    /// Status after the change.
    pub(crate) to: HealthStatus,
    /// When the change was decided, as `2026-01-02T03:04:05.678Z`.
    #[serde(serialize_with = "serialize_at")]
    pub(crate) at: Timestamp,
    /// Why the last probe failed, if it did, as a short cause; `null` in JSON otherwise.
    pub(crate) last_error: Option<String>,
    /// The whole error chain behind `last_error`.
    pub(crate) last_error_detail: Option<String>,
}

/// A tool's content changed while its server's version stayed the same (the catalog's
/// `tool-changed` event); serialized as the webhook body
/// `{"event":"tool-changed","id","name","service","version","tool","from","to","at"}`, `from`
/// and `to` being the tool's content hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolChangedAlert {
    /// Always `tool-changed`: what tells this body from a status transition's.
    pub(crate) event: &'static str,
    /// The entry's id.
    pub(crate) id: String,
    /// The entry's human-readable name.
    pub(crate) name: String,
    /// Its service.
    pub(crate) service: String,
    /// The version that did not change.
    pub(crate) version: String,
    /// The tool.
    pub(crate) tool: String,
    /// The tool's hash before.
    pub(crate) from: String,
    /// Its hash now.
    pub(crate) to: String,
    /// When the change was listed.
    #[serde(serialize_with = "serialize_at")]
    pub(crate) at: Timestamp,
}

/// What a webhook receives: a status transition or a silent tool change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Alert {
    /// A status transition.
    Status(Transition),
    /// A tool changed under an unchanged version.
    ToolChanged(ToolChangedAlert),
}

impl Alert {
    fn id(&self) -> &str {
        match self {
            Self::Status(t) => &t.id,
            Self::ToolChanged(c) => &c.id,
        }
    }
}

fn serialize_at<S: Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(at))
}

/// How a webhook delivery is retried: waits start at `initial`, double after each failure, never
/// exceed `cap`, and are jittered into `[wait / 2, wait]` so many registries don't retry in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Wait after the first failed attempt (before jitter).
    pub(crate) initial: Duration,
    /// Longest wait between two attempts (before jitter).
    pub(crate) cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            cap: Duration::from_secs(30),
        }
    }
}

/// A snapshot of the alert counters, summed over all webhooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AlertStats {
    /// Transitions passed to [`Alerts::publish`].
    pub(crate) published: u64,
    /// Events a webhook answered with a 2xx (one per event per webhook).
    pub(crate) delivered: u64,
    /// Attempts that did not end in a 2xx, retried or rejected.
    pub(crate) failed_attempts: u64,
    /// Events never sent to a webhook because its queue was full or shut down.
    pub(crate) dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dropped: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Publishes status transitions to the log, the counters and every configured webhook. Cheap
/// to clone: clones share the queues and counters.
#[derive(Debug, Clone)]
pub(crate) struct Alerts(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    queues: Vec<Queue>,
    counters: Arc<Counters>,
}

#[derive(Debug)]
struct Queue {
    /// Scheme, host and port only: webhook paths often embed a secret token.
    origin: String,
    tx: mpsc::Sender<Arc<Alert>>,
}

impl Alerts {
    /// Alerts that only log and count: no webhook configured.
    pub(crate) fn disabled() -> Self {
        Self(Arc::new(Inner {
            queues: Vec::new(),
            counters: Arc::default(),
        }))
    }

    /// Starts one delivery task per webhook with the default [`RetryPolicy`]; the tasks stop
    /// when `shutdown` is cancelled. Must be called inside a Tokio runtime.
    pub(crate) fn start(
        webhooks: Vec<Url>,
        addresses: Arc<AddressPolicy>,
        shutdown: CancellationToken,
    ) -> Self {
        Self::start_with(webhooks, RetryPolicy::default(), addresses, shutdown)
    }

    /// [`Alerts::start`] with an explicit retry policy. Deliveries connect only where
    /// `addresses` allows (webhook names are checked as they resolve; literal addresses are
    /// checked when the worker starts).
    pub(crate) fn start_with(
        webhooks: Vec<Url>,
        policy: RetryPolicy,
        addresses: Arc<AddressPolicy>,
        shutdown: CancellationToken,
    ) -> Self {
        if webhooks.is_empty() {
            return Self::disabled();
        }
        // Building fails only when the TLS backend cannot initialise, which no input can cause;
        // `reqwest::Client::new()` panics in the same case.
        let client = mcp_fleet_net::guard::client_builder(addresses)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("the HTTP client's TLS backend initialises");
        let counters = Arc::new(Counters::default());
        let queues = webhooks
            .into_iter()
            .map(|url| {
                let origin = url.origin().ascii_serialization();
                let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
                let span = tracing::info_span!("alert_webhook", webhook = %origin);
                let webhook = Webhook {
                    url,
                    client: client.clone(),
                    policy,
                    counters: Arc::clone(&counters),
                    shutdown: shutdown.clone(),
                };
                tokio::spawn(webhook.run(rx).instrument(span));
                Queue { origin, tx }
            })
            .collect();
        Self(Arc::new(Inner { queues, counters }))
    }

    /// Logs `t` (info when it recovers to healthy, warn otherwise), counts it and queues it for
    /// every webhook. Never blocks: when a webhook's queue is full the event is dropped for that
    /// webhook, counted and logged.
    pub(crate) fn publish(&self, t: Transition) {
        let last_error = t.last_error.as_deref();
        let detail = t.last_error_detail.as_deref();
        if t.to == HealthStatus::Healthy {
            tracing::info!(id = %t.id, name = %t.name, from = %t.from, to = %t.to, last_error, "status changed");
        } else {
            tracing::warn!(id = %t.id, name = %t.name, from = %t.from, to = %t.to, last_error, detail, "status changed");
        }
        self.enqueue(Alert::Status(t));
    }

    /// Logs `c` at warn, counts it and queues it for every webhook, as [`Alerts::publish`] does.
    pub(crate) fn publish_tool_changed(&self, c: ToolChangedAlert) {
        tracing::warn!(
            id = %c.id, service = %c.service, version = %c.version, tool = %c.tool,
            from = %c.from, to = %c.to,
            "tool changed under an unchanged version (accept it with mcp-fleet tools accept)"
        );
        self.enqueue(Alert::ToolChanged(c));
    }

    fn enqueue(&self, alert: Alert) {
        let counters = &self.0.counters;
        bump(&counters.published);
        if self.0.queues.is_empty() {
            return;
        }
        let t = Arc::new(alert);
        for queue in &self.0.queues {
            match queue.tx.try_send(Arc::clone(&t)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    bump(&counters.dropped);
                    tracing::warn!(
                        webhook = %queue.origin,
                        id = %t.id(),
                        "alert queue full ({QUEUE_CAPACITY} events): dropping this alert"
                    );
                }
                Err(TrySendError::Closed(_)) => {
                    bump(&counters.dropped);
                    tracing::debug!(webhook = %queue.origin, id = %t.id(), "alerts shut down: dropping this alert");
                }
            }
        }
    }

    /// The counters as they are now.
    pub(crate) fn stats(&self) -> AlertStats {
        let c = &self.0.counters;
        AlertStats {
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            failed_attempts: c.failed_attempts.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}

/// One webhook's delivery task.
struct Webhook {
    url: Url,
    client: reqwest::Client,
    policy: RetryPolicy,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
}

/// How one delivery attempt ended.
enum Attempt {
    Delivered,
    /// The receiver refused this payload for good (a 4xx other than 408 and 429).
    Rejected(StatusCode),
    Retry(String),
}

impl Webhook {
    /// Delivers queued events one at a time, in order, until shutdown.
    async fn run(self, mut rx: mpsc::Receiver<Arc<Alert>>) {
        loop {
            let t = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                t = rx.recv() => match t {
                    Some(t) => t,
                    None => return,
                },
            };
            if self.deliver(&t).await.is_none() {
                return;
            }
        }
    }

    /// Sends `t` until it is delivered or rejected; `None` when shutdown interrupted it.
    async fn deliver(&self, t: &Alert) -> Option<()> {
        let backoff = Backoff::new(self.policy.initial, self.policy.cap);
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let outcome = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                outcome = self.attempt(t) => outcome,
            };
            match outcome {
                Attempt::Delivered => {
                    bump(&self.counters.delivered);
                    tracing::debug!(id = %t.id(), attempt, "alert delivered");
                    return Some(());
                }
                Attempt::Rejected(status) => {
                    bump(&self.counters.failed_attempts);
                    tracing::error!(id = %t.id(), %status, "webhook rejected the alert: skipping it");
                    return Some(());
                }
                Attempt::Retry(reason) => {
                    bump(&self.counters.failed_attempts);
                    let wait = backoff.delay(attempt - 1);
                    tracing::warn!(id = %t.id(), attempt, retry_in = ?wait, %reason, "alert delivery failed");
                    tokio::select! {
                        biased;
                        () = self.shutdown.cancelled() => return None,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    async fn attempt(&self, t: &Alert) -> Attempt {
        match self.client.post(self.url.clone()).json(t).send().await {
            Ok(res) => {
                let status = res.status();
                if status.is_success() {
                    Attempt::Delivered
                } else if status.is_client_error()
                    && status != StatusCode::REQUEST_TIMEOUT
                    && status != StatusCode::TOO_MANY_REQUESTS
                {
                    Attempt::Rejected(status)
                } else {
                    Attempt::Retry(format!("HTTP {status}"))
                }
            }
            Err(e) => Attempt::Retry(error_chain(&e)),
        }
    }
}

/// reqwest's own message ("error sending request") hides the cause; append every source.
fn error_chain(e: &dyn StdError) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use axum::extract::State;
    use axum::routing::post;
    use axum::{Json, Router};
    use chrono::DateTime;
    use serde_json::{Value, json};
    use tokio::net::TcpListener;

    /// Short waits, so the tests retry many times while a receiver is down.
    const FAST: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(10),
        cap: Duration::from_millis(50),
    };

    /// The `i`th of a series of transitions: even ones go down with an error, odd ones recover.
    fn transition(i: usize) -> Transition {
        let secs = i64::try_from(i).expect("small index");
        let at =
            DateTime::from_timestamp_millis(1_767_323_045_678 + secs * 1000).expect("in range");
        let (from, to, last_error) = if i.is_multiple_of(2) {
            (
                HealthStatus::Healthy,
                HealthStatus::Down,
                Some(format!("connection refused #{i}")),
            )
        } else {
            (HealthStatus::Down, HealthStatus::Healthy, None)
        };
        Transition {
            id: format!("srv-{i}"),
            name: format!("Server {i}"),
            from,
            to,
            at,
            last_error_detail: last_error.as_ref().map(|e| format!("{e} (os error 111)")),
            last_error,
        }
    }

    /// What a webhook must receive for `transition(i)`, written out by hand (i < 55).
    fn expected(i: usize) -> Value {
        let (from, to, last_error) = if i.is_multiple_of(2) {
            ("healthy", "down", json!(format!("connection refused #{i}")))
        } else {
            ("down", "healthy", Value::Null)
        };
        json!({
            "id": format!("srv-{i}"),
            "name": format!("Server {i}"),
            "from": from,
            "to": to,
            "at": format!("2026-01-02T03:04:{:02}.678Z", 5 + i),
            "lastErrorDetail": last_error.as_str().map(|e| format!("{e} (os error 111)")),
            "lastError": last_error,
        })
    }

    /// Polls `done` every few milliseconds; fails the test after 10 s.
    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A webhook receiver that records every body and answers `first` to the first request and
    /// 200 to the others.
    #[derive(Clone)]
    struct Receiver {
        bodies: Arc<Mutex<Vec<Value>>>,
        first: StatusCode,
    }

    impl Receiver {
        fn bodies(&self) -> Vec<Value> {
            self.bodies.lock().expect("not poisoned").clone()
        }
    }

    async fn record(State(rx): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
        let mut bodies = rx.bodies.lock().expect("not poisoned");
        bodies.push(body);
        if bodies.len() == 1 {
            rx.first
        } else {
            StatusCode::OK
        }
    }

    /// Serves a [`Receiver`] on `listener` until the test's runtime ends.
    fn serve_receiver(listener: TcpListener, first: StatusCode) -> Receiver {
        let rx = Receiver {
            bodies: Arc::default(),
            first,
        };
        let app = Router::new()
            .route("/hook", post(record))
            .with_state(rx.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        rx
    }

    async fn receiver(first: StatusCode) -> (Url, Receiver) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = hook_url(listener.local_addr().expect("local addr").port());
        (url, serve_receiver(listener, first))
    }

    fn hook_url(port: u16) -> Url {
        Url::parse(&format!("http://127.0.0.1:{port}/hook")).expect("valid url")
    }

    /// A port nobody listens on (for now).
    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr").port()
    }

    /// A receiver that accepts connections and never answers; counts accepted connections.
    async fn black_hole() -> (Url, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = hook_url(listener.local_addr().expect("local addr").port());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        (url, accepted)
    }

    #[test]
    fn transition_serializes_to_the_webhook_body() {
        let down = serde_json::to_string(&transition(0)).expect("serializes");
        assert_eq!(
            down,
            r#"{"id":"srv-0","name":"Server 0","from":"healthy","to":"down","at":"2026-01-02T03:04:05.678Z","lastError":"connection refused #0","lastErrorDetail":"connection refused #0 (os error 111)"}"#
        );
        let up = serde_json::to_string(&transition(1)).expect("serializes");
        assert_eq!(
            up,
            r#"{"id":"srv-1","name":"Server 1","from":"down","to":"healthy","at":"2026-01-02T03:04:06.678Z","lastError":null,"lastErrorDetail":null}"#
        );
    }

    #[test]
    fn disabled_alerts_count_without_a_runtime() {
        let alerts = Alerts::disabled();
        alerts.publish(transition(0));
        alerts.publish(transition(1));
        assert_eq!(
            alerts.stats(),
            AlertStats {
                published: 2,
                ..AlertStats::default()
            }
        );
    }

    #[tokio::test]
    async fn webhook_receives_every_transition_in_order() {
        let (url, receiver) = receiver(StatusCode::OK).await;
        let shutdown = CancellationToken::new();
        let alerts = Alerts::start_with(vec![url], FAST, Arc::default(), shutdown.clone());

        for i in 0..5 {
            alerts.publish(transition(i));
        }
        wait_until("5 deliveries", || alerts.stats().delivered == 5).await;

        let want: Vec<Value> = (0..5).map(expected).collect();
        assert_eq!(receiver.bodies(), want);
        assert_eq!(
            alerts.stats(),
            AlertStats {
                published: 5,
                delivered: 5,
                failed_attempts: 0,
                dropped: 0,
            }
        );
        shutdown.cancel();
    }

    #[tokio::test]
    async fn events_survive_the_receiver_being_down() {
        let port = free_port();
        let shutdown = CancellationToken::new();
        let alerts =
            Alerts::start_with(vec![hook_url(port)], FAST, Arc::default(), shutdown.clone());

        for i in 0..3 {
            alerts.publish(transition(i));
        }
        wait_until("retries while the receiver is down", || {
            alerts.stats().failed_attempts >= 2
        })
        .await;
        assert_eq!(alerts.stats().delivered, 0);

        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("rebind the reserved port");
        let receiver = serve_receiver(listener, StatusCode::OK);
        wait_until("3 deliveries", || alerts.stats().delivered == 3).await;

        let want: Vec<Value> = (0..3).map(expected).collect();
        assert_eq!(receiver.bodies(), want, "each event exactly once, in order");
        shutdown.cancel();
    }

    #[tokio::test]
    async fn first_answer_decides_between_skip_and_retry() {
        // (first answer, whether the first event is retried rather than skipped)
        let cases = [
            (StatusCode::BAD_REQUEST, false),
            (StatusCode::NOT_FOUND, false),
            (StatusCode::UNPROCESSABLE_ENTITY, false),
            (StatusCode::REQUEST_TIMEOUT, true),
            (StatusCode::TOO_MANY_REQUESTS, true),
            (StatusCode::INTERNAL_SERVER_ERROR, true),
            (StatusCode::SERVICE_UNAVAILABLE, true),
            (StatusCode::MOVED_PERMANENTLY, true),
        ];
        for (first, retried) in cases {
            let (url, receiver) = receiver(first).await;
            let shutdown = CancellationToken::new();
            let alerts = Alerts::start_with(vec![url], FAST, Arc::default(), shutdown.clone());

            for i in 0..3 {
                alerts.publish(transition(i));
            }
            let delivered = if retried { 3 } else { 2 };
            wait_until(&format!("{delivered} deliveries after {first}"), || {
                alerts.stats().delivered == delivered
            })
            .await;

            let mut want: Vec<Value> = (0..3).map(expected).collect();
            if retried {
                want.insert(0, expected(0));
            }
            assert_eq!(receiver.bodies(), want, "after {first}");
            assert_eq!(alerts.stats().failed_attempts, 1, "after {first}");
            shutdown.cancel();
        }
    }

    #[tokio::test]
    async fn publish_never_blocks_and_drops_when_the_queue_is_full() {
        let (url, _accepted) = black_hole().await;
        let shutdown = CancellationToken::new();
        let alerts = Alerts::start_with(vec![url], FAST, Arc::default(), shutdown.clone());

        let publisher = alerts.clone();
        let total = 2 * QUEUE_CAPACITY;
        let publishing = tokio::task::spawn_blocking(move || {
            for i in 0..total {
                publisher.publish(transition(i));
            }
        });
        tokio::time::timeout(Duration::from_secs(10), publishing)
            .await
            .expect("publishing 20,000 events does not block")
            .expect("publisher does not panic");

        let stats = alerts.stats();
        assert_eq!(stats.published, 20_000);
        // The queue holds QUEUE_CAPACITY; at most one more is in flight to the black hole.
        let capacity = u64::try_from(QUEUE_CAPACITY).expect("fits");
        assert!(
            (capacity - 1..=capacity).contains(&stats.dropped),
            "dropped {}",
            stats.dropped
        );
        assert_eq!(stats.delivered, 0);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn shutdown_interrupts_backoff_and_requests_in_flight() {
        let (hanging, accepted) = black_hole().await;
        let down = hook_url(free_port());
        let slow = RetryPolicy {
            initial: Duration::from_secs(3600),
            cap: Duration::from_secs(3600),
        };
        let shutdown = CancellationToken::new();
        let alerts =
            Alerts::start_with(vec![hanging, down], slow, Arc::default(), shutdown.clone());

        alerts.publish(transition(0));
        wait_until("a request in flight and a retry pending", || {
            accepted.load(Ordering::SeqCst) >= 1 && alerts.stats().failed_attempts >= 1
        })
        .await;

        shutdown.cancel();
        wait_until("both delivery tasks to stop", || {
            alerts.0.queues.iter().all(|q| q.tx.is_closed())
        })
        .await;
        alerts.publish(transition(1));
        assert_eq!(
            alerts.stats().dropped,
            2,
            "nothing is queued after shutdown"
        );
    }
}
