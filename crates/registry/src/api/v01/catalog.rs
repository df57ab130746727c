//! The fleet as the official registry sees it: one server per service, one version per distinct
//! version of its instances (each instance a `streamable-http` remote of that version), each
//! version rendered once as a `ServerResponse`.

use std::collections::BTreeMap;

use bytes::Bytes;
use mcp_fleet_model::official::{
    FleetHealthMeta, KeyValueInput, OfficialMeta, OfficialStatus, RegistryNamespace, Remote,
    ResponseMeta, SERVER_SCHEMA_URL, ServerJson, ServerResponse, fit_description,
};
use mcp_fleet_model::{AuthType, Entry, HealthStatus, Timestamp, Version};

/// One version of one server, rendered.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// `<namespace>/<service>`.
    pub(crate) name: String,
    /// The version, as served.
    pub(crate) version: Version,
    pub(crate) status: OfficialStatus,
    pub(crate) is_latest: bool,
    pub(crate) updated_at: Timestamp,
    /// The `ServerResponse` as JSON.
    pub(crate) json: Bytes,
}

/// Every version of every server, by name, then newest version first.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub(crate) items: Vec<Item>,
}

/// A removed instance still remembered by the event log, and when it was removed.
#[derive(Debug, Clone)]
pub(crate) struct Removed {
    pub(crate) entry: Entry,
    pub(crate) at: Timestamp,
}

/// Health from best to worst, for the version's summary.
fn rank(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Unknown => 2,
        HealthStatus::Down => 3,
    }
}

/// `<url>/mcp`, as the health probe and the discovery library reach it.
fn mcp_url(entry: &Entry) -> String {
    format!("{}/mcp", entry.url.as_str().trim_end_matches('/'))
}

/// The headers a client must send to `entry`: described, never with a value.
fn auth_headers(entry: &Entry) -> Vec<KeyValueInput> {
    let description = match entry.auth.kind {
        AuthType::None => return Vec::new(),
        AuthType::Bearer => "Bearer token: `Bearer <token>`".to_owned(),
        AuthType::Oauth2 => match &entry.auth.token_endpoint {
            Some(endpoint) => format!(
                "OAuth 2.0 bearer token from {}: `Bearer <token>`",
                endpoint.as_str()
            ),
            None => "OAuth 2.0 bearer token: `Bearer <token>`".to_owned(),
        },
    };
    vec![KeyValueInput {
        name: "Authorization".to_owned(),
        description: Some(description),
        is_required: Some(true),
        is_secret: Some(true),
        value: None,
    }]
}

/// Remotes of the instances, in id order, one per distinct URL.
fn remotes<'a>(instances: impl Iterator<Item = &'a Entry>) -> Vec<Remote> {
    let mut out: Vec<Remote> = Vec::new();
    for entry in instances {
        let url = mcp_url(entry);
        if out.iter().any(|r| r.url == url) {
            continue;
        }
        let mut remote = Remote::streamable_http(url);
        remote.headers = auth_headers(entry);
        out.push(remote);
    }
    out
}

/// The server.json of one version, from its instances (at least one, in id order).
fn server_json(ns: &RegistryNamespace, version: &Version, instances: &[&Entry]) -> ServerJson {
    // The most recently written instance speaks for the version.
    let lead = instances
        .iter()
        .max_by_key(|e| (e.updated_at, e.id.clone()))
        .copied()
        .unwrap_or(instances[0]);
    let service = lead.service.as_str();
    let fallback = format!("MCP server {service}");
    let title = fit_description(&lead.name, service);
    ServerJson {
        schema: Some(SERVER_SCHEMA_URL.to_owned()),
        name: ns.server_name(service),
        description: fit_description(&lead.description, &fallback),
        title: Some(title),
        version: version.to_string(),
        repository: None,
        website_url: None,
        packages: Vec::new(),
        remotes: remotes(instances.iter().copied()),
        meta: None,
    }
}

