//! The gateway's settings, with their defaults.

use std::time::Duration;

use mcp_fleet_discovery::{AddressPolicy, Backoff, UpstreamCredentials};

use crate::session_id::SessionKey;

/// How the gateway names the tools it offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolNames {
    /// Always `<service>__<tool>`: adding a service never renames another's tools (default).
    #[default]
    Qualified,
    /// The bare tool name when exactly one service offers it, else qualified. Names change
    /// when a second service starts offering a tool: only for hosts that need short names.
    BareWhenUnique,
}

/// What a listing does when some upstreams cannot be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// List what the reachable upstreams offer and withhold the rest until they are back
    /// (default): one broken server never breaks the gateway for everyone.
    #[default]
    FailOpen,
    /// Fail the listing while any matching upstream is unavailable.
    FailClosed,
}

/// Outlier ejection, as Envoy's: an instance that fails `consecutive_errors` calls in a row is
/// taken out of routing for `base_ejection` times the number of its ejections so far (at most
/// `max_ejection`); never more than `max_ejected_percent` of a service's instances at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutlierConfig {
    /// Consecutive upstream errors that eject an instance (default 5; 0 = never eject).
    pub consecutive_errors: u32,
    /// First ejection's length (default 30 s).
    pub base_ejection: Duration,
    /// Longest ejection (default 5 min).
    pub max_ejection: Duration,
    /// Largest share of a service's instances ejected at once, in percent (default 50).
    pub max_ejected_percent: u8,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_errors: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    }
}

