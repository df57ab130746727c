//! The registry's HTTP API: register, list and look up MCP servers, and the fleet's `/status`.
//!
//! Where a request goes: `api/servers.rs` (`/servers`, `/servers/{id}`), `api/checks.rs`
//! (`/servers/{id}/check`, `/servers/{id}/heartbeat`), `api/services.rs`
//! (`/services/{service}/routing`, its `rollback`, and `/services/{service}/istio`, rendered in
//! `istio.rs`), `api/status.rs` (`/status`),
//! `api/probes.rs` (`/healthz`, `/readyz`), `api/page.rs` (`/`, the status page in `page/`),
//! `api/metrics.rs` (`/metrics`, defined in `metrics.rs`) and `api/docs.rs` (`/openapi.json`,
//! assembled in `openapi.rs`). Errors render in `error.rs`; request bodies and path ids are
//! checked in `extract.rs`. The health worker lives in `health/`. The change feed
//! (`api/events.rs`, `GET /events`; and `GET /servers?wait=`) is fed by `feed.rs`.

mod api;
pub mod auth;
mod cache;
mod error;
mod extract;
mod feed;
pub mod health;
mod istio;
pub mod limits;
mod metrics;
mod openapi;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use mcp_fleet_model::ServerId;
use mcp_fleet_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use feed::FeedConfig;
pub use health::{HealthConfig, HealthError, HealthHandle, HealthStats, parse_cidr};

use cache::ReadCache;
use feed::Feed;
use health::ssrf::AddressPolicy;
use metrics::Metrics;

/// Largest request body accepted, by default (64 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a `GET /servers` or `GET /status` answer may be served from memory. Writes
    /// through this process invalidate it at once; writes by other processes sharing the
    /// database show after at most this long. Zero turns the cache off.
    pub read_cache_ttl: Duration,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Addresses that registered URLs may not point at, on top of the defaults (link-local,
    /// `0.0.0.0/8`, multicast); the health worker refuses to probe the same ones.
    pub probe_deny: Vec<ipnet::IpNet>,
    /// Exceptions inside denied ranges.
    pub probe_allow: Vec<ipnet::IpNet>,
    /// Who may write (and read).
    pub auth: auth::AuthConfig,
    /// Abuse limits: rate limits and caps on stored entries.
    pub limits: limits::LimitsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            read_cache_ttl: Duration::from_secs(1),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            probe_deny: Vec::new(),
            probe_allow: Vec::new(),
            auth: auth::AuthConfig::default(),
            limits: limits::LimitsConfig::default(),
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
        let cache = Arc::new(ReadCache::new(config.read_cache_ttl));
        let policy = AddressPolicy::new(config.probe_deny.clone(), config.probe_allow.clone());
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
            store,
            config,
            cache,
            policy,
            health: OnceLock::new(),
            checks: Mutex::new(HashMap::new()),
            metrics: Metrics::new(),
            feed,
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
/// (change-feed streams and long-polls end at once).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let feed = state.feed().clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        feed.stop();
    });
    // The peer address keys per-client rate limits.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
