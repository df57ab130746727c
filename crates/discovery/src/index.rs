//! The tool index: an immutable snapshot of every server's tools under their names (the
//! service's, each instance's own, and bare), rebuilt from per-server parts and swapped in
//! whole, so a reader never sees half of a change.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (178 of 586 lines).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rmcp::RoleClient;
use rmcp::model::Tool;
use rmcp::service::Peer;
use serde::Serialize;
use tokio::sync::Notify;

use crate::direct::Direct;
use crate::events::IndexEvent;
use crate::names::qualified_name;

/// A tool of a discovered server, as [`Discovery::tools`](crate::Discovery::tools) lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredTool {
    /// `<service>__<tool>`, or its shortened form (see [`qualified_name`]): the name to call it
    /// by, shared by every instance of the service (as the gateway names it); a call goes to
    /// one of them.
    pub service_name: String,
    /// `<serverId>__<tool>`, or its shortened form: this instance's own name, unique, and valid
    /// for `^[a-zA-Z0-9_-]{1,64}$`; a call by it goes to this instance only.
    pub qualified_name: String,
    /// The logical server offering it (the entry's `service`).
    pub service: String,
    /// The registry id of the server offering it.
    pub server_id: String,
    /// The server's version, as registered.
    pub server_version: String,
    /// `false` while the server is disconnected: calls fail fast until it is back. A server
    /// not connected yet by choice ([`ServerState::Idle`]) is available: a call connects.
    pub available: bool,
    /// The tool's MCP definition, as the server listed it (its `name` is the bare name).
    pub tool: Tool,
}

/// Where a server's connection stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ServerState {
    /// The first connection attempt is under way.
    Connecting,
    /// Not connected yet, by choice ([`DiscoveryBuilder::lazy`](crate::DiscoveryBuilder::lazy)):
    /// its tools are the registry's catalog of it, and the first call of one connects.
    Idle,
    /// Connected; its tools are callable.
    Ready,
    /// Not connected: the last attempt failed or the session died. Reconnection goes on in the
    /// background with exponential backoff.
    Unavailable {
        /// Why, e.g. "Connection refused (os error 111)".
        reason: String,
        /// Since when.
        #[serde(skip)]
        since: SystemTime,
    },
}

impl ServerState {
    /// Whether its tools may be called: connected, or connecting on the first call.
    pub fn is_usable(&self) -> bool {
        matches!(self, Self::Ready | Self::Idle)
    }
}

/// A discovered server, as [`Discovery::servers`](crate::Discovery::servers) lists it (named
/// apart from rmcp's `ServerInfo`, which is what a server says about itself in `initialize`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSummary {
    /// Registry id.
    pub id: String,
    /// The logical server it is an instance of (the entry's `service`).
    pub service: String,
    /// Human-readable name.
    pub name: String,
    /// Version, as registered.
    pub version: String,
    /// Its MCP endpoint, `<url>/mcp`.
    pub mcp_url: String,
    /// Connection state.
    pub state: ServerState,
    /// How many tools it offers (as last listed).
    pub tools: usize,
    /// The MCP revision spoken with it (`2026-07-28`, or the session's), once connected.
    pub protocol_version: Option<String>,
    /// Its last listing said `cacheScope: "private"` (2026-07-28): made for this client's
    /// credentials, not to be passed on to others as it is.
    pub private_listing: bool,
}

/// Wakes a server's supervisor.
#[derive(Debug)]
pub(crate) struct Signals {
    /// The server sent `notifications/tools/list_changed`, or the listing went stale.
    pub(crate) tools_changed: Notify,
    /// Something suggests the session died (its event stream broke, a call failed).
    pub(crate) suspect: Notify,
    /// A call wants an idle server connected (see [`ServerState::Idle`]).
    pub(crate) wake: Notify,
    /// Until when the listing is fresh, in milliseconds after `epoch` (`u64::MAX`: until the
    /// server says otherwise).
    fresh_until_ms: AtomicU64,
    epoch: std::time::Instant,
    /// The revision of the current (or last) session.
    protocol_version: std::sync::Mutex<Option<String>>,
    /// The last listing's `cacheScope` was `private`.
    pub(crate) private_listing: AtomicBool,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            tools_changed: Notify::new(),
            suspect: Notify::new(),
            wake: Notify::new(),
            fresh_until_ms: AtomicU64::new(u64::MAX),
            epoch: std::time::Instant::now(),
            protocol_version: std::sync::Mutex::new(None),
            private_listing: AtomicBool::new(false),
        }
    }
}