/// What one client may cost the gateway's listener: deadlines, sizes and counts past which a
/// slow, oversized or too numerous client is refused. Defaults as the registry's (`serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Largest request head (request line and headers), in bytes; past it the answer is `431`
    /// and the connection is closed (default 16 KiB).
    pub max_header_bytes: usize,
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may sit idle; then the connection is closed (slowloris; default 10 s).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body once its headers are in; then the
    /// answer is a `408` and the connection is closed (default 30 s). Call time does not count.
    pub request_timeout: Duration,
    /// Open client connections at most; one more is answered `503` and closed (default 4096).
    pub max_connections: usize,
    /// Largest request body, in bytes; a larger one is answered `413` (default 16 MiB, the
    /// largest message rmcp's client accepts).
    pub max_body_bytes: usize,
    /// Request-body bytes held at once across all requests, from the first byte read until the
    /// answer is sent (default 64 MiB). A request waits for room within `request_timeout`,
    /// then is answered `503`.
    pub max_inflight_body_bytes: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_body_bytes: 16 * 1024 * 1024,
            max_inflight_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The registry's base URL.
    pub registry_url: String,
    /// Bearer token for the registry: needs `routing:write` on the services whose canaries it
    /// may roll back (and `servers:read` when the registry protects reads).
    pub registry_token: Option<String>,
    /// Only servers having any of these tags (all when empty).
    pub tags: Vec<String>,
    /// How tools are named.
    pub tool_names: ToolNames,
    /// Listing behaviour when upstreams fail.
    pub failure_mode: FailureMode,
    /// Longest time a call may take, upstream included (default 60 s).
    pub call_timeout: Duration,
    /// Longest time to connect to an upstream (default 10 s).
    pub connect_timeout: Duration,
    /// Quiet time that ends a burst of upstream changes before clients are told once
    /// (default 200 ms).
    pub debounce: Duration,
    /// How often routing policies are read again from the registry (default 5 s).
    pub policy_refresh: Duration,
    /// Outlier ejection.
    pub outlier: OutlierConfig,
    /// URLs that receive a JSON POST for each automatic rollback.
    pub alert_webhooks: Vec<String>,
    /// How often this replica reports its canary counts to the registry, whose answer (every
    /// replica's sum) its canaries are judged on (default 1 s). `None`: judged on this
    /// gateway's own calls only, with no reports.
    pub canary_report_interval: Option<Duration>,
    /// This replica's name in canary reports: unique among the replicas (default `gateway-`
    /// and 8 random hex digits, new at each start).
    pub replica_id: String,
    /// Pool reqwest's connections to upstreams too (default off). Every POST to an `http://`
    /// upstream (tool calls, listings, session set-up) already reuses connections, on the
    /// discovery library's own client that does not wait for delayed ACKs (Linux); what is left
    /// to reqwest is `https://` upstreams and, on other platforms, every upstream. There, only
    /// upstreams that set `TCP_NODELAY` answer a reused connection at once: others stall each
    /// request ~40 ms (Nagle's algorithm).
    pub upstream_keepalive: bool,
    /// `Host` header values the MCP endpoint accepts besides loopback names (empty: loopback
    /// only, rmcp's default protection against DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// What one client may cost the listener.
    pub limits: ServeLimits,
    /// Route everything through rmcp's own server and client: no `tools/call` answered in front
    /// of rmcp's session machinery (`fast_call`), and upstreams reached through rmcp's client
    /// only ([`DiscoveryBuilder::rmcp_only`](mcp_fleet_discovery::DiscoveryBuilder::rmcp_only)).
    /// Same answers, more CPU per call. `None` (default): as `MCP_FLEET_RMCP_ONLY` says
    /// ([`RMCP_ONLY_ENV`](mcp_fleet_discovery::RMCP_ONLY_ENV)), off when unset.
    pub rmcp_only: Option<bool>,
    /// Roots trusted for `https://` upstreams besides the platform's (a private CA; default:
    /// none).
    pub upstream_root_certificates: Vec<reqwest::Certificate>,
    /// Addresses upstreams (and alert webhooks) may not be at, added to the registry's own
    /// policy (`GET /address-policy`), which the gateway reads at start (default: nothing added).
    pub address_policy: AddressPolicy,
    /// Bearer tokens and OAuth 2.0 clients for upstreams whose entries ask for them, by server
    /// id or service (default: none).
    pub upstream_credentials: UpstreamCredentials,
    /// Delays between attempts to reach a registry that did not answer at start (default
    /// 500 ms doubling to 30 s, with jitter).
    pub registry_backoff: Backoff,
    /// The key sealing session ids, shared by the gateway's replicas so that any of them
    /// answers any session (default: a random key per process; sessions then live and die
    /// with it).
    pub session_key: Option<SessionKey>,
    /// How long a session id is honoured after `initialize` (default 24 h).
    pub session_ttl: Duration,
    /// How long clients of sessionless revisions (2026-07-28) may treat a listing as fresh:
    /// the `ttlMs` of `tools/list`, `prompts/list` and `resources/list` (default 10 s).
    pub list_ttl: Duration,
    /// Withhold an upstream tool whose content hash differs from the one the registry trusts
    /// for its service, version and name (`GET /services/{service}/tools/pins`) until an
    /// operator accepts it (`POST /services/{service}/tools/accept`); a tool without a pin is
    /// offered (default off). Pins are read again on the registry's `catalog` and
    /// `tool-changed` events and every `policy_refresh`.
    pub pin_tool_hashes: bool,
    /// Serve `tools/list` from the registry's catalog and connect to an upstream only when one
    /// of its tools is first called ([`DiscoveryBuilder::lazy`](mcp_fleet_discovery::DiscoveryBuilder::lazy);
    /// default off). Upstreams the registry has not listed are connected at once.
    pub catalog_tools_list: bool,
}

impl GatewayConfig {
    /// Defaults for a gateway in front of the registry at `registry_url`.
    pub fn new(registry_url: impl Into<String>) -> Self {
        Self {
            registry_url: registry_url.into(),
            registry_token: None,
            tags: Vec::new(),
            tool_names: ToolNames::default(),
            failure_mode: FailureMode::default(),
            call_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            debounce: Duration::from_millis(200),
            policy_refresh: Duration::from_secs(5),
            outlier: OutlierConfig::default(),
            alert_webhooks: Vec::new(),
            canary_report_interval: Some(Duration::from_secs(1)),
            replica_id: format!("gateway-{:08x}", fastrand::u32(..)),
            upstream_keepalive: false,
            allowed_hosts: Vec::new(),
            limits: ServeLimits::default(),
            rmcp_only: None,
            upstream_root_certificates: Vec::new(),
            address_policy: AddressPolicy::default(),
            upstream_credentials: UpstreamCredentials::default(),
            registry_backoff: Backoff::default(),
            session_key: None,
            session_ttl: Duration::from_secs(24 * 3600),
            list_ttl: Duration::from_secs(10),
            pin_tool_hashes: false,
            catalog_tools_list: false,
        }
    }
}
