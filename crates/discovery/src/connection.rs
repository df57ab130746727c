//! One MCP session with one server: open it (`server/discover` at 2026-07-28, else `initialize`
//! at a session-based revision; then list tools, under one deadline), hear its
//! `tools/list_changed` notifications, notice when its event stream breaks, check it is alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_fleet_model::AddressPolicy;
use mcp_fleet_net::client_layer::Layered;
use mcp_fleet_net::lifecycle;
use rmcp::model::{
    CacheScope, ClientCapabilities, ClientConfig, ClientRequest, Implementation, PingRequest,
    ProtocolVersion, RequestMetaObject, SubscriptionFilter, Tool,
};
use rmcp::service::{ClientCacheConfig, NotificationContext, Peer, RunningService, Subscription};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::SseRetryPolicy;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ClientServiceExt, RoleClient, ServiceExt};
use tokio::time::Instant;

use crate::auth::{AuthedClient, TokenSource};
use crate::call_http::CallHttp;
use crate::direct::Direct;
use crate::error::{DiscoveryError, Target};
use crate::index::{ServerMeta, Signals};

/// Which opening a server answered, remembered by its supervisor so that a reconnect skips a
/// probe the server already failed (the specification asks clients to keep it per origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Era {
    /// Not known yet: `server/discover` first, `initialize` if the server wants it.
    #[default]
    Unknown,
    /// The server answered `server/discover`: 2026-07-28, no session.
    Modern,
    /// The server wanted `initialize`: a session-based revision.
    Legacy,
}

/// Our side of a session: announces the host, wakes the supervisor on `list_changed`.
#[derive(Debug, Clone)]
pub(crate) struct FleetClient {
    info: ClientConfig,
    signals: Arc<Signals>,
}

impl FleetClient {
    /// As `name`/`version`; a server that wants `initialize` is offered the newest revision that
    /// still has it (it may settle on an older one).
    pub(crate) fn new(name: &str, version: &str, signals: Arc<Signals>) -> Self {
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new(name, version),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
        Self { info, signals }
    }
}

impl ClientHandler for FleetClient {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.signals.tools_changed.notify_one();
    }

    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }
}

/// The SSE retry policy of a session: the transport asks it before reconnecting a broken event
/// stream, which is the first sign of a dead server; it tells the supervisor, then backs off.
///
/// Every call's response stream also ends by asking it, so it tells the supervisor at most
/// once per [`SIGNAL_GAP`]: a broken session stream asks again and again, a busy healthy
/// session does not wake the supervisor after every call.
#[derive(Debug)]
struct StreamWatch {
    signals: Arc<Signals>,
    /// When the supervisor was last told, as milliseconds since `epoch`.
    last_signal_ms: AtomicU64,
    epoch: std::time::Instant,
}

/// Least time between two signals of a [`StreamWatch`].
const SIGNAL_GAP: Duration = Duration::from_millis(200);

impl SseRetryPolicy for StreamWatch {
    fn retry(&self, attempt: usize) -> Option<Duration> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_signal_ms.load(Ordering::Relaxed);
        let gap = u64::try_from(SIGNAL_GAP.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) >= gap
            && self
                .last_signal_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.signals.suspect.notify_one();
        }
        let shift = u32::try_from(attempt.min(5)).unwrap_or(5);
        Some(Duration::from_millis(250 << shift).min(Duration::from_secs(5)))
    }
}

/// An open session.
pub(crate) struct Session {
    pub(crate) running: RunningService<RoleClient, FleetClient>,
    /// Tool calls without rmcp's client service, where the session allows it.
    pub(crate) direct: Option<Arc<Direct>>,
    /// How it was opened.
    pub(crate) era: Era,
}

impl Session {
    /// The handle calls go through.
    pub(crate) fn peer(&self) -> &Peer<RoleClient> {
        self.running.peer()
    }

    /// Whether the session is on 2026-07-28 (no `initialize`, no session, no `ping`).
    pub(crate) fn is_modern(&self) -> bool {
        self.era == Era::Modern
    }

    /// Ends the session (a session-based server is told with a `DELETE`), waiting at most
    /// `limit`.
    pub(crate) async fn close(mut self, limit: Duration) {
        if let Ok(Err(e)) = tokio::time::timeout(limit, self.running.close()).await {
            tracing::debug!(error = %e, "closing an MCP session failed");
        }
    }
}

