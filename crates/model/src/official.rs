//! The official MCP Registry's v0.1 read API types (`server.json`, `ServerResponse`, the list
//! body), serde in both directions: the registry serves them, `mcp-fleet import` reads them.
//!
//! Field names and limits follow the registry's OpenAPI document and `server.schema.json`
//! (copies in `crates/registry/tests/fixtures/official/`, with their source).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::entry::HealthStatus;
use crate::time::{Timestamp, serde_ts};

/// The `$schema` of the server.json documents served here.
pub const SERVER_SCHEMA_URL: &str =
    "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";
/// The `_meta` key of registry-managed data (`ServerResponse._meta`).
pub const OFFICIAL_META_KEY: &str = "io.modelcontextprotocol.registry/official";
/// The `_meta` key of mcp-fleet's own data (health, tags) on each `ServerResponse`.
pub const HEALTH_META_KEY: &str = "dev.mcp-fleet/health";
/// The longest `description` the schema allows, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 100;
/// The longest `name` the schema allows, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The remote transport type mcp-fleet entries are served with.
pub const STREAMABLE_HTTP: &str = "streamable-http";
/// The namespace of served names when none is configured: `.local` is never a public domain,
/// so the default cannot claim a namespace of the public registry.
pub const DEFAULT_REGISTRY_NAMESPACE: &str = "local.mcp-fleet";

/// A server.json document (`ServerDetail` in the OpenAPI document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerJson {
    /// JSON Schema URI of this format.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// `<reverse-DNS namespace>/<name>`.
    pub name: String,
    /// What the server does (1–100 characters).
    pub description: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// This version of the server.
    pub version: String,
    /// Where its source lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    /// Home page or documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_url: Option<String>,
    /// Installable packages (npm, pypi, oci, ...): mcp-fleet serves none, import reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    /// Endpoints a client connects to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<Remote>,
    /// Publisher-provided extension data, by reverse-DNS key.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Source repository of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Repository {
    /// Browsable and clonable URL.
    pub url: String,
    /// Hosting service (`github`, ...).
    pub source: String,
    /// The forge's id of the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Path of the server inside the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subfolder: Option<String>,
}

/// An installable package of a server; only what import needs to judge it is typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// `npm`, `pypi`, `oci`, `nuget`, `mcpb`, ...
    pub registry_type: String,
    /// Package name, image reference or download URL.
    pub identifier: String,
    /// Package version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// How a client talks to the running package.
    pub transport: Transport,
}

/// A package's transport (`stdio`, `streamable-http`, `sse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transport {
    /// The transport type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Endpoint URL (template) for the HTTP transports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Headers to send.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<KeyValueInput>,
}

/// A remote endpoint of a server (`StreamableHttpTransport` or `SseTransport`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Remote {
    /// `streamable-http` or `sse`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The endpoint's URL (may hold `{variables}`).
    pub url: String,
    /// Headers a client must send: described, never with a secret value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<KeyValueInput>,
}

impl Remote {
    /// A `streamable-http` remote at `url`.
    pub fn streamable_http(url: impl Into<String>) -> Self {
        Self {
            kind: STREAMABLE_HTTP.to_owned(),
            url: url.into(),
            headers: Vec::new(),
        }
    }

    /// Whether this is a `streamable-http` remote.
    pub fn is_streamable_http(&self) -> bool {
        self.kind == STREAMABLE_HTTP
    }
}

/// A header or environment variable a client supplies (`KeyValueInput`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct KeyValueInput {
    /// Header or variable name.
    pub name: String,
    /// What to put there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the client must supply it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_required: Option<bool>,
    /// Whether the value is a secret (clients keep it so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_secret: Option<bool>,
    /// A fixed value (may hold `{variables}`); never a secret here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// One version of one server in an answer (`ServerResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerResponse {
    /// The server.json of this version.
    pub server: ServerJson,
    /// Registry-managed data.
    #[serde(rename = "_meta", default)]
    pub meta: ResponseMeta,
}

/// `ServerResponse._meta`: the official registry's metadata and mcp-fleet's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResponseMeta {
    /// Lifecycle and dates.
    #[serde(
        rename = "io.modelcontextprotocol.registry/official",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub official: Option<OfficialMeta>,
    /// Health as mcp-fleet sees it (absent in other registries' answers).
    #[serde(
        rename = "dev.mcp-fleet/health",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub health: Option<FleetHealthMeta>,
}

/// `_meta["io.modelcontextprotocol.registry/official"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OfficialMeta {
    /// `active`, `deprecated` or `deleted`.
    pub status: OfficialStatus,
    /// When this version was first published.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "serde_ts")]
    pub published_at: Timestamp,
    /// When this version last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "serde_ts")]
    pub updated_at: Timestamp,
    /// Whether this is the server's newest version.
    pub is_latest: bool,
}

/// A server version's lifecycle status in the official API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OfficialStatus {
    /// Listed and usable.
    Active,
    /// Listed, but its publisher advises against it.
    Deprecated,
    /// Removed (listed only with `include_deleted`).
    Deleted,
}

