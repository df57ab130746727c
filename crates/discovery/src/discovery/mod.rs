//! [`Discovery`]: find a fleet's MCP servers by tag in the registry, connect to all of them at
//! once, keep one index of their tools under collision-free names, and call through it.

mod builder;
mod call;
mod fleet;
mod follow;
mod report;

pub(crate) use builder::Settings;
pub use builder::{DiscoveryBuilder, RMCP_ONLY_ENV, rmcp_only_from_env};
pub(crate) use fleet::Shared;
pub use report::{Aggregate, ConnectReport, DiscoveredPrompt, DiscoveredResource};

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use mcp_fleet_model::{AddressPolicy, HealthStatus};
use rmcp::RoleClient;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResult, ReadResourceRequestParams, ReadResourceResult,
};
use rmcp::service::Peer;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::DropGuard;

use call::{object_or_null, ready_peer};

use crate::auth::Credentials;
use crate::connection::target;
use crate::error::{DiscoveryError, clip};
use crate::events::IndexUpdates;
use crate::index::{DiscoveredTool, Resolved, ServerPart, ServerState, ServerSummary};
use crate::names::qualified_name;
use crate::supervisor::Backoff;
use crate::watch::list_options;
use follow::follow;

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
                lazy: false,
                report_tool_changes: true,
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
    /// the registry; later calls re-read it at once. With [`lazy`](DiscoveryBuilder::lazy) on,
    /// servers the registry has listed are indexed from its catalog and not connected
    /// ([`ConnectReport::idle`]).
    pub async fn connect(&self) -> Result<ConnectReport, DiscoveryError> {
        let shared = &self.shared;
        if shared.shutdown.is_cancelled() {
            return Err(DiscoveryError::Shutdown);
        }
        let entries = shared
            .registry
            .list_all(&list_options(shared.settings.tags.clone()))
            .await?;
        let catalogs = shared.catalogs(&entries).await;
        let fleet::Reconciled {
            started,
            mut idle,
            mut skipped,
        } = shared.reconcile(entries, catalogs);
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
        idle.sort_by(|a, b| a.0.cmp(&b.0));
        report.idle = idle;
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

    /// Reads the registry's catalog of server `server_id` again, if it is still idle (not
    /// connected: [`DiscoveryBuilder::lazy`]), and indexes what it lists now; for hosts that
    /// follow the registry's `catalog` events. Whether the index changed.
    pub async fn refresh_catalog(&self, server_id: &str) -> bool {
        let shared = &self.shared;
        let version = match shared.index().servers.get(server_id) {
            Some(p) if p.state == ServerState::Idle => p.meta.version.clone(),
            _ => return false,
        };
        let Ok(Some(entry)) = shared.registry.get(server_id).await else {
            return false;
        };
        if entry.version.to_string() != version {
            // Registered again at another version: following the registry replaces it.
            return false;
        }
        match shared.catalog_of(&entry).await {
            Some(tools) => shared.relist_idle(server_id, &tools),
            None => false,
        }
    }

    /// The tool catalog, by server id, then qualified name, from memory (no round trip). A
    /// server's listing past its `ttlMs` (2026-07-28) is given once more while it is re-listed.
    pub fn tools(&self) -> Vec<DiscoveredTool> {
        let index = self.shared.index();
        for part in index.servers.values() {
            part.signals.touch();
        }
        index.tools().iter().map(|t| (**t).clone()).collect()
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
    pub fn servers(&self) -> Vec<ServerSummary> {
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

    /// Connected parts, and the others as failures.
    fn connected_parts(&self) -> (Vec<Arc<ServerPart>>, Vec<DiscoveryError>) {
        let mut ready = Vec::new();
        let mut failures = Vec::new();
        for part in self.shared.index().servers.values() {
            match (&part.state, &part.peer) {
                (ServerState::Ready, Some(_)) => ready.push(part.clone()),
                // Not connected by choice: not asked, and no failure.
                (ServerState::Idle, _) => {}
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
