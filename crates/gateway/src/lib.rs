//! The aggregating MCP gateway: one Streamable HTTP endpoint (`/mcp`) in front of the fleet.
//!
//! - Its `tools/list` is the fleet's catalog grouped by service, under collision-free names
//!   (`<service>__<tool>`), kept current as servers come, go and change their tools; clients
//!   get `notifications/tools/list_changed` once per burst of changes.
//! - `tools/call` goes to one healthy instance of the service: by the service's routing policy
//!   (weights by version, from the registry) for a session's first call, then to the same
//!   version for the rest of the session (sticky); instances take turns within a version;
//!   instances failing call after call are ejected for a while (outlier ejection). A call that
//!   never reached its instance (connection refused) goes once more to another instance of the
//!   same version; one that may have reached it, only when the tool is `idempotentHint`.
//! - Per-version error rates over a sliding window roll a canary back automatically when they
//!   exceed the stable version's by more than the policy allows: its weight goes to 0 here at
//!   once and in the registry, with the reason, and webhooks are told.
//! - Fail open: an upstream that is down or cannot be listed never breaks a session or the
//!   listing; its tools are withheld until it is back ([`FailureMode`]).
//!
//! - Replicas: a session's id carries the session (its pinned versions among it), sealed with
//!   a key the replicas share ([`GatewayConfig::session_key`]), so any replica answers any
//!   session; clients of the sessionless 2026-07-28 revision need none.
//!
//! Resources and prompts are aggregated too (prompts under `<serverId>__<prompt>`).

mod access_log;
mod canary;
mod catalog;
mod config;
mod fast_call;
mod front;
mod gateway;
mod metrics;
mod outlier;
mod pins;
mod report;
mod routing;
mod session;
mod session_id;
mod session_store;
mod upstream;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use mcp_fleet_discovery::{AddressPolicy, Discovery, DiscoveryError, HealthStatus, Tool, guard};
use mcp_fleet_net::accept;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{FailureMode, GatewayConfig, OutlierConfig, ServeLimits, ToolNames};
pub use mcp_fleet_discovery::Backoff;
pub use session_id::{SessionKey, SessionKeyError};

use crate::gateway::Inner;
use crate::session::Session;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The registry could not be read, or the discovery library refused the settings.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// An HTTP client could not be built.
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The registry URL is unusable, or the registry could not be read. The client error is
    /// also the source, so callers find it in the chain (a `401` is its own exit code in the
    /// CLI): print chains with `rmcp_errors::chain`, which says it once.
    #[error("{0}")]
    Registry(#[from] mcp_fleet_discovery::ClientError),
    /// An alert webhook is at an address the address policy refuses.
    #[error("alert webhook {url}: refused: {reason} (address policy)")]
    WebhookRefused {
        /// The webhook's origin.
        url: String,
        /// Which address and range.
        reason: String,
    },
}