/// What opening a session needs.
pub(crate) struct Opener<'a> {
    pub(crate) http: &'a reqwest::Client,
    /// The library's fast paths (direct calls, kept connections); `None`: rmcp's client only.
    pub(crate) calls: Option<&'a CallHttp>,
    pub(crate) client_name: &'a str,
    pub(crate) client_version: &'a str,
    pub(crate) timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) policy: &'a AddressPolicy,
}

impl Opener<'_> {
    /// Connects to `meta`'s endpoint (as `era` says, probing when unknown) and lists every tool
    /// (following cursors), all within `self.timeout`.
    pub(crate) async fn open(
        &self,
        meta: &ServerMeta,
        tokens: Option<TokenSource>,
        signals: Arc<Signals>,
        era: Era,
    ) -> Result<(Session, Listing, Option<Subscription>), DiscoveryError> {
        let target = target(meta);
        // reqwest never asks the guarded resolver about a literal address: check it here.
        if let Ok(url) = url::Url::parse(&meta.mcp_url)
            && let Err(refused) = self.policy.check_url(&url)
        {
            return Err(target.refused(refused.to_string()));
        }
        let deadline = Instant::now() + self.timeout;
        let mut client = AuthedClient::new(
            self.http.clone(),
            tokens.map(Arc::new),
            self.request_timeout.max(self.timeout),
        );
        if let Some(calls) = self.calls {
            client = client.with_kept_connections(calls);
        }
        let direct_client = client.clone();
        let transport = || {
            let mut config = StreamableHttpClientTransportConfig::with_uri(meta.mcp_url.as_str())
                // A restarted server does not know our session: reconnect (and re-list) instead.
                .reinit_on_expired_session(false);
            config.retry_config = Arc::new(StreamWatch {
                signals: signals.clone(),
                // "Long ago", so the first break is signalled at once.
                last_signal_ms: AtomicU64::new(0),
                epoch: std::time::Instant::now()
                    .checked_sub(SIGNAL_GAP)
                    .unwrap_or_else(std::time::Instant::now),
            });
            StreamableHttpClientTransport::with_client(Layered(client.clone()), config)
        };
        let handler = FleetClient::new(self.client_name, self.client_version, signals.clone());
        let opening = async {
            if era == Era::Legacy {
                return handler.clone().serve(transport()).await;
            }
            match handler
                .clone()
                .serve_with_lifecycle(transport(), lifecycle::modern_first())
                .await
            {
                // It knows `server/discover` but no revision without `initialize`.
                Err(e) if lifecycle::needs_initialize(&e) => {
                    handler.clone().serve(transport()).await
                }
                opened => opened,
            }
        };
        let running = match tokio::time::timeout_at(deadline, opening).await {
            Ok(Ok(running)) => running,
            Ok(Err(e)) => return Err(target.initialize_error(&e)),
            Err(_) => return Err(target.timeout("connect", self.timeout)),
        };
        let version = running
            .peer()
            .peer_info()
            .map(|info| info.protocol_version.clone())
            .unwrap_or_default();
        signals.opened(version.as_str());
        let era = if version.has_initialize() {
            Era::Legacy
        } else {
            Era::Modern
        };
        // The transport's clone of the client captured the session id on `initialize`.
        let session_id = direct_client.session_id.get().cloned();
        let direct = self.calls.and_then(|calls| {
            Direct::new(
                direct_client,
                calls,
                Arc::from(meta.mcp_url.as_str()),
                session_id,
                &version,
                (era == Era::Modern).then_some((self.client_name, self.client_version)),
                signals,
            )
            .map(Arc::new)
        });
        let session = Session {
            running,
            direct,
            era,
        };
        // The index is the cache (kept for a listing's `ttlMs`); rmcp's own would answer
        // re-lists from memory.
        session
            .peer()
            .set_response_cache_config(ClientCacheConfig::disabled())
            .await;
        // Subscribed before listing, so that no change after the listing goes unheard.
        let subscribed = subscribe(&session, &target);
        let Ok(subscription) = tokio::time::timeout_at(deadline, subscribed).await else {
            session.close(Duration::from_secs(1)).await;
            return Err(target.timeout("connect (subscriptions/listen)", self.timeout));
        };
        let listed = list_tools(session.peer(), session.is_modern(), &target);
        match tokio::time::timeout_at(deadline, listed).await {
            Ok(Ok(listing)) => Ok((session, listing, subscription)),
            Ok(Err(e)) => {
                session.close(Duration::from_secs(1)).await;
                Err(e)
            }
            Err(_) => {
                session.close(Duration::from_secs(1)).await;
                Err(target.timeout("connect (tools/list)", self.timeout))
            }
        }
    }
}