impl OfficialStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Deleted => "deleted",
        }
    }
}

impl fmt::Display for OfficialStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `_meta["dev.mcp-fleet/health"]`: what mcp-fleet knows that the official format does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FleetHealthMeta {
    /// The best health among this version's instances (`down` when all are down).
    pub status: HealthStatus,
    /// Capability tags, every instance's, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The latest successful check among the instances.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "serde_ts::option")]
    pub last_seen: Option<Timestamp>,
    /// The fastest last answer among the instances, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u32>,
    /// The mcp-fleet entries (instances) behind this version, in id order.
    #[serde(default)]
    pub instances: Vec<String>,
}

/// The body of `GET /v0.1/servers` and `GET /v0.1/servers/{serverName}/versions` (`ServerList`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = OfficialServerList))]
pub struct ServerList {
    /// One item per server version.
    pub servers: Vec<ServerResponse>,
    /// Paging.
    #[serde(default)]
    pub metadata: ListMetadata,
}

/// `ServerList.metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ListMetadata {
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Items in this page.
    #[serde(default)]
    pub count: usize,
}

/// The namespace of served names (`--registry-namespace`): a reverse-DNS name such as
/// `com.example`, at least two dot-separated labels of letters, digits and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryNamespace(String);

impl RegistryNamespace {
    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The official name of a service: `<namespace>/<service>`.
    pub fn server_name(&self, service: &str) -> String {
        format!("{}/{service}", self.0)
    }

    /// The service part of an official name in this namespace, if it is one.
    pub fn service_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        name.strip_prefix(self.0.as_str())?.strip_prefix('/')
    }
}

impl Default for RegistryNamespace {
    fn default() -> Self {
        Self(DEFAULT_REGISTRY_NAMESPACE.to_owned())
    }
}

/// Longest namespace that still leaves room for a 64-character service id within the name's
/// 200-character limit.
const MAX_NAMESPACE_CHARS: usize = MAX_NAME_CHARS - 1 - 64;

impl FromStr for RegistryNamespace {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() > MAX_NAMESPACE_CHARS {
            return Err(format!(
                "must be at most {MAX_NAMESPACE_CHARS} characters, got {}",
                s.len()
            ));
        }
        let labels: Vec<&str> = s.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(format!(
                "must be a reverse-DNS name such as \"com.example\" (dot-separated labels of \
                 letters, digits and '-'), not {s:?}"
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for RegistryNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `text` within the schema's description limit: cut on a character boundary, with `…` marking
/// the cut; an empty text becomes `fallback` (the schema wants at least one character).
pub fn fit_description(text: &str, fallback: &str) -> String {
    let text = text.trim();
    let text = if text.is_empty() { fallback } else { text };
    if text.chars().count() <= MAX_DESCRIPTION_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        for ok in ["com.example", "local.mcp-fleet", "io.github.user", "a.b"] {
            assert!(ok.parse::<RegistryNamespace>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "example",
            "com..example",
            "com.-x",
            "com/x",
            "com.ex ample",
            "é.com",
        ] {
            assert!(bad.parse::<RegistryNamespace>().is_err(), "{bad}");
        }
        assert!(
            DEFAULT_REGISTRY_NAMESPACE
                .parse::<RegistryNamespace>()
                .is_ok()
        );
        let ns: RegistryNamespace = "com.example".parse().unwrap();
        assert_eq!(ns.server_name("billing"), "com.example/billing");
        assert_eq!(ns.service_of("com.example/billing"), Some("billing"));
        assert_eq!(ns.service_of("com.examples/billing"), None);
    }

    #[test]
    fn descriptions_are_cut_on_a_character_boundary() {
        let long = "é".repeat(150);
        let cut = fit_description(&long, "x");
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(fit_description("  ", "fallback"), "fallback");
        assert_eq!(fit_description("short", "x"), "short");
    }

    #[test]
    fn a_response_reads_back_as_written() {
        let json = serde_json::json!({
            "server": {
                "$schema": SERVER_SCHEMA_URL,
                "name": "com.example/weather",
                "description": "Weather",
                "version": "1.0.0",
                "remotes": [{"type": "streamable-http", "url": "https://w.example.com/mcp",
                    "headers": [{"name": "Authorization", "isRequired": true, "isSecret": true}]}],
                "packages": [{"registryType": "npm", "identifier": "w", "version": "1.0.0",
                    "transport": {"type": "stdio"}}]
            },
            "_meta": {
                OFFICIAL_META_KEY: {"status": "active", "publishedAt": "2026-01-02T03:04:05.678Z",
                    "updatedAt": "2026-01-02T03:04:05.678Z", "isLatest": true},
                "com.other/thing": {"ignored": true}
            }
        });
        let r: ServerResponse = serde_json::from_value(json).unwrap();
        assert!(r.server.remotes[0].is_streamable_http());
        assert_eq!(
            r.meta.official.as_ref().unwrap().status,
            OfficialStatus::Active
        );
        let again: ServerResponse =
            serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }
}
