//! [`Discovery`]: find a fleet's MCP servers by tag in the registry, connect to all of them at
//! once, keep one index of their tools under collision-free names, and call through it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::join_all;
use mcp_fleet_model::{AddressPolicy, AuthType, Entry, HealthStatus};
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, GetPromptRequestParams, GetPromptResult, JsonObject,
    Prompt, ReadResourceRequestParams, ReadResourceResult, Resource, Tool,
};
use rmcp::service::Peer;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::auth::{BearerTokenFn, ClientCredentials, Credentials, Tokens};
use crate::call_http::CallHttp;
use crate::connection::target;
use crate::credentials::{CredentialKey, UpstreamCredentials};
use crate::direct::Direct;
use crate::error::{DiscoveryError, clip};
use crate::events::{IndexEvent, IndexUpdates};
use crate::index::{
    DiscoveredTool, Index, Resolved, ServerInfo, ServerMeta, ServerPart, ServerState, Signals, Slot,
};
use crate::names::qualified_name;
use crate::registry_client::RegistryClient;
use crate::supervisor::{Backoff, Supervisor};
use crate::watch::{FeedWatch, RegistryWatch, list_options};

/// How many index events a slow subscriber may fall behind before it is sent a reset.
const EVENT_BUFFER: usize = 1024;

/// Settings fixed at [`DiscoveryBuilder::build`].
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) tags: Vec<String>,
    pub(crate) statuses: Vec<HealthStatus>,
    pub(crate) client_name: String,
    pub(crate) client_version: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) backoff: Backoff,
    pub(crate) watch: bool,
    pub(crate) poll_interval: Duration,
    /// Which addresses servers (and their token endpoints) may be reached at.
    pub(crate) policy: Arc<AddressPolicy>,
}

impl Settings {
    /// How long a liveness `ping` may take.
    pub(crate) fn ping_timeout(&self) -> Duration {
        self.connect_timeout.min(Duration::from_secs(5))
    }
}

/// Configures a [`Discovery`]; see [`Discovery::builder`].
pub struct DiscoveryBuilder {
    registry_url: String,
    settings: Settings,
    credentials: Credentials,
    http: Option<reqwest::Client>,
    watcher: Option<Box<dyn RegistryWatch>>,
    registry_token: Option<String>,
    /// `None`: as [`RMCP_ONLY_ENV`] says.
    rmcp_only: Option<bool>,
    root_certificates: Vec<reqwest::Certificate>,
}

/// The environment variable that routes every request through rmcp's own client when
/// [`DiscoveryBuilder::rmcp_only`] is not called (`1`, `true`, `yes`, `on`: on; unset, empty,
/// `0`, `false`, `no`, `off`: off).
pub const RMCP_ONLY_ENV: &str = "MCP_FLEET_RMCP_ONLY";

/// What [`RMCP_ONLY_ENV`] asks for; a value that is not a yes or a no is an error naming it.
pub fn rmcp_only_from_env() -> Result<bool, DiscoveryError> {
    rmcp_only_from(std::env::var_os(RMCP_ONLY_ENV).as_deref())
}

/// [`rmcp_only_from_env`] of the variable's `value`.
fn rmcp_only_from(value: Option<&std::ffi::OsStr>) -> Result<bool, DiscoveryError> {
    let Some(value) = value else {
        return Ok(false);
    };
    let value = value.to_string_lossy();
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" | "n" | "f" => Ok(false),
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        _ => Err(DiscoveryError::Config(format!(
            "{RMCP_ONLY_ENV}={:?} is neither on (1, true, yes, on) nor off (0, false, no, off)",
            clip(&value)
        ))),
    }
}

impl std::fmt::Debug for DiscoveryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryBuilder")
            .field("registry_url", &self.registry_url)
            .field("settings", &self.settings)
            .field("credentials", &self.credentials)
            .field("rmcp_only", &self.rmcp_only)
            .finish_non_exhaustive()
    }
}

impl DiscoveryBuilder {
    /// Servers having ANY of these tags (all servers when none are given).
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// The name and version this host announces to servers in `initialize` (default:
    /// `mcp-fleet-discovery` and this crate's version).
    pub fn client_info(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.settings.client_name = name.into();
        self.settings.client_version = version.into();
        self
    }

