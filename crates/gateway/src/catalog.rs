//! The gateway's catalog: the fleet's tools grouped by service, under the names the gateway
//! offers them, and where each can be called. Rebuilt whole from the discovery index on every
//! change and swapped in at once, so no call sees half of one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mcp_fleet_discovery::names::{is_valid_name, qualified_name};
use mcp_fleet_discovery::{DiscoveredTool, ServerSummary, Tool};
use mcp_fleet_model::Version;

use crate::config::ToolNames;
use crate::pins::Withheld;

/// One registered server behind a service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instance {
    /// Registry id.
    pub(crate) id: String,
    /// Its version, as registered (`None` when it does not parse, which the registry prevents).
    pub(crate) version: Option<Version>,
    /// Connected and listed.
    pub(crate) available: bool,
}

/// A tool the gateway offers: which service, and its name there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Offered {
    /// The service offering it.
    pub(crate) service: String,
    /// The tool's own (bare) name on the upstream.
    pub(crate) tool: String,
    /// Its definition says `idempotentHint: true`: a call that may have reached an instance
    /// that then failed is sent once more, to another instance.
    pub(crate) idempotent: bool,
    /// Its input schema mirrors parameters into `Mcp-Param-*` headers (`x-mcp-header`), which
    /// rmcp checks on requests of sessionless revisions.
    pub(crate) param_headers: bool,
}

/// A snapshot of what the gateway offers.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// `tools/list`'s answer: definitions under the gateway's names, sorted by name.
    pub(crate) tools: Arc<Vec<Tool>>,
    /// Gateway name → what it is.
    pub(crate) by_name: HashMap<String, Offered>,
    /// Server id → bare tool → the discovery library's qualified name, for available tools.
    pub(crate) upstream: HashMap<String, HashMap<String, String>>,
    /// Service → its instances, sorted by id.
    pub(crate) services: BTreeMap<String, Vec<Instance>>,
    /// Names (the service's and the bare one) of tools withheld on every instance for their
    /// pins, with why (`--pin-tool-hashes`).
    pub(crate) withheld: HashMap<String, Withheld>,
}

/// The service a server belongs to.
pub(crate) fn service_of(server: &ServerSummary) -> &str {
    &server.service
}

impl Catalog {
    /// The catalog of `servers` offering `tools` (both as the discovery index has them).
    pub(crate) fn build(
        servers: &[ServerSummary],
        tools: &[DiscoveredTool],
        names: ToolNames,
    ) -> Self {
        let mut services: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        let mut service_by_server = HashMap::new();
        for server in servers {
            let available = server.state.is_usable();
            service_by_server.insert(server.id.as_str(), service_of(server));
            services
                .entry(service_of(server).to_owned())
                .or_default()
                .push(Instance {
                    id: server.id.clone(),
                    version: server.version.parse().ok(),
                    available,
                });
        }
        for instances in services.values_mut() {
            instances.sort_by(|a, b| a.id.cmp(&b.id));
        }

        // Per service, each tool's definition from the newest available instance offering it.
        let mut offered: BTreeMap<&str, BTreeMap<&str, (&Option<Version>, &Tool)>> =
            BTreeMap::new();
        let mut upstream = HashMap::new();
        let version_of: HashMap<&str, &Option<Version>> = services
            .values()
            .flatten()
            .map(|i| (i.id.as_str(), &i.version))
            .collect();
        for tool in tools.iter().filter(|t| t.available) {
            let Some(service) = service_by_server.get(tool.server_id.as_str()) else {
                continue;
            };
            let Some(version) = version_of.get(tool.server_id.as_str()) else {
                continue;
            };
            upstream
                .entry(tool.server_id.clone())
                .or_insert_with(HashMap::new)
                .insert(tool.tool.name.to_string(), tool.qualified_name.clone());
            let slot = offered
                .entry(service)
                .or_default()
                .entry(tool.tool.name.as_ref());
            match slot {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert((version, &tool.tool));
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    if *version > o.get().0 {
                        o.insert((version, &tool.tool));
                    }
                }
            }
        }

        let mut services_offering: HashMap<&str, usize> = HashMap::new();
        for tools in offered.values() {
            for name in tools.keys() {
                *services_offering.entry(name).or_default() += 1;
            }
        }
        let mut by_name = HashMap::new();
        let mut listed = Vec::new();
        for (service, tools) in &offered {
            for (name, (_, def)) in tools {
                let exposed = match names {
                    ToolNames::BareWhenUnique
                        if services_offering.get(name) == Some(&1) && is_valid_name(name) =>
                    {
                        (*name).to_owned()
                    }
                    _ => qualified_name(service, name),
                };
                let mut def = (*def).clone();
                def.name = exposed.clone().into();
                let idempotent = def.annotations.as_ref().is_some_and(|a| a.is_idempotent());
                let param_headers = mentions_param_header(&def.input_schema);
                listed.push(def);
                by_name.insert(
                    exposed,
                    Offered {
                        service: (*service).to_owned(),
                        tool: (*name).to_owned(),
                        idempotent,
                        param_headers,
                    },
                );
            }
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            tools: Arc::new(listed),
            by_name,
            upstream,
            services,
            withheld: HashMap::new(),
        }
    }

    /// Keeps `withheld` tools that no instance offers, under the names a client may call them
    /// by (the service's, and the bare name when no offered tool has it).
    pub(crate) fn withhold(&mut self, withheld: Vec<Withheld>) {
        for w in withheld {
            for name in [qualified_name(&w.service, &w.tool), w.tool.clone()] {
                if !self.by_name.contains_key(&name) {
                    self.withheld.entry(name).or_insert_with(|| w.clone());
                }
            }
        }
    }

    /// The definition of the tool offered as `name`.
    pub(crate) fn tool(&self, name: &str) -> Option<&Tool> {
        let i = self
            .tools
            .binary_search_by(|t| t.name.as_ref().cmp(name))
            .ok()?;
        self.tools.get(i)
    }

    /// The available instances of `service` that offer `tool`, with the discovery library's
    /// name of the tool on each.
    pub(crate) fn instances_offering<'a>(
        &'a self,
        service: &str,
        tool: &str,
    ) -> Vec<(&'a Instance, &'a str)> {
        let Some(instances) = self.services.get(service) else {
            return Vec::new();
        };
        instances
            .iter()
            .filter(|i| i.available)
            .filter_map(|i| {
                self.upstream
                    .get(&i.id)
                    .and_then(|tools| tools.get(tool))
                    .map(|q| (i, q.as_str()))
            })
            .collect()
    }
}

/// Whether a schema has an `x-mcp-header` key anywhere.
fn mentions_param_header(schema: &serde_json::Map<String, serde_json::Value>) -> bool {
    fn value(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => mentions_param_header(map),
            serde_json::Value::Array(items) => items.iter().any(value),
            _ => false,
        }
    }
    schema.iter().any(|(k, v)| k == "x-mcp-header" || value(v))
}