impl Signals {
    /// A session on `version` was opened.
    pub(crate) fn opened(&self, version: &str) {
        if let Ok(mut v) = self.protocol_version.lock() {
            *v = Some(version.to_owned());
        }
    }

    fn protocol_version(&self) -> Option<String> {
        self.protocol_version.lock().ok().and_then(|v| v.clone())
    }

    /// A listing was just read, fresh for `ttl` (`None`: until the server says it changed).
    pub(crate) fn listed(&self, ttl: Option<Duration>) {
        let until = ttl.map_or(u64::MAX, |ttl| {
            self.now_ms()
                .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
        });
        self.fresh_until_ms.store(until, Ordering::Relaxed);
    }

    /// The listing is being used: past its freshness, the supervisor re-lists (once: the
    /// listing counts as fresh again until that is done).
    pub(crate) fn touch(&self) {
        let until = self.fresh_until_ms.load(Ordering::Relaxed);
        if until == u64::MAX || self.now_ms() < until {
            return;
        }
        if self
            .fresh_until_ms
            .compare_exchange(until, u64::MAX, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.tools_changed.notify_one();
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The registry facts about a server that the index needs.
#[derive(Debug)]
pub(crate) struct ServerMeta {
    pub(crate) id: String,
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) mcp_url: String,
    pub(crate) wants_auth: bool,
}

/// One server's part of the index; replaced whole on every change.
#[derive(Debug)]
pub(crate) struct ServerPart {
    pub(crate) meta: Arc<ServerMeta>,
    pub(crate) state: ServerState,
    /// The session to call through, when `Ready`.
    pub(crate) peer: Option<Peer<RoleClient>>,
    /// The same session's direct call path, where it has one.
    pub(crate) direct: Option<Arc<Direct>>,
    pub(crate) signals: Arc<Signals>,
    /// Tools sorted by qualified name, with `available` matching `state`.
    pub(crate) tools: Vec<Arc<DiscoveredTool>>,
    /// Each tool's qualified, service and bare name, shared with every index built from this
    /// part (an index rebuild then copies pointers, not strings).
    keys: Vec<Keys>,
}

impl ServerPart {
    /// A part for `meta` in `state`, its tools made from `tools` (bare definitions).
    pub(crate) fn new(
        meta: Arc<ServerMeta>,
        state: ServerState,
        link: Option<(Peer<RoleClient>, Option<Arc<Direct>>)>,
        signals: Arc<Signals>,
        tools: &[Tool],
    ) -> Self {
        let (peer, direct) = link.map_or((None, None), |(p, d)| (Some(p), d));
        let available = state.is_usable();
        let mut seen = std::collections::HashSet::new();
        let mut tools: Vec<Arc<DiscoveredTool>> = tools
            .iter()
            .filter(|t| {
                let first = seen.insert(t.name.clone());
                if !first {
                    tracing::warn!(server = %meta.id, tool = %t.name, "server lists a tool name twice; keeping the first");
                }
                first
            })
            .map(|t| {
                Arc::new(DiscoveredTool {
                    service_name: qualified_name(&meta.service, &t.name),
                    qualified_name: qualified_name(&meta.id, &t.name),
                    service: meta.service.clone(),
                    server_id: meta.id.clone(),
                    server_version: meta.version.clone(),
                    available,
                    tool: t.clone(),
                })
            })
            .collect();
        tools.sort_unstable_by(|a, b| a.qualified_name.cmp(&b.qualified_name));
        let keys = tools
            .iter()
            .map(|t| Keys {
                qualified: Arc::from(t.qualified_name.as_str()),
                service: Arc::from(t.service_name.as_str()),
                bare: Arc::from(&*t.tool.name),
            })
            .collect();
        Self {
            meta,
            state,
            peer,
            direct,
            signals,
            tools,
            keys,
        }
    }

    /// The bare tool definitions, to rebuild the part in another state.
    pub(crate) fn bare_tools(&self) -> Vec<Tool> {
        self.tools.iter().map(|t| t.tool.clone()).collect()
    }

    pub(crate) fn info(&self) -> ServerSummary {
        ServerSummary {
            id: self.meta.id.clone(),
            service: self.meta.service.clone(),
            name: self.meta.name.clone(),
            version: self.meta.version.clone(),
            mcp_url: self.meta.mcp_url.clone(),
            state: self.state.clone(),
            tools: self.tools.len(),
            protocol_version: self.signals.protocol_version(),
            private_listing: self.signals.private_listing.load(Ordering::Relaxed),
        }
    }
}

/// The names a tool is indexed under.
#[derive(Debug)]
struct Keys {
    qualified: Arc<str>,
    service: Arc<str>,
    bare: Arc<str>,
}

/// A qualified name's target: the tool and the part of the server offering it.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) tool: Arc<DiscoveredTool>,
    pub(crate) server: Arc<ServerPart>,
}

/// How a name resolved.
#[derive(Debug)]
pub(crate) enum Resolved<'a> {
    /// The tool on each instance that may serve the call (one for an instance's own name),
    /// by server id; never empty.
    Found(&'a [Slot]),
    /// Nothing by that name.
    NotFound,
    /// A bare name offered by several services: their names of it, sorted.
    Ambiguous(Vec<String>),
}

/// An immutable snapshot of the whole index.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) servers: BTreeMap<String, Arc<ServerPart>>,
    /// Qualified name → tool.
    by_name: HashMap<Arc<str>, Slot>,
    /// Service name → the tool on each instance of the service, by server id.
    by_service: HashMap<Arc<str>, Vec<Slot>>,
    /// Bare name → the service names it has, sorted.
    by_bare: HashMap<Arc<str>, Vec<Arc<str>>>,
    /// Every tool, by server id, then qualified name.
    sorted: Vec<Arc<DiscoveredTool>>,
}

