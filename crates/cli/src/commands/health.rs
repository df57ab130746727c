//! Health-worker flags (shared by `serve` and `health-worker`) and `mcp-fleet health-worker`.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mcp_fleet_model::{AddressPolicy, PolicyMode};
use mcp_fleet_registry::{HealthConfig, parse_cidr};

use super::DatabaseArg;
use crate::shutdown;

/// Which addresses entries may point at, for the registry (registration, probes, alerts), the
/// gateway (upstreams, alerts) and `tools`/`call` (which add these to the registry's policy).
#[derive(Debug, Clone, Args)]
pub(crate) struct PolicyArgs {
    /// `strict` also denies loopback and private ranges (127/8, 10/8, 172.16/12, 192.168/16,
    /// 100.64/10, ::1, fc00::/7 …) except what --probe-allow-cidr names; `default` allows them.
    #[arg(
        long = "probe-policy",
        env = "MCP_FLEET_PROBE_POLICY",
        default_value = "default"
    )]
    pub(crate) probe_policy: PolicyMode,
    /// Never connect to (nor accept registrations of literal) addresses in this range;
    /// repeatable. Link-local (cloud metadata), 0.0.0.0/8 and multicast are always denied.
    #[arg(long = "probe-deny-cidr", env = "MCP_FLEET_PROBE_DENY_CIDR", value_delimiter = ',', value_parser = parse_cidr)]
    pub(crate) probe_deny: Vec<ipnet::IpNet>,
    /// Allow this range even inside a denied one (the more specific range wins); repeatable.
    #[arg(long = "probe-allow-cidr", env = "MCP_FLEET_PROBE_ALLOW_CIDR", value_delimiter = ',', value_parser = parse_cidr)]
    pub(crate) probe_allow: Vec<ipnet::IpNet>,
}

impl PolicyArgs {
    /// The policy these flags describe.
    pub(crate) fn policy(&self) -> AddressPolicy {
        AddressPolicy::new(
            self.probe_policy,
            self.probe_deny.clone(),
            self.probe_allow.clone(),
        )
    }
}

/// How entries are health-checked.
#[derive(Debug, Clone, Args)]
pub(crate) struct HealthArgs {
    /// Most probes in flight at once.
    #[arg(long, env = "MCP_FLEET_HEALTH_CONCURRENCY", default_value_t = 1024)]
    health_concurrency: usize,
    /// Time limit of one probe.
    #[arg(long, env = "MCP_FLEET_HEALTH_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    health_timeout: Duration,
    /// Time between two probes of one entry (jittered by ±10%).
    #[arg(long, env = "MCP_FLEET_HEALTH_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    health_interval: Duration,
    /// A successful probe slower than this marks the entry degraded.
    #[arg(long, env = "MCP_FLEET_DEGRADED_LATENCY", default_value = "1s", value_parser = humantime::parse_duration)]
    degraded_latency: Duration,
    /// Consecutive successes before an entry is healthy again.
    #[arg(long, env = "MCP_FLEET_HEALTH_RISE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    health_rise: u32,
    /// Consecutive failures before a healthy entry is degraded or down.
    #[arg(long, env = "MCP_FLEET_HEALTH_FALL", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    health_fall: u32,
    /// If more than this fraction of TTL entries (at least 3) expire at once, suspend TTL expiry
    /// and deregistration (the registry's own network is probably at fault).
    #[arg(long, env = "MCP_FLEET_EXPIRY_GUARD", default_value_t = 0.5)]
    expiry_guard: f64,
    /// Remove entries that stay down this long (`0s` = never).
    #[arg(long, env = "MCP_FLEET_DEREGISTER_AFTER", default_value = "72h", value_parser = humantime::parse_duration)]
    deregister_after: Duration,
    #[command(flatten)]
    pub(crate) policy: PolicyArgs,
    /// POST every status transition as JSON to this URL; repeatable.
    #[arg(long = "alert-webhook", env = "MCP_FLEET_ALERT_WEBHOOK", value_delimiter = ',', value_parser = parse_webhook)]
    alert_webhooks: Vec<url::Url>,
    /// This process's id among the replicas sharing the health work on one database (default: host name, pid and a random suffix).
    #[arg(long, env = "MCP_FLEET_REPLICA_ID")]
    replica_id: Option<String>,
    /// List each MCP-checked server's tools, prompts and resources this often, in its probe's session, on top of once per registration (`0s` = only at registration).
    #[arg(long, env = "MCP_FLEET_CATALOG_REFRESH", default_value = "10m", value_parser = humantime::parse_duration)]
    catalog_refresh: Duration,
    /// The same for servers checked over HTTP (healthUrl), which costs them an MCP session of its own (`0s` = never list them).
    #[arg(long, env = "MCP_FLEET_CATALOG_REFRESH_SLOW", default_value = "1h", value_parser = humantime::parse_duration)]
    catalog_refresh_slow: Duration,
    /// Never list servers' catalogs (GET /tools and GET /servers/{id}/tools stay empty).
    #[arg(long, env = "MCP_FLEET_NO_CATALOG")]
    no_catalog: bool,
}

fn parse_webhook(s: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if matches!(u.scheme(), "http" | "https") {
        Ok(u)
    } else {
        Err(format!("{s:?}: webhooks must be http or https"))
    }
}

impl HealthArgs {
    pub(crate) fn config(&self) -> anyhow::Result<HealthConfig> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.expiry_guard),
            "--expiry-guard must be between 0 and 1, got {}",
            self.expiry_guard
        );
        anyhow::ensure!(
            self.health_concurrency > 0,
            "--health-concurrency must be at least 1"
        );
        Ok(HealthConfig {
            concurrency: self.health_concurrency,
            timeout: self.health_timeout,
            interval: self.health_interval,
            degraded_latency: self.degraded_latency,
            rise: self.health_rise,
            fall: self.health_fall,
            expiry_guard: self.expiry_guard,
            deregister_after: self.deregister_after,
            deny: self.policy.probe_deny.clone(),
            allow: self.policy.probe_allow.clone(),
            policy: self.policy.probe_policy,
            webhooks: self.alert_webhooks.clone(),
            replica_id: self.replica_id.clone(),
            // A zero refresh still lists MCP servers once per registration; HTTP-checked ones
            // not at all.
            catalog_refresh: (!self.no_catalog).then_some(if self.catalog_refresh.is_zero() {
                Duration::MAX
            } else {
                self.catalog_refresh
            }),
            catalog_refresh_slow: (!self.no_catalog && !self.catalog_refresh_slow.is_zero())
                .then_some(self.catalog_refresh_slow),
            ..HealthConfig::default()
        })
    }
}

/// Raises the open-file soft limit to the hard limit, so that thousands of probe sockets fit.
pub(crate) fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

/// Options of `health-worker`.
#[derive(Debug, Args)]
pub(crate) struct HealthWorkerArgs {
    #[command(flatten)]
    database: DatabaseArg,
    #[command(flatten)]
    health: HealthArgs,
}

pub(crate) async fn run_worker(args: HealthWorkerArgs) -> anyhow::Result<()> {
    let config = args.health.config()?;
    raise_open_file_limit();
    let store = args.database.store().await?;
    let shutdown = shutdown::on_signal();
    let (_handle, task) = mcp_fleet_registry::spawn_health_worker(store, config, shutdown)?;
    println!(
        "health worker running against {}",
        mcp_fleet_store::redact(&args.database.database_url)
    );
    task.await.context("health worker failed")?;
    Ok(())
}
