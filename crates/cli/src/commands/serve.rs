//! `mcp-fleet serve`: the registry's HTTP API over SQLite or PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mcp_fleet_model::official::RegistryNamespace;
use mcp_fleet_registry::{AppState, Config, DEFAULT_MAX_BODY_BYTES, DEFAULT_READ_CACHE_MAX_BYTES};

use crate::commands::health::{HealthArgs, raise_open_file_limit};
use crate::commands::security::SecurityArgs;
use crate::commands::{DatabaseArg, open_database};
use crate::shutdown;

/// Options of `serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MCP_FLEET_LISTEN", default_value = "127.0.0.1:4000")]
    pub(crate) listen: SocketAddr,
    #[command(flatten)]
    pub(crate) database: DatabaseArg,
    #[command(flatten)]
    pub(crate) read_cache: ReadCacheArgs,
    /// Do not run the health worker in this process (run `mcp-fleet health-worker` instead).
    #[arg(long, env = "MCP_FLEET_NO_HEALTH_WORKER")]
    pub(crate) no_health_worker: bool,
    #[command(flatten)]
    pub(crate) health: HealthArgs,
    #[command(flatten)]
    pub(crate) security: SecurityArgs,
    /// Reverse-DNS namespace of the server names the official MCP Registry API (`/v0.1/…`) serves: `<namespace>/<service>`.
    #[arg(long, env = "MCP_FLEET_REGISTRY_NAMESPACE", default_value = mcp_fleet_model::official::DEFAULT_REGISTRY_NAMESPACE)]
    pub(crate) registry_namespace: RegistryNamespace,
}

/// The read cache's flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReadCacheArgs {
    /// How long listings and /status may be answered from memory; writes through this process
    /// (or announced by PostgreSQL) show at once, others after at most this long. `0s` disables it.
    #[arg(long, env = "MCP_FLEET_READ_CACHE_TTL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub(crate) read_cache_ttl: Duration,
    /// Most bytes the read cache holds (answers, and entries kept for database outages).
    #[arg(long, env = "MCP_FLEET_READ_CACHE_MAX_BYTES", default_value_t = DEFAULT_READ_CACHE_MAX_BYTES)]
    pub(crate) read_cache_max_bytes: usize,
}

impl Default for ReadCacheArgs {
    fn default() -> Self {
        Self {
            read_cache_ttl: Duration::from_secs(1),
            read_cache_max_bytes: DEFAULT_READ_CACHE_MAX_BYTES,
        }
    }
}

/// Opens the store and binds the listener, failing with a message that says which went wrong.
pub(crate) async fn start(
    listen: SocketAddr,
    database_url: &str,
    read_cache: &ReadCacheArgs,
    health: &HealthArgs,
    security: &SecurityArgs,
    registry_namespace: RegistryNamespace,
) -> anyhow::Result<(tokio::net::TcpListener, AppState)> {
    let auth = security.auth()?;
    let store = open_database(database_url).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let config = Config {
        read_cache_ttl: read_cache.read_cache_ttl,
        read_cache_max_bytes: read_cache.read_cache_max_bytes,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        probe_deny: health.policy.probe_deny.clone(),
        probe_allow: health.policy.probe_allow.clone(),
        probe_policy: health.policy.probe_policy,
        auth,
        limits: security.limits(),
        registry_namespace,
    };
    Ok((listener, AppState::new(store, config)))
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let health = args.health.config()?;
    raise_open_file_limit();
    let _claim = mcp_fleet_store::claim_for_serving(&args.database.database_url)?;
    let (listener, state) = start(
        args.listen,
        &args.database.database_url,
        &args.read_cache,
        &args.health,
        &args.security,
        args.registry_namespace,
    )
    .await?;
    let open = match state.writes_are_open().await {
        Ok(open) => open,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether writes are open");
            false
        }
    };
    let addr = listener.local_addr()?;
    let shutdown = shutdown::on_signal();
    let worker = if args.no_health_worker {
        tracing::info!("no health worker in this process (--no-health-worker)");
        None
    } else {
        Some(state.start_health_worker(health, shutdown.clone())?)
    };
    tracing::info!(
        database = %mcp_fleet_store::redact(&args.database.database_url),
        "registry listening on http://{addr}"
    );
    // A line on stdout that scripts (and tests) can read the chosen port from.
    println!("listening on http://{addr}");
    if open {
        tracing::warn!(
            "writes are open (no tokens yet, or --auth none): anyone who reaches this registry \
             can register or replace servers; create a token with `mcp-fleet token create` or \
             start with --auth token"
        );
    }
    mcp_fleet_registry::serve(listener, state, shutdown)
        .await
        .context("server failed")?;
    if let Some(worker) = worker {
        worker.await.context("health worker failed")?;
    }
    tracing::info!("stopped");
    Ok(())
}
