//! The registry's HTTP API: register, list and look up MCP servers, and the fleet's `/status`.
//!
//! Where a request goes: `api/servers.rs` (`/servers`, `/servers/{id}`), `api/checks.rs`
//! (`/servers/{id}/check`, `/servers/{id}/heartbeat`), `api/services.rs`
//! (`/services/{service}/routing`, its `rollback`, and `/services/{service}/istio`, rendered in
//! `istio.rs`), `api/status.rs` (`/status`),
//! `api/probes.rs` (`/healthz`, `/readyz`), `api/policy.rs` (`/address-policy`), `api/page.rs` (`/`, the status page in `page/`),
//! `api/metrics.rs` (`/metrics`, defined in `metrics.rs`) and `api/docs.rs` (`/openapi.json`,
//! assembled in `openapi.rs`). Errors render in `error.rs`; request bodies and path ids are
//! checked in `extract.rs`. The health worker lives in `health/`. The change feed
//! (`api/events.rs`, `GET /events`; and `GET /servers?wait=`) is fed by `feed.rs`. The
//! connection-level limits (header size, URL length, slow clients) are set in [`serve_with`].

mod api;
pub mod auth;
mod cache;
mod conn;
mod error;
mod extract;
mod feed;
mod forwarded;
pub mod health;
mod istio;
pub mod limits;
mod metrics;
mod openapi;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use mcp_fleet_model::ServerId;
use mcp_fleet_net::accept;
use mcp_fleet_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cache::DEFAULT_READ_CACHE_MAX_BYTES;
pub use error::ApiError;
pub use feed::FeedConfig;
pub use health::{HealthConfig, HealthError, HealthHandle, HealthStats, parse_cidr};

use cache::ReadCache;
use feed::Feed;
use health::ssrf::AddressPolicy;
use metrics::Metrics;

/// Largest request body accepted, by default (64 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest request target (path and query) accepted, by default (8 KiB).
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (request line and headers) accepted, by default (16 KiB).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;

/// Connection-level limits of [`serve_with`]: what a hostile or broken client may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Largest request head (request line and headers), in bytes; past it hyper answers `431`
    /// and closes the connection.
    pub max_header_bytes: usize,
    /// Longest request target (path and query), in bytes; past it the answer is a `414`
    /// problem.
    pub max_uri_bytes: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle; then the connection is closed (slowloris).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body once its headers are in; then the
    /// answer is a `408` problem and the connection is closed. Handler time (long polls,
    /// `GET /events`) does not count.
    pub request_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a `GET /servers` or `GET /status` answer may be served from memory. Writes
    /// through this process invalidate it at once; writes by other processes sharing the
    /// database show after at most this long. Zero turns the cache off.
    pub read_cache_ttl: Duration,
    /// Most bytes the read cache holds (answers, and entries kept for outages).
    pub read_cache_max_bytes: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Addresses that registered URLs may not point at, on top of the defaults (link-local,
    /// `0.0.0.0/8`, multicast); the health worker refuses to probe the same ones.
    pub probe_deny: Vec<ipnet::IpNet>,
    /// Exceptions inside denied ranges.
    pub probe_allow: Vec<ipnet::IpNet>,
    /// `Strict` denies loopback and private ranges too (`--probe-policy strict`).
    pub probe_policy: mcp_fleet_model::PolicyMode,
    /// Who may write (and read).
    pub auth: auth::AuthConfig,
    /// Abuse limits: rate limits and caps on stored entries.
    pub limits: limits::LimitsConfig,
    /// The namespace of the names the official v0.1 API serves (`<namespace>/<service>`).
    pub registry_namespace: mcp_fleet_model::official::RegistryNamespace,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            read_cache_ttl: Duration::from_secs(1),
            read_cache_max_bytes: DEFAULT_READ_CACHE_MAX_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            probe_deny: Vec::new(),
            probe_allow: Vec::new(),
            probe_policy: mcp_fleet_model::PolicyMode::Default,
            auth: auth::AuthConfig::default(),
            limits: limits::LimitsConfig::default(),
            registry_namespace: mcp_fleet_model::official::RegistryNamespace::default(),
        }
    }
}

