//! `mcp-fleet demo`: a registry on a throwaway SQLite file, sample MCP servers that announce
//! themselves on start-up (as the seed recommends; `mcp-fleet-announce`), the status page and
//! the MCP gateway.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mcp_fleet_sample_servers::Sample;

use crate::commands::gateway::{self, GatewayOptions};
use crate::commands::health::HealthArgs;
use crate::commands::security::SecurityArgs;
use crate::commands::serve;
use crate::shutdown;

/// Options of `demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Address of the registry (port 0 picks a free port).
    #[arg(long, env = "MCP_FLEET_LISTEN", default_value = "127.0.0.1:4000")]
    listen: SocketAddr,
    /// Keep the registry's database in this directory (default: a temporary directory,
    /// removed on exit).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the MCP gateway (default: port 4100, or a free port when --listen asks
    /// for one).
    #[arg(long, env = "MCP_FLEET_GATEWAY_LISTEN")]
    gateway_listen: Option<SocketAddr>,
    #[command(flatten)]
    health: HealthArgs,
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    gateway: GatewayOptions,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("mcp-fleet-demo-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let db = dir.join("registry.db");
    let database_url = format!("sqlite://{}", db.display());
    let health = args.health.config()?;
    let (listener, state) = serve::start(
        args.listen,
        &database_url,
        &serve::ReadCacheArgs::default(),
        &args.health,
        &args.security,
        Default::default(),
    )
    .await
    .context("cannot start the demo registry (is another one running? try --listen 127.0.0.1:0)")?;
    let registry_url = format!("http://{}", listener.local_addr()?);
    let shutdown = shutdown::on_signal();
    let worker = state.start_health_worker(health, shutdown.clone())?;
    // The registry stops after the samples have deregistered.
    let registry_stop = tokio_util::sync::CancellationToken::new();
    let registry = tokio::spawn(mcp_fleet_registry::serve(
        listener,
        state,
        registry_stop.clone(),
    ));

    let mut samples = Vec::new();
    let mut announcements = Vec::new();
    for sample in Sample::ALL {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind a sample server")?;
        let running = mcp_fleet_sample_servers::start(sample, listener, shutdown.child_token())
            .await
            .with_context(|| format!("cannot start sample server {sample}"))?;
        let announcement = running
            .announce(&registry_url)
            .await
            .with_context(|| format!("sample server {sample} could not register"))?;
        samples.push(running);
        announcements.push(announcement);
    }

    // Print only once every sample has had its first probe, so the hint below works at once.
    let client = mcp_fleet_discovery::RegistryClient::new(&registry_url)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match client.status().await {
            Ok(s) if s.summary.unknown == 0 => break,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }

    let gateway_listen = args.gateway_listen.unwrap_or_else(|| {
        let port = if args.listen.port() == 0 { 0 } else { 4100 };
        SocketAddr::new(args.listen.ip(), port)
    });
    let (gateway_url, gateway) = gateway::start(
        gateway_listen,
        args.gateway.config(&registry_url)?,
        shutdown.clone(),
    )
    .await
    .context("cannot start the demo gateway (try --gateway-listen 127.0.0.1:0)")?;

    println!("mcp-fleet demo is running (Ctrl-C to stop)");
    println!(
        "  registry        {registry_url}   (database {})",
        db.display()
    );
    println!("  status page     {registry_url}/");
    println!("  gateway         {gateway_url}/mcp   (every tool of the fleet, one endpoint)");
    for s in &samples {
        println!(
            "  {:<15} {}/mcp   tags: {}",
            s.sample.id(),
            s.base_url,
            s.sample.tags().join(",")
        );
    }
    println!("listening on {registry_url}");
    println!(
        "Try: curl '{registry_url}/servers?tags=products'   or   mcp-fleet ls --registry {registry_url}"
    );

    shutdown.cancelled().await;
    for a in announcements {
        if let Err(e) = a.shutdown().await {
            tracing::warn!("{e}");
        }
    }
    registry_stop.cancel();
    for s in samples {
        let _ = s.join().await;
    }
    gateway.await.context("gateway task failed")??;
    registry.await.context("registry task failed")??;
    worker.await.context("health worker failed")?;
    Ok(())
}