    /// Which registry statuses to connect to (default: `healthy`, `degraded` and `unknown`, so
    /// a server registered a moment ago is used before its first health check; `down` ones are
    /// skipped, and dropped when [watching](Self::watch)).
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = HealthStatus>) -> Self {
        self.settings.statuses = statuses.into_iter().collect();
        self
    }

    /// Time allowed to connect to one server, initialize and list its tools (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Time allowed for one tool call (default 60 s).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.settings.call_timeout = timeout;
        self
    }

    /// How often an idle session is pinged to find out it died (default 30 s; `None` turns it
    /// off). A broken event stream or a failed call is noticed at once either way.
    pub fn keepalive(mut self, every: Option<Duration>) -> Self {
        self.settings.keepalive = every.filter(|d| !d.is_zero());
        self
    }

    /// Delays between reconnection attempts (default 500 ms doubling to 30 s, with jitter).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.settings.backoff = backoff;
        self
    }

    /// Follow the registry after [`Discovery::connect`]: connect to matching servers that
    /// appear, drop those that are removed or go `down` (default off).
    pub fn watch(mut self, watch: bool) -> Self {
        self.settings.watch = watch;
        self
    }

    /// How often [watching](Self::watch) polls `GET /servers` when the registry has no change
    /// feed (default 10 s); with one, changes arrive as they are committed.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll_interval = interval;
        self
    }

    /// Follow the registry with `watcher` instead of polling (implies [`watch(true)`](Self::watch)).
    pub fn watcher(mut self, watcher: impl RegistryWatch) -> Self {
        self.watcher = Some(Box::new(watcher));
        self.settings.watch = true;
        self
    }

    /// Which addresses servers and their token endpoints may be at (default:
    /// [`AddressPolicy::default`], which denies link-local, cloud metadata, multicast and
    /// unspecified addresses). Give it the registry's own
    /// ([`RegistryClient::address_policy`]) so discovery never connects where the registry
    /// would not. Applies to the library's own HTTP clients; a client passed to
    /// [`http_client`](Self::http_client) should be built from [`guard::client_builder`](crate::guard::client_builder).
    pub fn address_policy(mut self, policy: AddressPolicy) -> Self {
        self.settings.policy = Arc::new(policy);
        self
    }

    /// A bearer token for the registry itself, for registries that protect reads
    /// (`--auth-reads`): a registry token (`mcpf_…`) with `servers:read`, or an OIDC JWT.
    pub fn registry_token(mut self, token: impl Into<String>) -> Self {
        self.registry_token = Some(token.into());
        self
    }

    /// The bearer token for server `server_id` (entries with `auth.type` `bearer`).
    pub fn bearer_token(mut self, server_id: impl Into<String>, token: impl Into<String>) -> Self {
        self.credentials
            .upstream
            .bearer(CredentialKey::Server(server_id.into()), token);
        self
    }

    /// Asks `get(server_id)` for the bearer token of servers without one of their own (or
    /// their service's); it is asked again when a server refuses the token it gave (`401`).
    pub fn bearer_token_fn(
        mut self,
        get: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        let get: BearerTokenFn = Arc::new(get);
        self.credentials.bearer_fn = Some(get);
        self
    }

    /// OAuth 2.0 client credentials for server `server_id` (entries with `auth.type`
    /// `oauth2`): tokens come from the entry's `auth.tokenEndpoint` by the client-credentials
    /// grant, are cached until shortly before they expire and renewed after a `401`.
    pub fn oauth2_client_credentials(
        mut self,
        server_id: impl Into<String>,
        credentials: ClientCredentials,
    ) -> Self {
        self.credentials
            .upstream
            .oauth2(CredentialKey::Server(server_id.into()), credentials);
        self
    }

    /// OAuth 2.0 client credentials for every `oauth2` server without its own.
    pub fn default_oauth2_client_credentials(mut self, credentials: ClientCredentials) -> Self {
        self.credentials.upstream.default_oauth2(credentials);
        self
    }

    /// Bearer tokens and OAuth 2.0 clients by server id and by service (from options or a
    /// file, see [`UpstreamCredentials`]), added to those given so far; where both name the
    /// same key and kind, these win. A server id's credential beats its service's.
    pub fn upstream_credentials(mut self, credentials: UpstreamCredentials) -> Self {
        self.credentials.upstream.merge(credentials);
        self
    }

    /// The HTTP client for MCP sessions and token requests (default: a reqwest client with a
    /// connect timeout, no overall timeout, which would cut event streams, no redirects and no
    /// idle connection pooling, which costs ~40 ms per request on Linux with most servers;
    /// configure yours the same way). Tool calls to `http://` servers do not go through it:
    /// they keep their connections open on a client of the library's own that does not stall
    /// (see `call_http`); to `https://` servers, and with [`rmcp_only`](Self::rmcp_only), they
    /// do.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Sends every request through rmcp's own client (its reqwest transport and client
    /// service) instead of the library's faster paths below it: tool calls posted directly
    /// (`direct`) and kept connections to `http://` servers (`call_http`, `kept_post`). Same
    /// answers and errors, more CPU and connections per call; for ruling the fast paths out
    /// when something misbehaves, and for testing both ways. Default: off, unless
    /// [`RMCP_ONLY_ENV`] (`MCP_FLEET_RMCP_ONLY`) says on.
    pub fn rmcp_only(mut self, on: bool) -> Self {
        self.rmcp_only = Some(on);
        self
    }

    /// Also trusts `certificate` as a root for `https://` servers and token endpoints, besides
    /// the platform's roots (a private CA, or a test's self-signed certificate). Applies to the
    /// library's default client; a client given to [`http_client`](Self::http_client) brings
    /// its own roots.
    pub fn root_certificate(mut self, certificate: reqwest::Certificate) -> Self {
        self.root_certificates.push(certificate);
        self
    }

    /// The configured [`Discovery`]; nothing is connected until [`Discovery::connect`].
    pub fn build(self) -> Result<Discovery, DiscoveryError> {
        let rmcp_only = match self.rmcp_only {
            Some(on) => on,
            None => rmcp_only_from_env()?,
        };
        let mut registry = RegistryClient::new(&self.registry_url)?;
        if let Some(token) = self.registry_token {
            registry = registry.with_token(token);
        }
        let http = match self.http {
            Some(http) => http,
            // No idle pooling, as rmcp's own default client: rmcp stops reading a response's
            // event stream shortly after the answer, and reusing such a connection stalls
            // ~40 ms on TCP delayed ACK (measured: 45 ms per call with pooling, 2 ms without,
            // in a debug build). No redirects: an MCP endpoint has no business moving.
            None => crate::guard::client_builder(self.settings.policy.clone())
                .connect_timeout(self.settings.connect_timeout)
                .pool_max_idle_per_host(0)
                .tls_certs_merge(self.root_certificates)
                .build()
                .map_err(|e| {
                    DiscoveryError::Registry(format!("cannot build an HTTP client: {e}"))
                })?,
        };
        let watcher: Box<dyn RegistryWatch> = match self.watcher {
            Some(w) => w,
            None => Box::new(FeedWatch::new(
                registry.clone(),
                self.settings.tags.clone(),
                self.settings.poll_interval,
            )),
        };
        let shutdown = CancellationToken::new();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            tokens: Tokens::new(self.credentials, http.clone(), self.settings.policy.clone()),
            calls: (!rmcp_only).then(|| {
                crate::call_http::client(
                    self.settings.connect_timeout,
                    self.settings.policy.clone(),
                )
            }),
            http,
            registry,
            settings: self.settings,
            index: RwLock::new(Arc::new(Index::default())),
            stale: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            events,
            watcher: Mutex::new(Some(watcher)),
            turn: AtomicUsize::new(0),
            shutdown: shutdown.clone(),
        });
        Ok(Discovery {
            shared,
            _stop_on_drop: Arc::new(shutdown.drop_guard()),
        })
    }
}

