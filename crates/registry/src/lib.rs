//! The registry's HTTP API: register, list and look up MCP servers, and the fleet's `/status`.
//!
//! Where a request goes: `api/servers.rs` (`/servers`, `/servers/{id}`), `api/status.rs`
//! (`/status`), `api/probes.rs` (`/healthz`, `/readyz`). Errors render in `error.rs`; request
//! bodies and path ids are checked in `extract.rs`.

mod api;
mod cache;
mod error;
mod extract;
pub mod health;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use mcp_fleet_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use cache::ReadCache;

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            read_cache_ttl: Duration::from_secs(1),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Everything a handler needs, shared by all of them.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Arc<dyn Store>,
    config: Config,
    cache: ReadCache,
}

impl AppState {
    /// State over `store` with `config`.
    pub fn new(store: Arc<dyn Store>, config: Config) -> Self {
        let cache = ReadCache::new(config.read_cache_ttl);
        Self(Arc::new(Inner {
            store,
            config,
            cache,
        }))
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.0.store.as_ref()
    }

    pub(crate) fn config(&self) -> &Config {
        &self.0.config
    }

    pub(crate) fn cache(&self) -> &ReadCache {
        &self.0.cache
    }
}

/// The API's routes, without a socket (tests drive it with `tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    api::routes(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
