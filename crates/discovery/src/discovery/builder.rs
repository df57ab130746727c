//! [`DiscoveryBuilder`]: the settings of a [`Discovery`](super::Discovery), fixed when it is built.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mcp_fleet_model::{AddressPolicy, HealthStatus};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use super::Discovery;
use super::fleet::{Shared, State};
use crate::auth::{BearerTokenFn, ClientCredentials, Credentials, Tokens};
use crate::credentials::{CredentialKey, UpstreamCredentials};
use crate::error::{DiscoveryError, clip};
use crate::index::Index;
use crate::registry_client::RegistryClient;
use crate::supervisor::Backoff;
use crate::watch::{FeedWatch, RegistryWatch};

/// How many index events a slow subscriber may fall behind before it is sent a reset.
pub(super) const EVENT_BUFFER: usize = 1024;

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
    /// Index servers from the registry's catalog, connect on first call.
    pub(crate) lazy: bool,
    /// Ask the registry to list a server again when its tool list is seen to change.
    pub(crate) report_tool_changes: bool,
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
    pub(super) registry_url: String,
    pub(super) settings: Settings,
    pub(super) credentials: Credentials,
    pub(super) http: Option<reqwest::Client>,
    pub(super) watcher: Option<Box<dyn RegistryWatch>>,
    pub(super) registry_token: Option<String>,
    /// `None`: as [`RMCP_ONLY_ENV`] says.
    pub(super) rmcp_only: Option<bool>,
    pub(super) root_certificates: Vec<reqwest::Certificate>,
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

    /// Builds the index from the registry's tool catalog (`GET /servers/{id}/tools`, what its
    /// health worker listed) and connects to a server only when one of its tools is first
    /// called (default off). Connecting then costs in the servers used, not in the size of the
    /// fleet. A server the registry has not listed yet, or listed at another version, is
    /// connected at once, as without this. Once connected, a server is followed as any other
    /// (its own listing replaces the catalog's). The prompts and resources of servers not
    /// connected yet are not gathered.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.settings.lazy = lazy;
        self
    }

    /// Whether to tell the registry when a connected server's tools change (default on): on
    /// `notifications/tools/list_changed`, once the new listing differs from the last, the
    /// library sends `POST /servers/{id}/tools/refresh`, so the registry's catalog (`GET /tools`,
    /// lazy indexes, pins) follows at once rather than at its next refresh. Best effort: a
    /// refusal (the registry runs no health worker, the server was just refreshed) is logged at
    /// debug and changes nothing here.
    pub fn report_tool_changes(mut self, report: bool) -> Self {
        self.settings.report_tool_changes = report;
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
            // event stream shortly after the answer, and reusing such a connection stalls on
            // TCP delayed ACK (docs/perf.md). No redirects: an MCP endpoint has no business
            // moving.
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
        let (published, _) = watch::channel(0);
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
            published,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