/// What [`Discovery::connect`] did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectReport {
    /// Servers connected, with how many tools each offers, in id order.
    pub connected: Vec<(String, usize)>,
    /// Servers that could not be connected, and why, in id order. They are retried in the
    /// background; their state shows in [`Discovery::servers`].
    #[serde(serialize_with = "serialize_failures")]
    pub failed: Vec<(String, DiscoveryError)>,
    /// Matching entries left alone because of their registry status (see
    /// [`DiscoveryBuilder::statuses`]), in id order.
    pub skipped: Vec<(String, HealthStatus)>,
}

fn serialize_failures<S: serde::Serializer>(
    failed: &[(String, DiscoveryError)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let as_text: Vec<(&str, String)> = failed
        .iter()
        .map(|(id, e)| (id.as_str(), e.to_string()))
        .collect();
    as_text.serialize(s)
}

/// A resource of a discovered server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredResource {
    /// The server offering it.
    pub server_id: String,
    /// Its MCP definition.
    pub resource: Resource,
}

/// A prompt of a discovered server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredPrompt {
    /// `<serverId>__<prompt>`, named like tools (see [`qualified_name`]).
    pub qualified_name: String,
    /// The server offering it.
    pub server_id: String,
    /// Its MCP definition (its `name` is the bare name).
    pub prompt: Prompt,
}

/// Items gathered from every connected server, and the servers that could not be asked.
#[derive(Debug, Clone)]
pub struct Aggregate<T> {
    /// Everything listed, in server id order.
    pub items: Vec<T>,
    /// Servers that failed to answer (or are not connected).
    pub failures: Vec<DiscoveryError>,
}

/// A supervisor's first connection attempt: the number of tools, or why it failed.
type FirstOutcome = oneshot::Receiver<Result<usize, DiscoveryError>>;

/// Entries left alone for their status.
type Skipped = Vec<(String, HealthStatus)>;

/// A running supervisor.
struct Running {
    key: EntryKey,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The fields of an entry whose change means reconnecting.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EntryKey {
    service: String,
    url: String,
    version: String,
    name: String,
    auth: String,
}

impl EntryKey {
    fn of(entry: &Entry) -> Self {
        Self {
            service: entry.service.to_string(),
            url: entry.url.to_string(),
            version: entry.version.to_string(),
            name: entry.name.clone(),
            auth: serde_json::to_string(&entry.auth).unwrap_or_default(),
        }
    }
}

/// The writers' side: every server's part and supervisor, behind one lock.
#[derive(Default)]
struct State {
    parts: BTreeMap<String, Arc<ServerPart>>,
    running: HashMap<String, Running>,
}

/// What a [`Discovery`] and its background tasks share.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) http: reqwest::Client,
    /// Tool calls to `http://` servers, on kept connections (see `call_http`); `None` when
    /// [`DiscoveryBuilder::rmcp_only`] sends everything through rmcp's client.
    pub(crate) calls: Option<CallHttp>,
    pub(crate) tokens: Tokens,
    registry: RegistryClient,
    /// What readers see; replaced whole, never modified.
    index: RwLock<Arc<Index>>,
    /// The parts changed since `index` was built (set and cleared with `state` locked).
    stale: AtomicBool,
    state: Mutex<State>,
    events: broadcast::Sender<IndexEvent>,
    watcher: Mutex<Option<Box<dyn RegistryWatch>>>,
    /// Whose turn it is among a service's instances.
    turn: AtomicUsize,
    shutdown: CancellationToken,
}