impl Index {
    /// The index of `servers`' tools. A qualified-name clash (only possible between a
    /// shortened name and another tool's) keeps the tool of the server that sorts first and
    /// logs the other: nothing is ever silently overwritten.
    ///
    /// Linear in the number of tools, copying pointers only: it runs on every change.
    pub(crate) fn build(servers: BTreeMap<String, Arc<ServerPart>>) -> Self {
        let total = servers.values().map(|p| p.tools.len()).sum();
        let mut by_name: HashMap<Arc<str>, Slot> = HashMap::with_capacity(total);
        let mut by_service: HashMap<Arc<str>, Vec<Slot>> = HashMap::with_capacity(total);
        let mut by_bare: HashMap<Arc<str>, Vec<Arc<str>>> = HashMap::with_capacity(total);
        let mut sorted = Vec::with_capacity(total);
        for part in servers.values() {
            for (tool, keys) in part.tools.iter().zip(&part.keys) {
                let Keys {
                    qualified,
                    service,
                    bare,
                } = keys;
                if let Some(existing) = by_name.get(qualified) {
                    tracing::error!(
                        name = %tool.qualified_name,
                        kept = %existing.tool.server_id,
                        dropped = %tool.server_id,
                        tool = %tool.tool.name,
                        "two tools share a qualified name; the second is left out of the index"
                    );
                    continue;
                }
                let slot = Slot {
                    tool: tool.clone(),
                    server: part.clone(),
                };
                let services = by_bare.entry(bare.clone()).or_default();
                if !services.contains(service) {
                    services.push(service.clone());
                }
                // Servers come in id order, so each service's instances do too.
                by_service
                    .entry(service.clone())
                    .or_default()
                    .push(slot.clone());
                by_name.insert(qualified.clone(), slot);
                sorted.push(tool.clone());
            }
        }
        for names in by_bare.values_mut().filter(|n| n.len() > 1) {
            names.sort_unstable();
        }
        Self {
            servers,
            by_name,
            by_service,
            by_bare,
            sorted,
        }
    }

