//! HTTP wiring shared by the samples: the `/mcp` + `/health` router, running on a listener, announcing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::{Json, Router, routing::get};
use mcp_fleet_announce::{AnnounceError, Announcement, Announcer};
use rmcp::{
    ServerHandler,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Sample;
use crate::analytics::{AnalyticsServer, Events};
use crate::catalog::CatalogServer;
use crate::inventory::{InventoryServer, Stock};

/// Why a sample could not announce itself.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The registration could not be made or the registry refused it.
    #[error("announcing sample {id} to {registry_url}")]
    Announce {
        /// The sample's id.
        id: &'static str,
        /// The registry base URL used.
        registry_url: String,
        /// What the announcer reported.
        #[source]
        source: AnnounceError,
    },
}

/// Builds `sample`'s router; see [`Sample::router`].
pub(crate) fn router(sample: Sample, shutdown: CancellationToken) -> Router {
    // The default config accepts only loopback Host headers (localhost, 127.0.0.1, ::1),
    // which is what the samples are reached under in the demo and the tests.
    let config = StreamableHttpServerConfig::default().with_cancellation_token(shutdown);
    let mcp = match sample {
        Sample::Catalog => {
            Router::new().nest_service("/mcp", mcp_service(config, CatalogServer::new))
        }
        Sample::Inventory => {
            let stock = Stock::seeded();
            let make = move || InventoryServer::new(stock.clone());
            Router::new().nest_service("/mcp", mcp_service(config, make))
        }
        Sample::Analytics => {
            let events = Events::seeded();
            let make = move || AnalyticsServer::new(events.clone());
            Router::new().nest_service("/mcp", mcp_service(config, make))
        }
    };
    mcp.route("/health", get(health))
}

/// One MCP handler per session, built by `make`; state shared across sessions lives in what
/// `make` captures.
fn mcp_service<S, F>(
    config: StreamableHttpServerConfig,
    make: F,
) -> StreamableHttpService<S, LocalSessionManager>
where
    S: ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    StreamableHttpService::new(
        move || Ok(make()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// A sample server running on a listener.
#[derive(Debug)]
pub struct RunningSample {
    /// Which sample this is.
    pub sample: Sample,
    /// The address the listener is bound to.
    pub addr: SocketAddr,
    /// `http://IP:PORT`: no trailing slash, no `/mcp`. An unspecified bind address
    /// (`0.0.0.0`, `::`) is reported as the loopback address of the same family.
    pub base_url: String,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningSample {
    /// The MCP endpoint, `<base_url>/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url)
    }

    /// An announcer of [`Sample::registration`] for this server to the registry at
    /// `registry_url`, for a caller that sets a token or a TTL before [`Announcer::start`].
    pub fn announcer(&self, registry_url: &str) -> Result<Announcer, SampleError> {
        let body = self.sample.registration(&self.base_url);
        Announcer::new(registry_url, body).map_err(|source| self.error(registry_url, source))
    }

    /// Registers this server with the registry at `registry_url` and keeps it registered
    /// (heartbeats, registered again when forgotten) until the announcement is shut down or
    /// dropped. A registry not up yet is tried again at every heartbeat.
    pub async fn announce(&self, registry_url: &str) -> Result<Announcement, SampleError> {
        let announcement = self
            .announcer(registry_url)?
            .start()
            .await
            .map_err(|source| self.error(registry_url, source))?;
        tracing::info!(sample = %self.sample, registry_url, "sample announced");
        Ok(announcement)
    }

    fn error(&self, registry_url: &str, source: AnnounceError) -> SampleError {
        SampleError::Announce {
            id: self.sample.id(),
            registry_url: registry_url.to_owned(),
            source,
        }
    }

    /// Waits until the server has stopped (after its shutdown token is cancelled and open
    /// connections have closed).
    pub async fn join(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Serve `sample` on `listener` until `shutdown` is cancelled.
///
/// Returns once the server task is spawned; the listener is already bound, so the server
/// accepts connections as soon as this returns.
pub async fn start(
    sample: Sample,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<RunningSample> {
    let addr = listener.local_addr()?;
    let base_url = format!(
        "http://{}",
        SocketAddr::new(reachable_ip(addr.ip()), addr.port())
    );
    let app = sample.router(shutdown.child_token());
    let task = tokio::spawn(async move {
        // TCP_NODELAY: the end of an answer (rmcp's last SSE chunk) goes out at once instead of
        // waiting for the client's delayed ACK (figures in docs/perf.md).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    tracing::info!(sample = %sample, %base_url, "sample MCP server listening");
    Ok(RunningSample {
        sample,
        addr,
        base_url,
        task,
    })
}

/// A wildcard bind address is not something a client can connect to; use loopback instead.
fn reachable_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_become_loopback() {
        let cases = [
            ("0.0.0.0", "127.0.0.1"),
            ("::", "::1"),
            ("127.0.0.1", "127.0.0.1"),
            ("10.1.2.3", "10.1.2.3"),
        ];
        for (bound, want) in cases {
            let bound: IpAddr = bound.parse().expect("test literal");
            let want: IpAddr = want.parse().expect("test literal");
            assert_eq!(reachable_ip(bound), want, "{bound}");
        }
    }
}