/// A running gateway; cheap to clone. Background work stops on [`Gateway::shutdown`].
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Connects to the fleet (every matching server that is not `down`, concurrently) and
    /// starts following the registry. Upstreams that cannot be reached are retried in the
    /// background. A registry that cannot be reached (or answers `5xx`) is retried in the
    /// background too, with [`GatewayConfig::registry_backoff`]: the gateway serves an empty
    /// catalog meanwhile and tells its clients when the fleet's tools arrive (pods start in any
    /// order). Other refusals (a bad URL, a `401`, a refused alert webhook) are errors.
    pub async fn start(mut config: GatewayConfig) -> Result<Self, GatewayError> {
        let rmcp_only = match config.rmcp_only {
            Some(on) => on,
            None => mcp_fleet_discovery::rmcp_only_from_env()?,
        };
        config.rmcp_only = Some(rmcp_only);
        let inner = Arc::new(Inner::new(config, CancellationToken::new())?);
        match connect_fleet(&inner).await {
            Ok(_) => {}
            Err(e) if e.registry_not_reachable() => {
                tokio::spawn(connect_fleet_later(inner.clone(), e));
            }
            Err(e) => return Err(e),
        }
        tokio::spawn(inner.clone().follow_policies());
        if let Some(every) = inner.config.canary_report_interval {
            tokio::spawn(inner.clone().report_canaries(every));
        }
        Ok(Self { inner })
    }

    /// The weights by version that `service`'s new sessions are routed by, as the gateway last
    /// read them (its own rollbacks applied); `None` without a routing policy.
    pub fn routing_weights(&self, service: &str) -> Option<Vec<(mcp_fleet_model::Version, u32)>> {
        self.inner.policy(service).map(|p| p.weights.clone())
    }

    /// The tools the gateway offers now, as `tools/list` answers.
    pub fn tools(&self) -> Vec<Tool> {
        self.inner.catalog().tools.as_ref().clone()
    }

    /// `/mcp` (the MCP endpoint), `/metrics` (Prometheus text) and `/healthz`.
    pub fn router(&self) -> Router {
        let limits = self.inner.config.limits;
        // rmcp's default hosts (loopback names), and those configured.
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        hosts.extend(self.inner.config.allowed_hosts.iter().cloned());
        let mut config = StreamableHttpServerConfig::default()
            .with_cancellation_token(self.inner.shutdown.child_token())
            .with_allowed_hosts(hosts.clone())
            .with_max_request_body_bytes(limits.max_body_bytes);
        // Sessions live in their ids: any replica sharing the key takes one up.
        config.session_store = Some(Arc::new(session_store::IdStore(self.inner.clone())));
        let inner = self.inner.clone();
        let mcp = StreamableHttpService::new(
            move || Ok(Session::new(inner.clone())),
            Arc::new(session_store::IdSessions::new(
                LocalSessionManager::default(),
            )),
            config,
        );
        let front = Arc::new(front::Front::new(limits, hosts));
        // Tool calls of known sessions are answered in front of rmcp (see `fast_call`).
        let fast = (self.inner.config.rmcp_only != Some(true))
            .then(|| (self.inner.clone(), front.clone()));
        let mcp = tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(front, front::front))
            .layer(axum::middleware::from_fn_with_state(
                self.inner.clone(),
                session_store::admit,
            ))
            .option_layer(
                fast.map(|state| axum::middleware::from_fn_with_state(state, fast_call::fast_call)),
            )
            .map_response(IntoResponse::into_response)
            .service(mcp);
        let metrics = self.inner.clone();
        Router::new()
            .nest_service("/mcp", mcp)
            .route(
                "/metrics",
                get(move || {
                    let metrics = metrics.clone();
                    async move {
                        (
                            [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
                            metrics.metrics.render(),
                        )
                            .into_response()
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok\n" }))
            .layer(access_log::layer())
    }

    /// Serves [`Gateway::router`] on `listener` until `shutdown`, then stops the gateway.
    /// Connections are held to the configured [`ServeLimits`]: header size and deadline here,
    /// body size and deadline in front of `/mcp`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let app = self.router();
        let limits = self.inner.config.limits;
        // Its own accept loop rather than `axum::serve`, which rebuilds the router's state for
        // every connection (stock MCP clients open one connection per request) and cannot set
        // hyper's header limits.
        let http = accept::http1_builder(limits.header_read_timeout, limits.max_header_bytes);
        let limit = accept::ConnectionLimit {
            max: limits.max_connections,
            answer: TOO_MANY_CONNECTIONS,
        };
        accept::accept_loop(
            listener,
            Some(limit),
            "gateway: ",
            &shutdown,
            |stream, _| {
                http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            },
        )
        .await;
        self.shutdown().await;
        Ok(())
    }

    /// Stops following the fleet and closes the upstream sessions.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.discovery().shutdown().await;
    }
}

/// The answer to a connection over [`ServeLimits::max_connections`].
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
    content-type: application/json\r\nretry-after: 1\r\ncontent-length: 99\r\n\r\n\
    {\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\
    \"message\":\"too many connections to the gateway\"}}";

impl GatewayError {
    /// Whether the registry did not answer, or answered that it cannot serve yet (`5xx`):
    /// worth trying again later.
    fn registry_not_reachable(&self) -> bool {
        use mcp_fleet_discovery::ClientError;
        match self {
            Self::Registry(ClientError::Unreachable { .. }) => true,
            Self::Registry(ClientError::Problem { status, .. }) => *status >= 500,
            // Listing the fleet failed right after the policy was read.
            Self::Discovery(DiscoveryError::Registry(_)) => true,
            _ => false,
        }
    }
}

/// Reads the registry's address policy, connects to the fleet under it and starts following
/// it; `true` when the catalog changed.
async fn connect_fleet(inner: &Arc<Inner>) -> Result<bool, GatewayError> {
    let config = &inner.config;
    let policy = address_policy(config).await?;
    let mut builder = Discovery::builder(config.registry_url.clone())
        .address_policy(policy.clone())
        .rmcp_only(config.rmcp_only == Some(true));
    for certificate in &config.upstream_root_certificates {
        builder = builder.root_certificate(certificate.clone());
    }
    if let Some(token) = &config.registry_token {
        builder = builder.registry_token(token.clone());
    }
    if config.upstream_keepalive {
        builder = builder.http_client(
            guard::client_builder(Arc::new(policy.clone()))
                .connect_timeout(config.connect_timeout)
                .tcp_nodelay(true)
                .pool_max_idle_per_host(64)
                .tls_certs_merge(config.upstream_root_certificates.iter().cloned())
                .build()?,
        );
    }
    let discovery = builder
        .upstream_credentials(config.upstream_credentials.clone())
        .tags(config.tags.clone())
        .client_info("mcp-fleet-gateway", env!("CARGO_PKG_VERSION"))
        .statuses([
            HealthStatus::Healthy,
            HealthStatus::Degraded,
            HealthStatus::Unknown,
        ])
        .connect_timeout(config.connect_timeout)
        .call_timeout(config.call_timeout)
        .watch(true)
        .lazy(config.catalog_tools_list)
        .build()?;
    let report = match discovery.connect().await {
        Ok(report) => report,
        Err(e) => {
            discovery.shutdown().await;
            return Err(e.into());
        }
    };
    if inner.shutdown.is_cancelled() {
        // Stopped while connecting: nothing to follow.
        discovery.shutdown().await;
        return Ok(false);
    }
    for (server, error) in &report.failed {
        if matches!(error, DiscoveryError::Refused { .. }) {
            // Logged by the discovery library, which never connects to it.
            continue;
        }
        tracing::warn!(%server, %error, "upstream not connected yet; retrying in the background");
    }
    inner.attach(discovery, &policy)?;
    inner.refresh_pins(pins::PinRead::All).await;
    let changed = inner.rebuild();
    inner.refresh_policies().await;
    tokio::spawn(inner.clone().follow_index());
    if config.pin_tool_hashes || config.catalog_tools_list {
        tokio::spawn(inner.clone().follow_catalogs());
    }
    Ok(changed)
}

/// Tries [`connect_fleet`] again with backoff until it succeeds or the gateway stops; `error`
/// is why the last attempt failed.
async fn connect_fleet_later(inner: Arc<Inner>, mut error: GatewayError) {
    let url = inner.config.registry_url.clone();
    let mut attempt: u32 = 0;
    loop {
        let delay = inner.config.registry_backoff.delay(attempt);
        let secs = delay.as_secs_f64();
        if error.registry_not_reachable() {
            tracing::warn!(registry = %url, %error,
                "registry {url} not reachable yet; retrying in {secs:.1} s (serving no tools meanwhile)");
        } else {
            tracing::error!(registry = %url, %error,
                "cannot follow the fleet of registry {url}; retrying in {secs:.1} s (serving no tools meanwhile)");
        }
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        match connect_fleet(&inner).await {
            Ok(changed) => {
                tracing::info!(registry = %url, tools = inner.catalog().tools.len(),
                    "registry {url} reachable; following the fleet");
                if changed {
                    inner.announce().await;
                }
                return;
            }
            Err(e) => error = e,
        }
        attempt = attempt.saturating_add(1);
    }
}

/// The registry's address policy with this gateway's additions; alert webhooks at refused
/// literal addresses stop the start.
async fn address_policy(config: &GatewayConfig) -> Result<AddressPolicy, GatewayError> {
    let mut registry = mcp_fleet_discovery::RegistryClient::new(&config.registry_url)?;
    if let Some(token) = &config.registry_token {
        registry = registry.with_token(token.clone());
    }
    let policy = registry
        .effective_address_policy(&config.address_policy)
        .await?;
    tracing::info!(%policy, "address policy of upstreams and alert webhooks");
    for webhook in &config.alert_webhooks {
        if let Ok(url) = url::Url::parse(webhook)
            && let Err(refused) = policy.check_url(&url)
        {
            return Err(GatewayError::WebhookRefused {
                url: url.origin().ascii_serialization(),
                reason: refused.to_string(),
            });
        }
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_too_many_connections_answer_declares_its_length() {
        let text = std::str::from_utf8(super::TOO_MANY_CONNECTIONS).expect("UTF-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.ends_with(&format!("\r\ncontent-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(body["error"]["code"], -32000);
    }
}
