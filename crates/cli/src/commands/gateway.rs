//! `gateway`: the aggregating MCP gateway in front of the fleet.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use mcp_fleet_gateway::{
    Gateway, GatewayConfig, OutlierConfig, ServeLimits, SessionKey, ToolNames,
};

use crate::commands::client::RegistryArg;
use crate::commands::credentials::CredentialArgs;
use crate::commands::health::PolicyArgs;
use crate::shutdown;

/// How the gateway names tools (`--tool-names`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ToolNamesArg {
    /// Always `<service>__<tool>`: names never change as the fleet grows.
    Qualified,
    /// The bare name when exactly one service offers the tool.
    BareWhenUnique,
}

/// Options of the gateway (also used by `demo`).
#[derive(Debug, Args)]
pub(crate) struct GatewayOptions {
    /// Only servers having any of these tags (comma-separated; default: all).
    #[arg(
        long = "gateway-tags",
        env = "MCP_FLEET_GATEWAY_TAGS",
        value_delimiter = ','
    )]
    gateway_tags: Vec<String>,
    /// How tools are named.
    #[arg(
        long,
        env = "MCP_FLEET_GATEWAY_TOOL_NAMES",
        value_enum,
        default_value = "qualified"
    )]
    tool_names: ToolNamesArg,
    /// Longest time a forwarded call may take.
    #[arg(long, env = "MCP_FLEET_GATEWAY_CALL_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    call_timeout: Duration,
    /// Consecutive upstream errors that eject an instance from routing (0 = never).
    #[arg(long, env = "MCP_FLEET_GATEWAY_EJECT_AFTER", default_value_t = 5)]
    eject_after: u32,
    /// First ejection's length; each further ejection of the instance lasts this much longer.
    #[arg(long, env = "MCP_FLEET_GATEWAY_EJECTION", default_value = "30s", value_parser = humantime::parse_duration)]
    ejection: Duration,
    /// URL that receives a JSON POST for each automatic rollback (repeatable).
    #[arg(
        long = "gateway-alert-webhook",
        env = "MCP_FLEET_GATEWAY_ALERT_WEBHOOK",
        value_delimiter = ','
    )]
    gateway_alert_webhooks: Vec<String>,
    /// How often this gateway reports its canary counts to the registry, which sums every
    /// replica's: canaries are judged, and rolled back once, on the whole cluster's calls.
    /// 0 = report nothing and judge on this gateway's own calls.
    #[arg(long, env = "MCP_FLEET_GATEWAY_CANARY_REPORT_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    canary_report_interval: Duration,
    /// Keep connections to upstreams open for listings and session set-up too (tool calls to
    /// http:// upstreams always do): only for upstreams that set TCP_NODELAY (others stall
    /// each such request ~40 ms on delayed ACKs).
    #[arg(long, env = "MCP_FLEET_GATEWAY_UPSTREAM_KEEPALIVE")]
    upstream_keepalive: bool,
    /// Route everything through rmcp's own server and client, without the gateway's and the
    /// discovery library's fast paths: same answers, more CPU per call.
    #[arg(long, env = "MCP_FLEET_RMCP_ONLY", value_parser = clap::builder::BoolishValueParser::new())]
    rmcp_only: bool,
    /// `Host` header value accepted besides loopback names (repeatable), e.g. the name the
    /// gateway is reached under behind a load balancer.
    #[arg(
        long = "allowed-host",
        env = "MCP_FLEET_GATEWAY_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
    /// How long a client may take to send a request's headers, or keep a connection idle.
    #[arg(long, env = "MCP_FLEET_GATEWAY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    header_read_timeout: Duration,
    /// How long a client may take to send a request's body once its headers are in (then 408).
    #[arg(long, env = "MCP_FLEET_GATEWAY_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,
    /// Largest request head (request line and headers), in bytes (then 431).
    #[arg(long, env = "MCP_FLEET_GATEWAY_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Open client connections at most; one more is answered 503 and closed.
    #[arg(long, env = "MCP_FLEET_GATEWAY_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Largest request body, in bytes (then 413).
    #[arg(long, env = "MCP_FLEET_GATEWAY_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_body_bytes: u32,
    /// Request-body bytes held at once across requests, until their answers are sent; a
    /// request finding no room within --request-timeout is answered 503.
    #[arg(long, env = "MCP_FLEET_GATEWAY_MAX_INFLIGHT_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_inflight_body_bytes: usize,
    /// Key sealing session ids, 32 bytes in base64 (`openssl rand -base64 32`): the same on
    /// every replica, so that any answers any session (default: random per process).
    #[arg(
        long,
        env = "MCP_FLEET_SESSION_KEY",
        hide_env_values = true,
        conflicts_with = "session_key_file"
    )]
    session_key: Option<SessionKey>,
    /// File holding the --session-key (e.g. a mounted Kubernetes Secret).
    #[arg(long, env = "MCP_FLEET_SESSION_KEY_FILE")]
    session_key_file: Option<std::path::PathBuf>,
    /// How long a session id is honoured after the session opened.
    #[arg(long, env = "MCP_FLEET_SESSION_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    session_ttl: Duration,
    /// How long 2026-07-28 clients may cache a listing (its ttlMs).
    #[arg(long, env = "MCP_FLEET_GATEWAY_LIST_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    list_ttl: Duration,
    /// Withhold an upstream tool whose definition differs from the one the registry trusts for
    /// its service and version (a description or schema changed in place) until an operator
    /// accepts it with `mcp-fleet tools accept SERVICE TOOL`; calls of it get an error saying so.
    #[arg(long, env = "MCP_FLEET_GATEWAY_PIN_TOOL_HASHES", value_parser = clap::builder::BoolishValueParser::new())]
    pin_tool_hashes: bool,
    /// Serve tools/list from the registry's catalog and connect to an upstream only when one of
    /// its tools is first called (upstreams the registry has not listed are connected at once).
    #[arg(long, env = "MCP_FLEET_GATEWAY_CATALOG_TOOLS_LIST", value_parser = clap::builder::BoolishValueParser::new())]
    catalog_tools_list: bool,
}