impl Shared {
    /// The index of the parts as they are now: built here when a change was left for the next
    /// reader (see [`Shared::commit`]).
    fn index(&self) -> Arc<Index> {
        if self.stale.load(Ordering::Acquire) {
            let st = self.lock();
            if self.stale.load(Ordering::Acquire) {
                self.build(&st.parts);
            }
        }
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps in the index of `parts` and tells subscribers what changed. Called with the
    /// state locked, so indexes and events follow each other in order.
    ///
    /// With nobody subscribed, the build is left to the next reader: connecting to a hundred
    /// servers then builds the index once, not once per server (each build is linear in the
    /// number of tools).
    fn commit(&self, parts: &BTreeMap<String, Arc<ServerPart>>) {
        if self.events.receiver_count() == 0 {
            self.stale.store(true, Ordering::Release);
            return;
        }
        self.build(parts);
    }

    /// Builds and swaps in the index of `parts`, and tells subscribers what changed since the
    /// last one built. Called with the state locked.
    fn build(&self, parts: &BTreeMap<String, Arc<ServerPart>>) {
        self.stale.store(false, Ordering::Release);
        let next = Arc::new(Index::build(parts.clone()));
        let old = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *index, next.clone())
        };
        // Nobody listening (the usual case while connecting): no diff to compute.
        if self.events.receiver_count() == 0 {
            return;
        }
        for event in old.diff(&next) {
            // No subscribers is fine.
            let _ = self.events.send(event);
        }
    }

    /// Replaces the part of `meta`'s server, unless its supervisor was told to `stop` (it was
    /// removed or replaced meanwhile). `tools: None` keeps the tools it had.
    pub(crate) fn publish(
        &self,
        stop: &CancellationToken,
        meta: &Arc<ServerMeta>,
        signals: &Arc<Signals>,
        state: ServerState,
        link: Option<(Peer<RoleClient>, Option<Arc<Direct>>)>,
        tools: Option<Vec<Tool>>,
    ) {
        let mut st = self.lock();
        if stop.is_cancelled() {
            return;
        }
        let tools = tools.unwrap_or_else(|| {
            st.parts
                .get(&meta.id)
                .map(|p| p.bare_tools())
                .unwrap_or_default()
        });
        let part = ServerPart::new(meta.clone(), state, link, signals.clone(), &tools);
        st.parts.insert(meta.id.clone(), Arc::new(part));
        self.commit(&st.parts);
    }

    /// Makes the running supervisors match `entries`: starts the new ones, stops the removed,
    /// the `down` and the changed ones (a changed one is started again). Returns the first
    /// outcome of each started one, and the entries skipped for their status.
    fn reconcile(self: &Arc<Self>, entries: Vec<Entry>) -> (Vec<(String, FirstOutcome)>, Skipped) {
        let mut skipped = Vec::new();
        let mut wanted: BTreeMap<String, Entry> = BTreeMap::new();
        for entry in entries {
            if self.settings.statuses.contains(&entry.status) {
                wanted.insert(entry.id.to_string(), entry);
            } else {
                skipped.push((entry.id.to_string(), entry.status));
            }
        }
        let mut started = Vec::new();
        let mut st = self.lock();
        if self.shutdown.is_cancelled() {
            return (started, skipped);
        }
        let stale: Vec<String> = st
            .running
            .iter()
            .filter(|(id, r)| wanted.get(*id).is_none_or(|e| EntryKey::of(e) != r.key))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            if let Some(r) = st.running.remove(id) {
                tracing::info!(server = %id, "server removed or changed in the registry; dropping it");
                r.stop.cancel();
            }
            st.parts.remove(id);
        }
        for (id, entry) in wanted {
            if st.running.contains_key(&id) {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let meta = Arc::new(ServerMeta {
                id: id.clone(),
                service: entry.service.to_string(),
                name: entry.name.clone(),
                version: entry.version.to_string(),
                mcp_url: mcp_url(entry.url.as_str()),
                wants_auth: entry.auth.kind != AuthType::None,
            });
            let signals = Arc::new(Signals::default());
            let stop = self.shutdown.child_token();
            st.parts.insert(
                id.clone(),
                Arc::new(ServerPart::new(
                    meta.clone(),
                    ServerState::Connecting,
                    None,
                    signals.clone(),
                    &[],
                )),
            );
            let key = EntryKey::of(&entry);
            let supervisor = Supervisor {
                shared: self.clone(),
                entry,
                meta,
                signals,
                stop: stop.clone(),
            };
            let task = tokio::spawn(supervisor.run(tx));
            st.running.insert(id.clone(), Running { key, stop, task });
            started.push((id, rx));
        }
        self.commit(&st.parts);
        (started, skipped)
    }
}

/// `<url>/mcp`, with exactly one slash before `mcp`.
fn mcp_url(base: &str) -> String {
    format!("{}/mcp", base.trim_end_matches('/'))
}

