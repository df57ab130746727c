//! The fleet's shared state: the servers' parts and supervisors, the index readers see, and
//! reconciling them with the registry's entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use mcp_fleet_model::{AuthType, Entry, HealthStatus};
use rmcp::RoleClient;
use rmcp::model::Tool;
use rmcp::service::Peer;
use tokio::sync::{broadcast, oneshot};
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
    pub(super) registry: RegistryClient,
    /// What readers see; replaced whole, never modified.
    pub(super) index: RwLock<Arc<Index>>,
    /// The parts changed since `index` was built (set and cleared with `state` locked).
    pub(super) stale: AtomicBool,
    pub(super) state: Mutex<State>,
    pub(super) events: broadcast::Sender<IndexEvent>,
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

    /// Makes the running supervisors match `entries`: starts the new ones, stops the removed,
    /// the `down` and the changed ones (a changed one is started again). Returns the first
    /// outcome of each started one, and the entries skipped for their status.
    pub(super) fn reconcile(
        self: &Arc<Self>,
        entries: Vec<Entry>,
    ) -> (Vec<(String, FirstOutcome)>, Skipped) {
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