    /// `name` as a service name first (every instance of the service), then as an instance's
    /// own name, then as a bare name all of whose offers are instances of one service.
    pub(crate) fn resolve(&self, name: &str) -> Resolved<'_> {
        if let Some(slots) = self.by_service.get(name) {
            return Resolved::Found(slots);
        }
        if let Some(slot) = self.by_name.get(name) {
            return Resolved::Found(std::slice::from_ref(slot));
        }
        match self.by_bare.get(name).map(Vec::as_slice) {
            Some([only]) => match self.by_service.get(only) {
                Some(slots) => Resolved::Found(slots),
                None => Resolved::NotFound,
            },
            Some(many) if many.len() > 1 => {
                Resolved::Ambiguous(many.iter().map(|n| n.to_string()).collect())
            }
            _ => Resolved::NotFound,
        }
    }

    /// `name` as an instance's own name only.
    pub(crate) fn resolve_instance(&self, name: &str) -> Resolved<'_> {
        match self.by_name.get(name) {
            Some(slot) => Resolved::Found(std::slice::from_ref(slot)),
            None => Resolved::NotFound,
        }
    }

    /// Every tool, by server id, then qualified name.
    pub(crate) fn tools(&self) -> &[Arc<DiscoveredTool>] {
        &self.sorted
    }

    /// How many tools.
    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// What changed from `self` to `next`: the tools added or changed (availability
    /// included), and those removed. `None` when nothing did.
    pub(crate) fn diff(&self, next: &Index) -> Vec<IndexEvent> {
        let mut added: Vec<DiscoveredTool> = next
            .by_name
            .iter()
            .filter(|(name, slot)| {
                self.by_name.get(*name).is_none_or(|old| {
                    !Arc::ptr_eq(&old.tool, &slot.tool) && *old.tool != *slot.tool
                })
            })
            .map(|(_, slot)| (*slot.tool).clone())
            .collect();
        let mut removed: Vec<String> = self
            .by_name
            .keys()
            .filter(|name| !next.by_name.contains_key(*name))
            .map(|name| name.to_string())
            .collect();
        let mut events = Vec::new();
        if !added.is_empty() {
            added.sort_unstable_by(|a, b| a.qualified_name.cmp(&b.qualified_name));
            events.push(IndexEvent::Add(added));
        }
        if !removed.is_empty() {
            removed.sort_unstable();
            events.push(IndexEvent::Remove(removed));
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> Tool {
        Tool::new(
            name.to_owned(),
            format!("{name} things"),
            Arc::new(serde_json::Map::new()),
        )
    }

    fn part(id: &str, state: ServerState, tools: &[&str]) -> Arc<ServerPart> {
        instance(id, id, state, tools)
    }

    fn instance(id: &str, service: &str, state: ServerState, tools: &[&str]) -> Arc<ServerPart> {
        let meta = Arc::new(ServerMeta {
            id: id.into(),
            service: service.into(),
            name: id.into(),
            version: "1.0.0".into(),
            mcp_url: format!("http://127.0.0.1:1/{id}/mcp"),
            wants_auth: false,
        });
        let tools: Vec<Tool> = tools.iter().map(|t| tool(t)).collect();
        Arc::new(ServerPart::new(meta, state, None, Arc::default(), &tools))
    }

    fn index(parts: &[Arc<ServerPart>]) -> Index {
        Index::build(
            parts
                .iter()
                .map(|p| (p.meta.id.clone(), p.clone()))
                .collect(),
        )
    }

    #[test]
    fn names_resolve_qualified_then_bare() {
        let idx = index(&[
            part("alpha", ServerState::Ready, &["search", "only_alpha"]),
            part("beta", ServerState::Ready, &["search", "b__x"]),
        ]);
        let found = |name: &str| match idx.resolve(name) {
            Resolved::Found([slot]) => slot.tool.qualified_name.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(found("alpha__search"), "alpha__search");
        assert_eq!(found("beta__search"), "beta__search");
        assert_eq!(found("only_alpha"), "alpha__only_alpha");
        assert_eq!(found("b__x"), "beta__b__x");
        match idx.resolve("search") {
            Resolved::Ambiguous(c) => assert_eq!(c, ["alpha__search", "beta__search"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(idx.resolve("nope"), Resolved::NotFound));
        assert_eq!(idx.len(), 4);
        let names: Vec<&str> = idx
            .tools()
            .iter()
            .map(|t| t.qualified_name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "alpha__only_alpha",
                "alpha__search",
                "beta__b__x",
                "beta__search"
            ]
        );
    }

    #[test]
    fn names_by_service_reach_every_instance() {
        let idx = index(&[
            instance("catalog-1", "catalog", ServerState::Ready, &["search", "x"]),
            instance("catalog-2", "catalog", ServerState::Ready, &["search"]),
            // Its id is another service's name: that name means the service.
            instance("catalog", "legacy", ServerState::Ready, &["search"]),
            instance("beta", "beta", ServerState::Ready, &["other"]),
        ]);
        let servers = |name: &str| match idx.resolve(name) {
            Resolved::Found(slots) => slots
                .iter()
                .map(|s| s.tool.server_id.as_str())
                .collect::<Vec<_>>(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(servers("catalog__search"), ["catalog-1", "catalog-2"]);
        assert_eq!(servers("catalog__x"), ["catalog-1"]);
        assert_eq!(servers("x"), ["catalog-1"]);
        assert_eq!(servers("catalog-2__search"), ["catalog-2"]);
        assert_eq!(servers("legacy__search"), ["catalog"]);
        assert_eq!(servers("other"), ["beta"]);
        // Offered by two services: their names.
        match idx.resolve("search") {
            Resolved::Ambiguous(c) => assert_eq!(c, ["catalog__search", "legacy__search"]),
            other => panic!("{other:?}"),
        }
        // An instance's own name, exactly, for callers that chose the instance (the gateway).
        match idx.resolve_instance("catalog__search") {
            Resolved::Found([slot]) => assert_eq!(slot.tool.server_id, "catalog"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            idx.resolve_instance("legacy__search"),
            Resolved::NotFound
        ));
        let two = index(&[
            instance("catalog-1", "catalog", ServerState::Ready, &["search"]),
            instance("catalog-2", "catalog", ServerState::Ready, &["search"]),
        ]);
        match two.resolve("search") {
            Resolved::Found(slots) => assert_eq!(slots.len(), 2, "a bare name of one service"),
            other => panic!("{other:?}"),
        }
        let tool = &two.tools()[1];
        assert_eq!(
            (tool.service_name.as_str(), tool.qualified_name.as_str()),
            ("catalog__search", "catalog-2__search")
        );
    }

    #[test]
    fn availability_follows_the_state() {
        let down = ServerState::Unavailable {
            reason: "refused".into(),
            since: SystemTime::now(),
        };
        let idx = index(&[part("alpha", down, &["search"])]);
        assert!(!idx.tools()[0].available);
        let idx = index(&[part("alpha", ServerState::Ready, &["search"])]);
        assert!(idx.tools()[0].available);
    }

    #[test]
    fn duplicate_tool_names_of_one_server_keep_the_first() {
        let idx = index(&[part("alpha", ServerState::Ready, &["a", "a", "b"])]);
        assert_eq!(idx.len(), 2);
    }

    #[test]
    fn diffs_are_adds_and_removes() {
        let a = part("alpha", ServerState::Ready, &["x", "y"]);
        let old = index(std::slice::from_ref(&a));
        let next = index(&[a.clone(), part("beta", ServerState::Ready, &["z"])]);
        assert_eq!(
            old.diff(&next),
            [IndexEvent::Add(vec![(*next.tools()[2]).clone()])]
        );
        let gone = index(&[part("beta", ServerState::Ready, &["z"])]);
        assert_eq!(
            next.diff(&gone),
            [IndexEvent::Remove(vec![
                "alpha__x".into(),
                "alpha__y".into()
            ])]
        );
        assert!(next.diff(&next).is_empty());
        // A rebuilt but identical part is no change.
        let same = index(&[part("alpha", ServerState::Ready, &["x", "y"])]);
        assert!(old.diff(&same).is_empty());
        let down = index(&[part(
            "alpha",
            ServerState::Unavailable {
                reason: "gone".into(),
                since: SystemTime::now(),
            },
            &["x", "y"],
        )]);
        match old.diff(&down).as_slice() {
            [IndexEvent::Add(tools)] => assert!(tools.iter().all(|t| !t.available)),
            other => panic!("{other:?}"),
        }
    }
}