fn health(instances: &[&Entry]) -> FleetHealthMeta {
    let mut tags: Vec<String> = instances
        .iter()
        .flat_map(|e| e.tags.iter().map(|t| t.as_str().to_owned()))
        .collect();
    tags.sort();
    tags.dedup();
    FleetHealthMeta {
        status: instances
            .iter()
            .map(|e| e.status)
            .min_by_key(|s| rank(*s))
            .unwrap_or(HealthStatus::Unknown),
        tags,
        last_seen: instances.iter().filter_map(|e| e.last_seen).max(),
        latency_ms: instances.iter().filter_map(|e| e.latency_ms).min(),
        instances: instances.iter().map(|e| e.id.to_string()).collect(),
    }
}

fn render(response: &ServerResponse) -> Bytes {
    // Serializing these types cannot fail: every map key is a string.
    Bytes::from(serde_json::to_vec(response).unwrap_or_default())
}

impl Catalog {
    /// The catalog of `live` entries and, when given, of `removed` ones: a version none of
    /// whose instances is live any more is `deleted`.
    pub(crate) fn build(ns: &RegistryNamespace, live: &[Entry], removed: &[Removed]) -> Self {
        // service → version → instances (entries arrive in id order).
        let mut services: BTreeMap<&str, BTreeMap<&Version, Vec<&Entry>>> = BTreeMap::new();
        for entry in live {
            services
                .entry(entry.service.as_str())
                .or_default()
                .entry(&entry.version)
                .or_default()
                .push(entry);
        }
        let mut gone: BTreeMap<&str, BTreeMap<&Version, Vec<&Removed>>> = BTreeMap::new();
        for r in removed {
            let live_version = services
                .get(r.entry.service.as_str())
                .is_some_and(|versions| versions.contains_key(&r.entry.version));
            if !live_version {
                gone.entry(r.entry.service.as_str())
                    .or_default()
                    .entry(&r.entry.version)
                    .or_default()
                    .push(r);
            }
        }
        let mut names: Vec<&str> = services.keys().chain(gone.keys()).copied().collect();
        names.sort_unstable();
        names.dedup();
        let mut items = Vec::new();
        for service in names {
            let mut versions: Vec<Item> = Vec::new();
            let live_versions = services.get(service);
            let latest = live_versions.and_then(|v| v.keys().next_back().copied());
            for (version, instances) in live_versions.into_iter().flatten() {
                let is_latest = Some(*version) == latest;
                let published_at = instances.iter().map(|e| e.registered_at).min();
                let updated_at = instances.iter().map(|e| e.updated_at).max();
                let (Some(published_at), Some(updated_at)) = (published_at, updated_at) else {
                    continue;
                };
                let response = ServerResponse {
                    server: server_json(ns, version, instances),
                    meta: ResponseMeta {
                        official: Some(OfficialMeta {
                            status: OfficialStatus::Active,
                            published_at,
                            updated_at,
                            is_latest,
                        }),
                        health: Some(health(instances)),
                    },
                };
                versions.push(Item {
                    name: response.server.name.clone(),
                    version: (*version).clone(),
                    status: OfficialStatus::Active,
                    is_latest,
                    updated_at,
                    json: render(&response),
                });
            }
            for (version, removed) in gone.get(service).into_iter().flatten() {
                let instances: Vec<&Entry> = removed.iter().map(|r| &r.entry).collect();
                let published_at = instances.iter().map(|e| e.registered_at).min();
                let updated_at = removed.iter().map(|r| r.at).max();
                let (Some(published_at), Some(updated_at)) = (published_at, updated_at) else {
                    continue;
                };
                let response = ServerResponse {
                    server: server_json(ns, version, &instances),
                    meta: ResponseMeta {
                        official: Some(OfficialMeta {
                            status: OfficialStatus::Deleted,
                            published_at,
                            updated_at,
                            is_latest: false,
                        }),
                        health: None,
                    },
                };
                versions.push(Item {
                    name: response.server.name.clone(),
                    version: (*version).clone(),
                    status: OfficialStatus::Deleted,
                    is_latest: false,
                    updated_at,
                    json: render(&response),
                });
            }
            versions.sort_by(|a, b| b.version.cmp(&a.version));
            items.extend(versions);
        }
        Self { items }
    }

    /// The items of server `name`, newest version first.
    pub(crate) fn versions_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Item> {
        let start = self.items.partition_point(|i| i.name.as_str() < name);
        self.items[start..]
            .iter()
            .take_while(move |i| i.name == name)
    }
}