/// A host's view of a fleet of MCP servers: which tools they offer, and a way to call them.
///
/// Cheap to clone; background work (sessions, reconnection, watching) stops when the last
/// clone is dropped or [`shutdown`](Self::shutdown) is called.
///
/// ```no_run
/// # async fn demo() -> Result<(), mcp_fleet_discovery::DiscoveryError> {
/// use mcp_fleet_discovery::Discovery;
///
/// let fleet = Discovery::builder("http://127.0.0.1:4000")
///     .tags(["products"])
///     .client_info("my-agent", "1.0.0")
///     .build()?;
/// let report = fleet.connect().await?;
/// for (server, error) in &report.failed {
///     eprintln!("{server}: {error}");
/// }
/// for tool in fleet.tools() {
///     println!("{} ({})", tool.qualified_name, tool.server_id);
/// }
/// let result = fleet
///     .call_tool("search_products", serde_json::json!({"query": "laptop"}))
///     .await?;
/// # let _ = result;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Discovery {
    shared: Arc<Shared>,
    _stop_on_drop: Arc<DropGuard>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("registry", &self.shared.registry.base_url())
            .field("tools", &self.shared.index().len())
            .finish_non_exhaustive()
    }
}

/// What a call resolved to.
struct Route {
    peer: Peer<RoleClient>,
    direct: Option<Arc<Direct>>,
    tool: Arc<DiscoveredTool>,
    server: Arc<ServerPart>,
}

impl Discovery {
    /// A builder for the registry at `registry_url` (e.g. `http://127.0.0.1:4000`).
    pub fn builder(registry_url: impl Into<String>) -> DiscoveryBuilder {
        DiscoveryBuilder {
            registry_url: registry_url.into(),
            settings: Settings {
                tags: Vec::new(),
                statuses: vec![
                    HealthStatus::Healthy,
                    HealthStatus::Degraded,
                    HealthStatus::Unknown,
                ],
                client_name: "mcp-fleet-discovery".into(),
                client_version: env!("CARGO_PKG_VERSION").into(),
                connect_timeout: Duration::from_secs(10),
                call_timeout: Duration::from_secs(60),
                keepalive: Some(Duration::from_secs(30)),
                backoff: Backoff::default(),
                watch: false,
                poll_interval: Duration::from_secs(10),
                policy: Arc::new(AddressPolicy::default()),
            },
            credentials: Credentials::default(),
            http: None,
            watcher: None,
            registry_token: None,
            rmcp_only: None,
            root_certificates: Vec::new(),
        }
    }

    /// Lists the matching servers in the registry (following `nextCursor`), connects to all
    /// of them concurrently, lists their tools and builds the index. Returns when every server
    /// has connected or failed (each within the connect timeout). Failing servers are reported,
    /// not fatal: they are retried in the background. Only an unreachable registry is an
    /// error. With [watching](DiscoveryBuilder::watch) on, the first call starts following
    /// the registry; later calls re-read it at once.
    pub async fn connect(&self) -> Result<ConnectReport, DiscoveryError> {
        let shared = &self.shared;
        if shared.shutdown.is_cancelled() {
            return Err(DiscoveryError::Shutdown);
        }
        let entries = shared
            .registry
            .list_all(&list_options(shared.settings.tags.clone()))
            .await?;
        let (started, mut skipped) = shared.reconcile(entries);
        let mut report = ConnectReport::default();
        let outcomes = join_all(started.into_iter().map(|(id, rx)| async move {
            let outcome = rx.await.unwrap_or(Err(DiscoveryError::Shutdown));
            (id, outcome)
        }))
        .await;
        for (id, outcome) in outcomes {
            match outcome {
                Ok(tools) => report.connected.push((id, tools)),
                Err(e) => report.failed.push((id, e)),
            }
        }
        skipped.sort_by(|a, b| a.0.cmp(&b.0));
        report.skipped = skipped;
        // The index is part of connecting: build it now (once), not on the first read.
        let _ = shared.index();
        if shared.settings.watch {
            let watcher = shared
                .watcher
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(watcher) = watcher {
                tokio::spawn(follow(shared.clone(), watcher));
            }
        }
        Ok(report)
    }

    /// The tool catalog, by server id, then qualified name, from memory (no round trip).
    pub fn tools(&self) -> Vec<DiscoveredTool> {
        self.shared
            .index()
            .tools()
            .iter()
            .map(|t| (**t).clone())
            .collect()
    }

    /// The tool `name` (see [`Discovery::call_tool`] for names): of a service, its first
    /// connected instance's.
    pub fn tool(&self, name: &str) -> Result<DiscoveredTool, DiscoveryError> {
        let index = self.shared.index();
        match index.resolve(name) {
            Resolved::Found(slots) => {
                let slot = slots
                    .iter()
                    .find(|s| s.server.state == ServerState::Ready)
                    .unwrap_or(&slots[0]);
                Ok((*slot.tool).clone())
            }
            Resolved::Ambiguous(candidates) => Err(DiscoveryError::AmbiguousTool {
                name: clip(name),
                candidates,
            }),
            Resolved::NotFound => Err(DiscoveryError::ToolNotFound {
                name: clip(name),
                known: index.len(),
            }),
        }
    }

    /// Every server discovery is following, in id order, with its connection state.
    pub fn servers(&self) -> Vec<ServerInfo> {
        self.shared
            .index()
            .servers
            .values()
            .map(|p| p.info())
            .collect()
    }