/// Who `meta` is, for error messages.
pub(crate) fn target(meta: &ServerMeta) -> Target<'_> {
    Target {
        server: &meta.id,
        url: &meta.mcp_url,
        wants_auth: meta.wants_auth,
    }
}

/// On 2026-07-28, a `subscriptions/listen` stream for `tools/list_changed`, where the server
/// announces list changes and accepts it; `None` otherwise (a session hears them as
/// notifications, and a stale listing is re-read when used).
async fn subscribe(session: &Session, target: &Target<'_>) -> Option<Subscription> {
    if !session.is_modern() {
        return None;
    }
    let announces = session.peer().peer_info().is_some_and(|info| {
        info.capabilities
            .tools
            .as_ref()
            .is_some_and(|tools| tools.list_changed == Some(true))
    });
    if !announces {
        return None;
    }
    let filter = SubscriptionFilter::builder().tools_list_changed().build();
    match session.peer().listen(filter).await {
        Ok(subscription) if subscription.acknowledged().tools_list_changed == Some(true) => {
            Some(subscription)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(server = %target.server, error = %e, "no subscriptions/listen");
            None
        }
    }
}

/// A server's tools, and until when they may be reused without asking again.
pub(crate) struct Listing {
    pub(crate) tools: Vec<Tool>,
    /// From a 2026-07-28 listing's `ttlMs` (absent: `0`); `None` for a session-based one, which
    /// stays fresh until the server says `tools/list_changed`.
    pub(crate) ttl: Option<Duration>,
    /// Its `cacheScope` is `private` (on any page).
    pub(crate) private: bool,
}

/// Every tool of the server (no tools capability: none).
pub(crate) async fn list_tools(
    peer: &Peer<RoleClient>,
    modern: bool,
    target: &Target<'_>,
) -> Result<Listing, DiscoveryError> {
    let offers_tools = peer
        .peer_info()
        .is_none_or(|info| info.capabilities.tools.is_some());
    if !offers_tools {
        return Ok(Listing {
            tools: Vec::new(),
            ttl: None,
            private: false,
        });
    }
    let merged = peer
        .list_all_tools_with_cache_hint()
        .await
        .map_err(|e| target.service_error("tools/list", &e))?;
    Ok(Listing {
        tools: merged.items,
        ttl: modern.then(|| Duration::from_millis(merged.ttl_ms.unwrap_or(0))),
        private: modern && merged.cache_scope == Some(CacheScope::Private),
    })
}

/// Whether the server answers within `limit`: a `ping` in a session, `server/discover` on
/// 2026-07-28, which has no `ping`.
pub(crate) async fn ping(
    session: &Session,
    client_name: &str,
    client_version: &str,
    target: &Target<'_>,
    limit: Duration,
) -> Result<(), DiscoveryError> {
    let peer = session.peer();
    if session.is_modern() {
        let version = peer.peer_info().map_or(ProtocolVersion::LATEST, |info| {
            info.protocol_version.clone()
        });
        let meta = RequestMetaObject::with_client_context(
            version,
            Implementation::new(client_name, client_version),
            ClientCapabilities::default(),
        );
        return match tokio::time::timeout(limit, peer.discover(meta)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(target.service_error("server/discover", &e)),
            Err(_) => Err(target.timeout("server/discover", limit)),
        };
    }
    let request = ClientRequest::PingRequest(PingRequest::default());
    match tokio::time::timeout(limit, peer.send_request(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(target.service_error("ping", &e)),
        Err(_) => Err(target.timeout("ping", limit)),
    }
}