/// Reads `--replica-id`.
fn replica_id(s: &str) -> Result<String, String> {
    mcp_fleet_model::parse_replica(s)
}

impl GatewayOptions {
    pub(crate) fn config(&self, registry: &str) -> anyhow::Result<GatewayConfig> {
        let mut config = GatewayConfig::new(registry);
        config.session_key = match &self.session_key_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --session-key-file {}", path.display()))?
                    .parse::<SessionKey>()
                    .with_context(|| format!("--session-key-file {}", path.display()))?,
            ),
            None => self.session_key.clone(),
        };
        config.session_ttl = self.session_ttl;
        config.list_ttl = self.list_ttl;
        config.tags = self.gateway_tags.clone();
        config.tool_names = match self.tool_names {
            ToolNamesArg::Qualified => ToolNames::Qualified,
            ToolNamesArg::BareWhenUnique => ToolNames::BareWhenUnique,
        };
        config.call_timeout = self.call_timeout;
        config.outlier = OutlierConfig {
            consecutive_errors: self.eject_after,
            base_ejection: self.ejection,
            ..OutlierConfig::default()
        };
        config.alert_webhooks = self.gateway_alert_webhooks.clone();
        config.canary_report_interval =
            (!self.canary_report_interval.is_zero()).then_some(self.canary_report_interval);
        config.allowed_hosts = self.allowed_hosts.clone();
        config.upstream_keepalive = self.upstream_keepalive;
        config.rmcp_only = Some(self.rmcp_only);
        config.pin_tool_hashes = self.pin_tool_hashes;
        config.catalog_tools_list = self.catalog_tools_list;
        config.limits = ServeLimits {
            max_header_bytes: self.max_header_bytes,
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections as usize,
            max_body_bytes: self.max_body_bytes as usize,
            max_inflight_body_bytes: self.max_inflight_body_bytes,
        };
        Ok(config)
    }
}

/// Options of `gateway`.
#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// The registry (its token needs `routing:write` on the services it may roll back).
    #[command(flatten)]
    registry: RegistryArg,
    /// Address to listen on (port 0 picks a free port).
    #[arg(
        long,
        env = "MCP_FLEET_GATEWAY_LISTEN",
        default_value = "127.0.0.1:4100"
    )]
    listen: SocketAddr,
    #[command(flatten)]
    options: GatewayOptions,
    /// This replica's name in canary reports, unique among the gateway replicas (e.g. the pod
    /// name; default: gateway- and 8 random hex digits, new at each start).
    #[arg(long, env = "MCP_FLEET_GATEWAY_REPLICA_ID", value_parser = replica_id)]
    replica_id: Option<String>,
    /// Added to the registry's own address policy, which the gateway reads at start.
    #[command(flatten)]
    policy: PolicyArgs,
    /// Credentials for upstreams whose entry asks for them.
    #[command(flatten)]
    credentials: CredentialArgs,
}

/// Starts a gateway on `listen`; returns its base URL and the task serving it.
pub(crate) async fn start(
    listen: SocketAddr,
    config: GatewayConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<(String, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let registry = config.registry_url.clone();
    let gateway = Gateway::start(config)
        .await
        .with_context(|| format!("cannot start the gateway in front of {registry}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((url, tokio::spawn(gateway.serve(listener, shutdown))))
}

pub(crate) async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let shutdown = shutdown::on_signal();
    let mut config = args.options.config(args.registry.url())?;
    if let Some(id) = args.replica_id {
        config.replica_id = id;
    }
    config.registry_token = args.registry.token().map(str::to_owned);
    config.address_policy = args.policy.policy();
    config.upstream_credentials = args.credentials.credentials()?;
    let (url, task) = start(args.listen, config, shutdown).await?;
    tracing::info!(mcp = %format!("{url}/mcp"), registry = %args.registry.url(), "gateway listening");
    println!("gateway listening on {url}/mcp (metrics {url}/metrics)");
    task.await.context("gateway task failed")??;
    Ok(())
}