    /// A stream of index changes: first the whole index, then what changes.
    pub fn subscribe(&self) -> IndexUpdates {
        // Changes made before now are in the snapshot, not in the events.
        let _ = self.shared.index();
        let rx = self.shared.events.subscribe();
        let shared = Arc::downgrade(&self.shared);
        let snapshot = Arc::new(move || match shared.upgrade() {
            Some(s) => s.index().tools().iter().map(|t| (**t).clone()).collect(),
            None => Vec::new(),
        });
        IndexUpdates {
            first: Some(self.tools()),
            rx,
            snapshot,
        }
    }

    /// Where a call of `name` goes: one connected instance offering it, taking turns among a
    /// service's; `exact` takes `name` as an instance's own name only.
    fn route(&self, name: &str, exact: bool) -> Result<Route, DiscoveryError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(DiscoveryError::Shutdown);
        }
        let index = self.shared.index();
        let resolved = if exact {
            index.resolve_instance(name)
        } else {
            index.resolve(name)
        };
        let slot = match resolved {
            Resolved::Found([only]) => only,
            Resolved::Found(slots) => {
                let turn = self.shared.turn.fetch_add(1, Ordering::Relaxed);
                let ready = |s: &&Slot| matches!(s.server.state, ServerState::Ready);
                let (head, tail) = slots.split_at(turn % slots.len());
                tail.iter().chain(head).find(ready).unwrap_or(&slots[0])
            }
            Resolved::Ambiguous(candidates) => {
                return Err(DiscoveryError::AmbiguousTool {
                    name: clip(name),
                    candidates,
                });
            }
            Resolved::NotFound => {
                return Err(DiscoveryError::ToolNotFound {
                    name: clip(name),
                    known: index.len(),
                });
            }
        };
        match (&slot.server.state, &slot.server.peer) {
            (ServerState::Ready, Some(peer)) => Ok(Route {
                peer: peer.clone(),
                direct: slot.server.direct.clone(),
                tool: slot.tool.clone(),
                server: slot.server.clone(),
            }),
            (state, _) => Err(DiscoveryError::Unavailable {
                what: format!("tool {}", slot.tool.qualified_name),
                server: slot.server.meta.id.clone(),
                reason: match state {
                    ServerState::Unavailable { reason, .. } => reason.clone(),
                    _ => "still connecting".into(),
                },
            }),
        }
    }

    /// Calls tool `name` with `arguments` (a JSON object, or null for none), within the call
    /// timeout. `name` is the service's name of the tool (`<service>__<tool>`, as the gateway
    /// names it), an instance's own (`<serverId>__<tool>`), or the bare name when every server
    /// offering it is an instance of one service. A service's instances take turns, skipping
    /// disconnected ones.
    ///
    /// The lookup is a hash-map probe or two in the current index snapshot. A tool with no connected
    /// server fails at once with [`DiscoveryError::Unavailable`]. The result is the server's
    /// `CallToolResult`: a tool that ran and failed has `is_error: Some(true)`.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Value,
    ) -> Result<CallToolResult, DiscoveryError> {
        let arguments = object_or_null(name, arguments)?;
        self.call(name, false, arguments.map(Cow::Owned)).await
    }

    /// [`Discovery::call_tool`] with borrowed `arguments`, for a caller that may send the same
    /// call again (elsewhere, after [`DiscoveryError::not_sent`]): on `http://` sessions the
    /// call is written straight from them, without a copy.
    pub async fn call_tool_ref(
        &self,
        name: &str,
        arguments: &Value,
    ) -> Result<CallToolResult, DiscoveryError> {
        let arguments = match arguments {
            Value::Object(map) => Some(Cow::Borrowed(map)),
            Value::Null => None,
            other => return Err(invalid_arguments(name, other)),
        };
        self.call(name, false, arguments).await
    }

    /// [`Discovery::call_tool_ref`] on exactly the instance whose own name
    /// ([`DiscoveredTool::qualified_name`]) is `name`, never another: for callers that choose
    /// the instance themselves (the gateway routes by version and ejects outliers).
    pub async fn call_instance_tool_ref(
        &self,
        name: &str,
        arguments: &Value,
    ) -> Result<CallToolResult, DiscoveryError> {
        let arguments = match arguments {
            Value::Object(map) => Some(Cow::Borrowed(map)),
            Value::Null => None,
            other => return Err(invalid_arguments(name, other)),
        };
        self.call(name, true, arguments).await
    }

    async fn call(
        &self,
        name: &str,
        exact: bool,
        arguments: Option<Cow<'_, JsonObject>>,
    ) -> Result<CallToolResult, DiscoveryError> {
        let route = self.route(name, exact)?;
        let tool = route.tool.tool.name.clone();
        let limit = self.shared.settings.call_timeout;
        let what = || format!("tool {}", route.tool.qualified_name);
        let target = target(&route.server.meta);
        let called = match &route.direct {
            Some(direct) => tokio::time::timeout(limit, direct.call_tool(tool, arguments))
                .await
                .map(|r| r.map_err(|e| target.direct_error(&what(), e))),
            None => {
                let mut params = CallToolRequestParams::new(tool);
                if let Some(arguments) = arguments {
                    params = params.with_arguments(arguments.into_owned());
                }
                tokio::time::timeout(limit, route.peer.call_tool(params))
                    .await
                    .map(|r| r.map_err(|e| target.service_error(&what(), &e)))
            }
        };
        match called {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(error)) => {
                if matches!(
                    error,
                    DiscoveryError::Transport { .. } | DiscoveryError::Unreachable { .. }
                ) {
                    // Let the supervisor find out whether the session died.
                    route.server.signals.suspect.notify_one();
                }
                Err(error)
            }
            Err(_) => Err(target.timeout(&what(), limit)),
        }
    }

    /// Connected parts, and the others as failures.
    fn connected_parts(&self) -> (Vec<Arc<ServerPart>>, Vec<DiscoveryError>) {
        let mut ready = Vec::new();
        let mut failures = Vec::new();
        for part in self.shared.index().servers.values() {
            match (&part.state, &part.peer) {
                (ServerState::Ready, Some(_)) => ready.push(part.clone()),
                (state, _) => failures.push(DiscoveryError::Unavailable {
                    what: "listing".into(),
                    server: part.meta.id.clone(),
                    reason: match state {
                        ServerState::Unavailable { reason, .. } => reason.clone(),
                        _ => "still connecting".into(),
                    },
                }),
            }
        }
        (ready, failures)
    }

    /// Every connected server's resources, listed now (concurrently, within the call timeout).
    pub async fn resources(&self) -> Aggregate<DiscoveredResource> {
        let limit = self.shared.settings.call_timeout;
        self.gather(
            |caps| caps.resources.is_some(),
            move |part, peer| async move {
                let target = target(&part.meta);
                let listed = tokio::time::timeout(limit, peer.list_all_resources())
                    .await
                    .map_err(|_| target.timeout("resources/list", limit))?
                    .map_err(|e| target.service_error("resources/list", &e))?;
                Ok(listed
                    .into_iter()
                    .map(|resource| DiscoveredResource {
                        server_id: part.meta.id.clone(),
                        resource,
                    })
                    .collect())
            },
        )
        .await
    }

    /// Every connected server's prompts, listed now, under qualified names.
    pub async fn prompts(&self) -> Aggregate<DiscoveredPrompt> {
        let limit = self.shared.settings.call_timeout;
        self.gather(
            |caps| caps.prompts.is_some(),
            move |part, peer| async move {
                let target = target(&part.meta);
                let listed = tokio::time::timeout(limit, peer.list_all_prompts())
                    .await
                    .map_err(|_| target.timeout("prompts/list", limit))?
                    .map_err(|e| target.service_error("prompts/list", &e))?;
                Ok(listed
                    .into_iter()
                    .map(|prompt| DiscoveredPrompt {
                        qualified_name: qualified_name(&part.meta.id, &prompt.name),
                        server_id: part.meta.id.clone(),
                        prompt,
                    })
                    .collect())
            },
        )
        .await
    }

    async fn gather<T, F, Fut>(
        &self,
        offers: impl Fn(&rmcp::model::ServerCapabilities) -> bool,
        list: F,
    ) -> Aggregate<T>
    where
        F: Fn(Arc<ServerPart>, Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, DiscoveryError>>,
    {
        let (ready, mut failures) = self.connected_parts();
        let asked = ready.into_iter().filter_map(|part| {
            let peer = part.peer.clone()?;
            let offered = peer
                .peer_info()
                .is_some_and(|info| offers(&info.capabilities));
            offered.then(|| list(part, peer))
        });
        let mut items = Vec::new();
        for result in join_all(asked).await {
            match result {
                Ok(found) => items.extend(found),
                Err(e) => failures.push(e),
            }
        }
        Aggregate { items, failures }
    }

    /// Reads resource `uri` from server `server_id`.
    pub async fn read_resource(
        &self,
        server_id: &str,
        uri: &str,
    ) -> Result<ReadResourceResult, DiscoveryError> {
        let index = self.shared.index();
        let part = index
            .servers
            .get(server_id)
            .ok_or_else(|| DiscoveryError::ServerNotFound(clip(server_id)))?;
        let what = format!("resource {uri}");
        let peer = ready_peer(part, &what)?;
        let target = target(&part.meta);
        let limit = self.shared.settings.call_timeout;
        tokio::time::timeout(
            limit,
            peer.read_resource(ReadResourceRequestParams::new(uri)),
        )
        .await
        .map_err(|_| target.timeout(&what, limit))?
        .map_err(|e| target.service_error(&what, &e))
    }

    /// Gets prompt `name` (qualified, or bare when exactly one server offers it) with
    /// `arguments` (a JSON object, or null). Lists prompts first: they are not indexed.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Value,
    ) -> Result<GetPromptResult, DiscoveryError> {
        let arguments = object_or_null(name, arguments)?;
        let prompts = self.prompts().await.items;
        let chosen = match prompts.iter().find(|p| p.qualified_name == name) {
            Some(p) => p,
            None => {
                let mut bare: Vec<&DiscoveredPrompt> =
                    prompts.iter().filter(|p| p.prompt.name == name).collect();
                match bare.len() {
                    1 => bare.remove(0),
                    0 => {
                        return Err(DiscoveryError::ToolNotFound {
                            name: clip(name),
                            known: prompts.len(),
                        });
                    }
                    _ => {
                        let mut candidates: Vec<String> =
                            bare.iter().map(|p| p.qualified_name.clone()).collect();
                        candidates.sort();
                        return Err(DiscoveryError::AmbiguousTool {
                            name: clip(name),
                            candidates,
                        });
                    }
                }
            }
        };
        let index = self.shared.index();
        let part = index
            .servers
            .get(&chosen.server_id)
            .ok_or_else(|| DiscoveryError::ServerNotFound(clip(&chosen.server_id)))?;
        let what = format!("prompt {}", chosen.qualified_name);
        let peer = ready_peer(part, &what)?;
        let mut params = GetPromptRequestParams::new(chosen.prompt.name.clone());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let target = target(&part.meta);
        let limit = self.shared.settings.call_timeout;
        tokio::time::timeout(limit, peer.get_prompt(params))
            .await
            .map_err(|_| target.timeout(&what, limit))?
            .map_err(|e| target.service_error(&what, &e))
    }

    /// Stops following the registry, closes every session (telling each server) and waits
    /// for the background tasks, at most a few seconds. Later calls fail with
    /// [`DiscoveryError::Shutdown`].
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = {
            let mut st = self.shared.lock();
            self.shared.shutdown.cancel();
            let tasks = st.running.drain().map(|(_, r)| r.task).collect();
            st.parts.clear();
            self.shared.commit(&st.parts);
            tasks
        };
        let limit = self.shared.settings.ping_timeout() + Duration::from_secs(1);
        let _ = tokio::time::timeout(limit, join_all(tasks)).await;
    }
}

