//! Tool pins (`--pin-tool-hashes`): an upstream tool whose content hash differs from the one
//! the registry trusts for its service, version and name is withheld from `tools/list`, and its
//! calls refused, until an operator accepts it; and following the registry's catalog events,
//! which also keep a lazy index's catalogs current (`--catalog-tools-list`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mcp_fleet_discovery::{Backoff, ChangeFeed, ClientError, DiscoveredTool, Tool, clip};
use mcp_fleet_model::{ToolDef, tool_hash};
use rmcp::ErrorData;
use serde_json::json;

use crate::gateway::Inner;

/// One service's trusted hashes, by version and tool.
type ServicePins = HashMap<(String, String), String>;

/// The pins this gateway last read, per service.
#[derive(Debug, Default)]
pub(crate) struct Pins {
    by_service: RwLock<HashMap<String, Arc<ServicePins>>>,
    /// The (instance, tool, listed hash) withheld at the last rebuild: each is logged once.
    logged: Mutex<HashSet<(String, String, String)>>,
}

/// A tool withheld because its listed hash is not the one trusted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Withheld {
    pub(crate) service: String,
    pub(crate) tool: String,
    pub(crate) version: String,
    pub(crate) server: String,
    pub(crate) listed: String,
    pub(crate) pinned: String,
}

impl Withheld {
    /// The answer to a call of it, offered as `name`.
    pub(crate) fn error(&self, name: &str) -> ErrorData {
        ErrorData::invalid_params(
            format!(
                "tool {} is withheld: its definition at {} {} changed since it was trusted \
                 (hash {} listed, {} trusted); an operator can accept it with `mcp-fleet tools \
                 accept {} {}` (POST /services/{}/tools/accept)",
                clip(name),
                self.service,
                self.version,
                short(&self.listed),
                short(&self.pinned),
                self.service,
                self.tool,
                self.service,
            ),
            Some(json!({
                "withheld": true, "service": self.service, "tool": self.tool,
                "version": self.version, "listed": self.listed, "trusted": self.pinned,
            })),
        )
    }
}

/// The first 12 hex digits of a hash, as people compare them.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The registry's hash of `tool` as an upstream lists it: [`tool_hash`] of its fields the
/// catalog keeps. `None` when it does not read as a tool definition.
pub(crate) fn hash_of(tool: &Tool) -> Option<String> {
    let def: ToolDef = serde_json::to_value(tool)
        .and_then(serde_json::from_value)
        .ok()?;
    Some(tool_hash(&def))
}

impl Pins {
    /// Takes out of `tools` those whose pin differs from their hash; returns them. Logs each
    /// newly withheld one at warn.
    pub(crate) fn withhold(&self, tools: &mut Vec<DiscoveredTool>) -> Vec<Withheld> {
        let pins = self
            .by_service
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut withheld = Vec::new();
        tools.retain(|t| {
            let Some(pinned) = pins
                .get(&t.service)
                .and_then(|p| p.get(&(t.server_version.clone(), t.tool.name.to_string())))
            else {
                // No pin yet: the registry trusts the first listing it sees.
                return true;
            };
            match hash_of(&t.tool) {
                Some(listed) if listed != *pinned => {
                    withheld.push(Withheld {
                        service: t.service.clone(),
                        tool: t.tool.name.to_string(),
                        version: t.server_version.clone(),
                        server: t.server_id.clone(),
                        listed,
                        pinned: pinned.clone(),
                    });
                    false
                }
                _ => true,
            }
        });
        let now: HashSet<(String, String, String)> = withheld
            .iter()
            .map(|w| (w.server.clone(), w.tool.clone(), w.listed.clone()))
            .collect();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        for w in &withheld {
            if !logged.contains(&(w.server.clone(), w.tool.clone(), w.listed.clone())) {
                tracing::warn!(
                    service = %w.service, tool = %w.tool, version = %w.version,
                    upstream = %w.server, listed = %w.listed, trusted = %w.pinned,
                    "tool withheld: its definition changed since it was trusted; accept it with \
                     `mcp-fleet tools accept {} {}`", w.service, w.tool
                );
            }
        }
        *logged = now;
        withheld
    }

