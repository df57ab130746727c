//! The fleet's shared state: the servers' parts and supervisors, the index readers see, and
//! reconciling them with the registry's entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use mcp_fleet_model::{AuthType, Entry, HealthStatus};
use rmcp::RoleClient;
use rmcp::model::Tool;
use rmcp::service::Peer;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Settings;
use crate::auth::Tokens;
use crate::call_http::CallHttp;
use crate::direct::Direct;
use crate::error::DiscoveryError;
use crate::events::IndexEvent;
use crate::index::{Index, ServerMeta, ServerPart, ServerState, Signals};
use crate::registry_client::RegistryClient;
use crate::supervisor::Supervisor;
use crate::watch::RegistryWatch;

/// A supervisor's first connection attempt: the number of tools, or why it failed.
pub(super) type FirstOutcome = oneshot::Receiver<Result<usize, DiscoveryError>>;

/// Entries left alone for their status.
pub(super) type Skipped = Vec<(String, HealthStatus)>;

/// What [`Shared::reconcile`] started.
#[derive(Default)]
pub(super) struct Reconciled {
    /// Supervisors connecting now, with their first outcome.
    pub(super) started: Vec<(String, FirstOutcome)>,
    /// Servers indexed from the registry's catalog, not connected (lazy), with their tool count.
    pub(super) idle: Vec<(String, usize)>,
    /// Entries left alone for their status.
    pub(super) skipped: Skipped,
}

/// The registry's listing of each server, by id, for those it has listed at their current
/// version (see [`Shared::catalogs`]).
pub(super) type Catalogs = HashMap<String, Vec<Tool>>;

/// How many catalogs are read from the registry at once.
const CATALOG_READS: usize = 16;

/// A running supervisor.
pub(super) struct Running {
    pub(super) key: EntryKey,
    pub(super) stop: CancellationToken,
    pub(super) task: JoinHandle<()>,
}

/// The fields of an entry whose change means reconnecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntryKey {
    pub(super) service: String,
    pub(super) url: String,
    pub(super) version: String,
    pub(super) name: String,
    pub(super) auth: String,
}