/// Everything a handler needs, shared by all of them.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    config: Config,
    cache: Arc<ReadCache>,
    policy: AddressPolicy,
    health: OnceLock<HealthHandle>,
    /// Last on-demand check per entry, for rate limiting.
    checks: Mutex<HashMap<ServerId, Instant>>,
    metrics: Metrics,
    feed: Arc<Feed>,
    oidc: Option<auth::SharedOidc>,
    limiter: limits::Limiter,
    /// Tokens verified and refused lately.
    tokens: auth::token_cache::TokenCache,
    /// A token has been seen in the store. Tokens are revoked, never deleted, so once set this
    /// stays true and writes stop asking the database.
    tokens_seen: std::sync::atomic::AtomicBool,
    /// What the official v0.1 API keeps between requests.
    v01: api::v01::V01State,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.feed.stop();
    }
}

impl AppState {
    /// State over `store` with `config`.
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        Self::with_feed(store, config, FeedConfig::default())
    }

    /// [`Self::new`] with the change feed's settings.
    pub fn with_feed(store: Arc<dyn Store>, config: Config, feed: FeedConfig) -> Self {
        let cache = Arc::new(ReadCache::new(
            config.read_cache_ttl,
            config.read_cache_max_bytes,
        ));
        let policy = AddressPolicy::new(
            config.probe_policy,
            config.probe_deny.clone(),
            config.probe_allow.clone(),
        );
        let feed = Arc::new(Feed::new(store.clone(), cache.clone(), feed));
        let oidc = config
            .auth
            .oidc
            .clone()
            .map(|c| Arc::new(auth::oidc::Verifier::new(c)));
        let limiter = limits::Limiter::new(&config.limits);
        Self(Arc::new(Inner {
            oidc,
            limiter,
            tokens: auth::token_cache::TokenCache::default(),
            tokens_seen: std::sync::atomic::AtomicBool::new(false),
            store,
            config,
            cache,
            policy,
            health: OnceLock::new(),
            checks: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
            feed,
            v01: api::v01::V01State::default(),
        }))
    }

    /// Starts the health worker in this process: it is woken by registrations, answers
    /// `POST /servers/{id}/check`, and drops cached answers and wakes the change feed when a
    /// status changes.
    pub fn start_health_worker(
        &self,
        config: HealthConfig,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, HealthError> {
        let cache = self.0.cache.clone();
        let feed = self.0.feed.clone();
        let on_change: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            cache.invalidate();
            feed.notify();
        });
        let (handle, task) =
            health::worker::spawn(self.0.store.clone(), config, Some(on_change), shutdown)?;
        if self.0.health.set(handle).is_err() {
            task.abort();
            return Err(HealthError::already_running());
        }
        Ok(task)
    }

    /// The in-process health worker, when there is one.
    pub fn health(&self) -> Option<&HealthHandle> {
        self.0.health.get()
    }

    pub(crate) fn policy(&self) -> &AddressPolicy {
        &self.0.policy
    }

    /// Whether an on-demand check of `id` may run now; `Err(seconds to wait)` otherwise.
    pub(crate) fn allow_check(&self, id: &ServerId) -> Result<(), u64> {
        const MIN_GAP: Duration = Duration::from_secs(1);
        let mut last = self.0.checks.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(at) = last.get(id)
            && now.duration_since(*at) < MIN_GAP
        {
            return Err(1);
        }
        if last.len() > 10_000 {
            last.retain(|_, at| now.duration_since(*at) < MIN_GAP);
        }
        last.insert(id.clone(), now);
        Ok(())
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.0.config
    }

    pub(crate) fn oidc(&self) -> Option<&auth::SharedOidc> {
        self.0.oidc.as_ref()
    }

    pub(crate) fn limiter(&self) -> &limits::Limiter {
        &self.0.limiter
    }

    pub(crate) fn token_cache(&self) -> &auth::token_cache::TokenCache {
        &self.0.tokens
    }

    /// Whether any token exists (or ever did) in the store; asks it only until one does.
    pub(crate) async fn tokens_exist(&self) -> Result<bool, mcp_fleet_store::StoreError> {
        use std::sync::atomic::Ordering;
        if self.0.tokens_seen.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let exist = self.store().has_tokens().await?;
        if exist {
            self.0.tokens_seen.store(true, Ordering::Relaxed);
        }
        Ok(exist)
    }

    pub(crate) fn cache(&self) -> &ReadCache {
        &self.0.cache
    }

    /// The change feed, started on first use.
    pub(crate) fn feed(&self) -> &Arc<Feed> {
        self.0.feed.start();
        &self.0.feed
    }

    /// Call after each write committed through this process: voids cached answers (so the
    /// writer reads its write) and wakes the change feed.
    pub(crate) fn changed(&self) {
        self.0.cache.invalidate();
        self.0.feed.notify();
    }

    pub(crate) fn v01(&self) -> &api::v01::V01State {
        &self.0.v01
    }

    /// The Prometheus metrics (`GET /metrics`); the change feed counts its subscribers here.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
}