/// The session of a connected part.
fn ready_peer(part: &ServerPart, what: &str) -> Result<Peer<RoleClient>, DiscoveryError> {
    match (&part.state, &part.peer) {
        (ServerState::Ready, Some(peer)) => Ok(peer.clone()),
        (state, _) => Err(DiscoveryError::Unavailable {
            what: clip(what),
            server: part.meta.id.clone(),
            reason: match state {
                ServerState::Unavailable { reason, .. } => reason.clone(),
                _ => "still connecting".into(),
            },
        }),
    }
}

/// Tool arguments: an object, or nothing for null.
fn object_or_null(tool: &str, arguments: Value) -> Result<Option<JsonObject>, DiscoveryError> {
    match arguments {
        Value::Object(map) => Ok(Some(map)),
        Value::Null => Ok(None),
        other => Err(invalid_arguments(tool, &other)),
    }
}

/// `tool` was given `arguments` that are neither an object nor null.
fn invalid_arguments(tool: &str, arguments: &Value) -> DiscoveryError {
    let found = match arguments {
        Value::Object(_) => "an object",
        Value::Null => "null",
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
    };
    DiscoveryError::InvalidArguments {
        tool: clip(tool),
        found,
    }
}

/// Follows the registry with `watcher` until shutdown.
async fn follow(shared: Arc<Shared>, mut watcher: Box<dyn RegistryWatch>) {
    let shutdown = shared.shutdown.clone();
    loop {
        let next = tokio::select! {
            next = watcher.next() => next,
            () = shutdown.cancelled() => return,
        };
        match next {
            Ok(entries) => {
                // New servers connect in the background; their tools appear when they do.
                let _ = shared.reconcile(entries);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the registry; keeping the current servers");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_url_slash_mcp() {
        let cases = [
            ("http://127.0.0.1:4100", "http://127.0.0.1:4100/mcp"),
            ("http://127.0.0.1:4100/", "http://127.0.0.1:4100/mcp"),
            ("http://h/api", "http://h/api/mcp"),
        ];
        for (base, want) in cases {
            assert_eq!(mcp_url(base), want, "{base}");
        }
    }

    #[test]
    fn the_switch_reads_yes_and_no() {
        let read = |v: Option<&str>| super::rmcp_only_from(v.map(std::ffi::OsStr::new));
        for (value, on) in [
            (None, false),
            (Some(""), false),
            (Some("0"), false),
            (Some("off"), false),
            (Some("False"), false),
            (Some("1"), true),
            (Some("true"), true),
            (Some(" YES "), true),
            (Some("on"), true),
        ] {
            assert_eq!(read(value).ok(), Some(on), "{value:?}");
        }
        let e = read(Some("fast")).expect_err("neither yes nor no");
        assert!(matches!(e, DiscoveryError::Config(_)), "{e:?}");
        assert!(
            e.to_string().contains("MCP_FLEET_RMCP_ONLY=\"fast\""),
            "{e}"
        );
    }

    #[test]
    fn arguments_must_be_objects() {
        assert_eq!(object_or_null("t", Value::Null).expect("null"), None);
        assert!(
            object_or_null("t", serde_json::json!({"a": 1}))
                .expect("object")
                .is_some()
        );
        let e = object_or_null("t", serde_json::json!([1])).expect_err("array");
        assert_eq!(
            e.to_string(),
            "arguments of t must be a JSON object (or null), not an array"
        );
    }
}