    /// Replaces the pins of the services in `read`, and with `known` (a whole refresh) drops
    /// those of services no longer in the fleet; whether any changed.
    fn update(&self, read: Vec<(String, ServicePins)>, known: Option<&HashSet<String>>) -> bool {
        let mut by_service = self.by_service.write().unwrap_or_else(|e| e.into_inner());
        let before = by_service.len();
        if let Some(known) = known {
            by_service.retain(|s, _| known.contains(s));
        }
        let mut changed = by_service.len() != before;
        for (service, pins) in read {
            if by_service.get(&service).is_none_or(|old| **old != pins) {
                by_service.insert(service, Arc::new(pins));
                changed = true;
            }
        }
        changed
    }

    /// Whether `service`'s pins were read.
    fn has(&self, service: &str) -> bool {
        self.by_service
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(service)
    }
}

/// Which services' pins to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PinRead<'a> {
    /// Every service of the fleet (those gone are forgotten).
    All,
    /// Those never read (new in the fleet).
    New,
    /// One service.
    Of(&'a str),
}

impl Inner {
    /// Reads the pins of `which` services of the fleet (with `--pin-tool-hashes`); a service
    /// whose pins cannot be read keeps those last read. Whether any changed.
    pub(crate) async fn refresh_pins(&self, which: PinRead<'_>) -> bool {
        if !self.config.pin_tool_hashes {
            return false;
        }
        let fleet: HashSet<String> = self
            .discovery()
            .servers()
            .into_iter()
            .map(|s| s.service)
            .collect();
        let services: Vec<&String> = match which {
            PinRead::All => fleet.iter().collect(),
            PinRead::New => fleet.iter().filter(|s| !self.pins.has(s)).collect(),
            PinRead::Of(service) => fleet.iter().filter(|s| *s == service).collect(),
        };
        if services.is_empty() {
            return false;
        }
        let reads = services.into_iter().map(|service| async move {
            match self.registry.tool_pins(service).await {
                Ok(read) => Some((
                    service.clone(),
                    read.pins
                        .into_iter()
                        .map(|p| ((p.version, p.tool), p.hash))
                        .collect::<ServicePins>(),
                )),
                Err(e) => {
                    tracing::debug!(%service, error = %e, "cannot read the tool pins");
                    None
                }
            }
        });
        let read: Vec<(String, ServicePins)> = futures::future::join_all(reads)
            .await
            .into_iter()
            .flatten()
            .collect();
        let known = matches!(which, PinRead::All).then_some(&fleet);
        self.pins.update(read, known)
    }

    /// Reads `which` pins again and rebuilds the catalog when they changed, telling clients
    /// when the tools did.
    pub(crate) async fn apply_pins(&self, which: PinRead<'_>) {
        if self.refresh_pins(which).await && self.rebuild() {
            self.announce().await;
        }
    }

    /// Follows the registry's change feed for `catalog` and `tool-changed` events: a server
    /// listed again has its idle catalog read again (`--catalog-tools-list`) and its service's
    /// pins too (`--pin-tool-hashes`). Reconnects with backoff while the registry is away.
    pub(crate) async fn follow_catalogs(self: Arc<Self>) {
        let mut feed = ChangeFeed::new(self.registry.clone(), None);
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut attempt: u32 = 0;
        loop {
            let next = tokio::select! {
                () = self.shutdown.cancelled() => return,
                next = feed.next() => next,
            };
            let change = match next {
                Ok(change) => {
                    attempt = 0;
                    change
                }
                Err(e) => {
                    if matches!(e, ClientError::Problem { status: 410, .. }) {
                        feed.from_now();
                    }
                    tracing::debug!(error = %e, "registry change feed dropped; reopening");
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff.delay(attempt)) => {}
                    }
                    attempt = attempt.saturating_add(1);
                    continue;
                }
            };
            if change.kind != "catalog" && change.kind != "tool-changed" {
                continue;
            }
            if self.config.catalog_tools_list
                && let Some(id) = change.data.get("id").and_then(|v| v.as_str())
            {
                // The index's change reaches the catalog through `follow_index`.
                self.discovery().refresh_catalog(id).await;
            }
            if let Some(service) = change.data.get("service").and_then(|v| v.as_str()) {
                self.apply_pins(PinRead::Of(service)).await;
            }
        }
    }
}