impl EntryKey {
    pub(super) fn of(entry: &Entry) -> Self {
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
pub(super) struct State {
    pub(super) parts: BTreeMap<String, Arc<ServerPart>>,
    pub(super) running: HashMap<String, Running>,
}

/// What a [`Discovery`] and its background tasks share.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) http: reqwest::Client,
    /// Tool calls to `http://` servers, on kept connections (see `call_http`); `None` when
    /// [`DiscoveryBuilder::rmcp_only`](super::DiscoveryBuilder::rmcp_only) sends everything through rmcp's client.
    pub(crate) calls: Option<CallHttp>,
    pub(crate) tokens: Tokens,
    pub(crate) registry: RegistryClient,
    /// What readers see; replaced whole, never modified.
    pub(super) index: RwLock<Arc<Index>>,
    /// The parts changed since `index` was built (set and cleared with `state` locked).
    pub(super) stale: AtomicBool,
    pub(super) state: Mutex<State>,
    pub(super) events: broadcast::Sender<IndexEvent>,
    /// Counts commits: a call waiting for an idle server to connect watches it.
    pub(super) published: watch::Sender<u64>,
    pub(super) watcher: Mutex<Option<Box<dyn RegistryWatch>>>,
    /// Whose turn it is among a service's instances.
    pub(super) turn: AtomicUsize,
    pub(super) shutdown: CancellationToken,
}

impl Shared {
    /// The index of the parts as they are now: built here when a change was left for the next
    /// reader (see [`Shared::commit`]).
    pub(super) fn index(&self) -> Arc<Index> {
        if self.stale.load(Ordering::Acquire) {
            let st = self.lock();
            if self.stale.load(Ordering::Acquire) {
                self.build(&st.parts);
            }
        }
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps in the index of `parts` and tells subscribers what changed. Called with the
    /// state locked, so indexes and events follow each other in order.
    ///
    /// With nobody subscribed, the build is left to the next reader: connecting to a hundred
    /// servers then builds the index once, not once per server (each build is linear in the
    /// number of tools).
    pub(super) fn commit(&self, parts: &BTreeMap<String, Arc<ServerPart>>) {
        self.published.send_modify(|n| *n = n.wrapping_add(1));
        if self.events.receiver_count() == 0 {
            self.stale.store(true, Ordering::Release);
            return;
        }
        self.build(parts);
    }

    /// Builds and swaps in the index of `parts`, and tells subscribers what changed since the
    /// last one built. Called with the state locked.
    pub(super) fn build(&self, parts: &BTreeMap<String, Arc<ServerPart>>) {
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

    /// With [`lazy`](super::DiscoveryBuilder::lazy) on, the registry's catalog of each entry
    /// of `entries` that [`reconcile`](Self::reconcile) would start, read concurrently: those
    /// it listed at their current version. An entry without one (never listed, listed at
    /// another version, or a registry without catalogs) is left out, to be connected at once.
    pub(super) async fn catalogs(&self, entries: &[Entry]) -> Catalogs {
        if !self.settings.lazy {
            return Catalogs::new();
        }
        // Owned: a stream of futures borrowing its items is not `Send` for every lifetime.
        let new: Vec<Entry> = {
            let st = self.lock();
            entries
                .iter()
                .filter(|e| self.settings.statuses.contains(&e.status))
                .filter(|e| {
                    st.running
                        .get(e.id.as_str())
                        .is_none_or(|r| r.key != EntryKey::of(e))
                })
                .cloned()
                .collect()
        };
        futures::stream::iter(new)
            .map(|entry: Entry| async move {
                let tools = self.catalog_of(&entry).await;
                (entry.id.to_string(), tools)
            })
            .buffer_unordered(CATALOG_READS)
            .filter_map(|(id, tools)| async move { tools.map(|t| (id, t)) })
            .collect()
            .await
    }

    /// The registry's catalog of `entry` as rmcp tools, when it was listed at its version.
    pub(super) async fn catalog_of(&self, entry: &Entry) -> Option<Vec<Tool>> {
        let catalog = match self.registry.server_tools(entry.id.as_str()).await {
            Ok(Some(catalog)) => catalog,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(server = %entry.id, error = %e, "no catalog from the registry; connecting");
                return None;
            }
        };
        if catalog.fetched_at.is_none() || catalog.version != entry.version.to_string() {
            return None;
        }
        let tools: Result<Vec<Tool>, _> = catalog
            .tools
            .into_iter()
            .map(|t| serde_json::to_value(t.tool).and_then(serde_json::from_value))
            .collect();
        match tools {
            Ok(tools) => Some(tools),
            Err(e) => {
                tracing::debug!(server = %entry.id, error = %e, "unreadable catalog; connecting");
                None
            }
        }
    }

    /// Replaces the tools of server `id` with `tools` (the registry's catalog of it read
    /// again), if it is still idle: a connected server's own listing is newer. Whether it did.
    pub(super) fn relist_idle(&self, id: &str, tools: &[Tool]) -> bool {
        let mut st = self.lock();
        let Some(part) = st.parts.get(id) else {
            return false;
        };
        if part.state != ServerState::Idle || part.bare_tools() == tools {
            return false;
        }
        let part = ServerPart::new(
            part.meta.clone(),
            ServerState::Idle,
            None,
            part.signals.clone(),
            tools,
        );
        st.parts.insert(id.to_owned(), Arc::new(part));
        self.commit(&st.parts);
        true
    }

    /// Makes the running supervisors match `entries`: starts the new ones, stops the removed,
    /// the `down` and the changed ones (a changed one is started again). A new one with a
    /// catalog in `catalogs` is indexed from it and left idle until a call wakes it. Returns
    /// the first outcome of each one connecting, the idle ones and the entries skipped for
    /// their status.
    pub(super) fn reconcile(
        self: &Arc<Self>,
        entries: Vec<Entry>,
        mut catalogs: Catalogs,
    ) -> Reconciled {
        let mut skipped = Vec::new();
        let mut wanted: BTreeMap<String, Entry> = BTreeMap::new();
        for entry in entries {
            if self.settings.statuses.contains(&entry.status) {
                wanted.insert(entry.id.to_string(), entry);
            } else {
                skipped.push((entry.id.to_string(), entry.status));
            }
        }
        let mut done = Reconciled::default();
        let mut st = self.lock();
        if self.shutdown.is_cancelled() {
            done.skipped = skipped;
            return done;
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
            let catalog = catalogs.remove(&id);
            let (state, tools) = match &catalog {
                Some(tools) => (ServerState::Idle, tools.as_slice()),
                None => (ServerState::Connecting, &[][..]),
            };
            st.parts.insert(
                id.clone(),
                Arc::new(ServerPart::new(
                    meta.clone(),
                    state,
                    None,
                    signals.clone(),
                    tools,
                )),
            );
            let key = EntryKey::of(&entry);
            let supervisor = Supervisor {
                shared: self.clone(),
                entry,
                meta,
                signals,
                stop: stop.clone(),
                idle: catalog.is_some(),
            };
            let first = match catalog {
                Some(tools) => {
                    done.idle.push((id.clone(), tools.len()));
                    None
                }
                None => {
                    let (tx, rx) = oneshot::channel();
                    done.started.push((id.clone(), rx));
                    Some(tx)
                }
            };
            let task = tokio::spawn(supervisor.run(first));
            st.running.insert(id.clone(), Running { key, stop, task });
        }
        self.commit(&st.parts);
        done.skipped = skipped;
        done
    }
}

/// `<url>/mcp`, with exactly one slash before `mcp`.
pub(super) fn mcp_url(base: &str) -> String {
    format!("{}/mcp", base.trim_end_matches('/'))
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
}