/// The API's routes, without a socket (tests drive it with `tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    api::routes(state)
}

/// Runs the health worker alone, against `store` (the `health-worker` process).
pub fn spawn_health_worker(
    store: Arc<dyn Store>,
    config: HealthConfig,
    shutdown: CancellationToken,
) -> Result<(HealthHandle, tokio::task::JoinHandle<()>), HealthError> {
    health::worker::spawn(store, config, None, shutdown)
}

/// Serves the API on `listener` until `shutdown` is cancelled, then finishes in-flight requests
/// (change-feed streams and long-polls end at once). Uses the default [`ServeLimits`].
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, state, ServeLimits::default(), shutdown).await
}

/// [`serve`] with these connection-level `limits`.
///
/// Its own accept loop rather than `axum::serve`, which cannot set hyper's header-size limit
/// or header-read timeout.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    limits: ServeLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let feed = state.feed().clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        feed.stop();
    });
    let app = router(state.clone()).layer(axum::middleware::from_fn_with_state(
        (state, limits),
        enforce_limits,
    ));
    let http = accept::http1_builder(limits.header_read_timeout, limits.max_header_bytes);
    accept::accept_loop(listener, None, "", &shutdown, |stream, peer| {
        // The peer address keys per-client rate limits.
        let svc = tower::Layer::layer(&axum::Extension(ConnectInfo(peer)), app.clone());
        // hyper's own answers to requests it cannot parse get problem bodies.
        let io = TokioIo::new(conn::ProblemIo::new(stream, limits.max_header_bytes));
        http.serve_connection(io, TowerToHyperService::new(svc))
    })
    .await;
    Ok(())
}

/// The URL-length limit, and the body deadline: a body is read in full (up to the body size
/// limit) within [`ServeLimits::request_timeout`] before any handler runs, so a client
/// trickling it byte by byte holds a connection for a bounded time only.
async fn enforce_limits(
    axum::extract::State((state, limits)): axum::extract::State<(AppState, ServeLimits)>,
    req: Request,
    next: Next,
) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return ApiError::UriTooLong(format!(
            "the request target is {uri_len} bytes; at most {} are accepted",
            limits.max_uri_bytes
        ))
        .into_response();
    }
    let max_body = state.config().max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Declared too large: the handler refuses it without reading a byte. Declared empty: nothing
    // to wait for.
    if declared.is_some_and(|n| n == 0 || n > max_body as u64)
        || axum::body::HttpBody::is_end_stream(req.body())
    {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limits.request_timeout, axum::body::to_bytes(body, max_body)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, bytes.into())).await,
        // Over the limit (chunked) or broken off: what the JSON extractor answers too.
        Ok(Err(_)) => ApiError::PayloadTooLarge(max_body).into_response(),
        Err(_) => ApiError::RequestTimeout(limits.request_timeout).into_response(),
    }
}
