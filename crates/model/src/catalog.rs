//! The tool catalog: what each server offers (tools, prompts, resources) as its MCP listing
//! returned it, per entry and version, with a content hash per item. The health worker's probe
//! fills it; `GET /servers/{id}/tools` reads one server's, `GET /tools?q=` searches them all.
//!
//! Pure types and the text rules both backends share (which words a tool is found by, how a
//! search query becomes terms); the storage is the store's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::{ToolDef, json_hash, tool_hash};
use crate::{HealthStatus, ServerId, Timestamp};

/// Most terms of a search query that count; the rest are ignored.
pub const MAX_SEARCH_TERMS: usize = 16;
/// Longest search query, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Most items of one kind kept per catalog: a server listing more is cut, and the catalog says
/// so ([`ServerCatalog::truncated`]).
pub const MAX_CATALOG_ITEMS: usize = 1000;

/// What one server offers, as one listing returned it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// `tools/list`.
    #[serde(default)]
    pub tools: Vec<ToolDef>,
    /// `prompts/list`, each as the server sent it.
    #[serde(default)]
    pub prompts: Vec<Value>,
    /// `resources/list`, each as the server sent it.
    #[serde(default)]
    pub resources: Vec<Value>,
}

/// What a catalog item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    /// A tool (`tools/list`).
    Tool,
    /// A prompt (`prompts/list`).
    Prompt,
    /// A resource (`resources/list`), named by its URI.
    Resource,
}

impl ItemKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Prompt => "prompt",
            Self::Resource => "resource",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tool" => Some(Self::Tool),
            "prompt" => Some(Self::Prompt),
            "resource" => Some(Self::Resource),
            _ => None,
        }
    }
}

/// One catalog item as stored: what search reads and what the API returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogItem {
    /// Tool, prompt or resource.
    pub kind: ItemKind,
    /// The tool's or prompt's name, the resource's URI.
    pub name: String,
    /// The words it is found by: its name split into words, and its title.
    pub words: String,
    /// Its description ("" when none).
    pub description: String,
    /// The item as JSON.
    pub body: String,
    /// [`tool_hash`] of a tool, [`json_hash`] of anything else.
    pub hash: String,
}

impl Catalog {
    /// The catalog's items, at most [`MAX_CATALOG_ITEMS`] of each kind, first ones kept; a name
    /// listed twice keeps its first listing. Items without a name are left out.
    pub fn items(&self) -> Vec<CatalogItem> {
        let mut items = Vec::with_capacity(self.tools.len() + self.prompts.len());
        let mut seen = std::collections::HashSet::new();
        for tool in self.tools.iter().take(MAX_CATALOG_ITEMS) {
            if seen.insert((ItemKind::Tool, tool.name.clone())) {
                items.push(CatalogItem {
                    kind: ItemKind::Tool,
                    name: tool.name.clone(),
                    words: search_words(&tool.name, tool.title.as_deref()),
                    description: tool.description.clone().unwrap_or_default(),
                    body: serde_json::to_string(tool).unwrap_or_default(),
                    hash: tool_hash(tool),
                });
            }
        }
        for (kind, list, key) in [
            (ItemKind::Prompt, &self.prompts, "name"),
            (ItemKind::Resource, &self.resources, "uri"),
        ] {
            for value in list.iter().take(MAX_CATALOG_ITEMS) {
                let Some(name) = value.get(key).and_then(Value::as_str) else {
                    continue;
                };
                if !seen.insert((kind, name.to_owned())) {
                    continue;
                }
                let text = |k: &str| value.get(k).and_then(Value::as_str);
                let label = text("title").or(text("name"));
                items.push(CatalogItem {
                    kind,
                    name: name.to_owned(),
                    words: search_words(name, label),
                    description: text("description").unwrap_or_default().to_owned(),
                    body: value.to_string(),
                    hash: json_hash(value),
                });
            }
        }
        items
    }

    /// Whether some list is longer than [`MAX_CATALOG_ITEMS`].
    pub fn is_truncated(&self) -> bool {
        self.tools.len() > MAX_CATALOG_ITEMS
            || self.prompts.len() > MAX_CATALOG_ITEMS
            || self.resources.len() > MAX_CATALOG_ITEMS
    }
}

/// The hash of a whole catalog: of its items' kinds, names and hashes, in kind and name order.
pub fn catalog_hash(items: &[CatalogItem]) -> String {
    let mut parts: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| (i.kind.as_str(), i.name.as_str(), i.hash.as_str()))
        .collect();
    parts.sort_unstable();
    json_hash(&serde_json::to_value(parts).unwrap_or(Value::Null))
}

/// The words a name is found by: split at `_`, `-`, `.`, `/`, `:` and lower-to-upper case
/// changes (`checkStock`, `check_stock` and `check-stock` all give `check stock`), followed by
/// the title, if any.
pub fn search_words(name: &str, title: Option<&str>) -> String {
    let mut out = String::with_capacity(name.len() * 2);
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_lowercase() || c.is_numeric();
        out.extend(c.to_lowercase());
    }
    let mut out = out.trim_end().to_owned();
    if let Some(title) = title.filter(|t| !t.trim().is_empty()) {
        out.push(' ');
        out.push_str(title.trim());
    }
    out
}

/// A search query's terms: its words (letters and digits), lowercased, at most
/// [`MAX_SEARCH_TERMS`], each once. Quotes, operators and other punctuation are not syntax:
/// `check "stock" OR *` searches for `check`, `stock` and `or`.
pub fn search_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let word = word.to_lowercase();
        if !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == MAX_SEARCH_TERMS {
            break;
        }
    }
    terms
}

/// One tool with its hash, as `GET /servers/{id}/tools` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CatalogTool {
    /// The tool as the server lists it.
    #[serde(flatten)]
    pub tool: ToolDef,
    /// [`tool_hash`] of the tool.
    pub hash: String,
}

/// One server's stored catalog: the body of `GET /servers/{id}/tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ServerCatalog {
    /// The entry.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ServerId,
    /// Its service.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub service: ServerId,
    /// The version the catalog was listed at.
    pub version: String,
    /// When the server was last listed; `None` when it never was.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub fetched_at: Option<Timestamp>,
    /// When the catalog last differed from the listing before it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub changed_at: Option<Timestamp>,
    /// [`catalog_hash`] of the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Tools, in name order.
    pub tools: Vec<CatalogTool>,
    /// Prompts, in name order.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub prompts: Vec<Value>,
    /// Resources, in URI order.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub resources: Vec<Value>,
}

/// One tool found by `GET /tools`: the tool, the entry serving it and that entry's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ToolHit {
    /// The tool's name.
    pub name: String,
    /// Its title, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its content hash.
    pub hash: String,
    /// The entry serving it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub server_id: ServerId,
    /// The entry's service.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub service: ServerId,
    /// The entry's version.
    pub version: String,
    /// The entry's health.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: HealthStatus,
    /// The entry's last successful check.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_seen: Option<Timestamp>,
    /// Relevance: higher is better; 0 when the query had no terms.
    pub score: f64,
}

/// A tool whose content changed while its server's version stayed the same: a
/// `tool-changed` event's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolChanged {
    /// The entry.
    pub id: ServerId,
    /// Its service.
    pub service: ServerId,
    /// The version that did not change.
    pub version: String,
    /// The tool.
    pub tool: String,
    /// Its hash before.
    pub from: String,
    /// Its hash now.
    pub to: String,
}

/// The hash of a tool an operator trusts at one version of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ToolPin {
    /// The version.
    pub version: String,
    /// The tool.
    pub tool: String,
    /// The trusted hash.
    pub hash: String,
    /// Who accepted it; `None` when it was trusted on first sight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
    /// When it was trusted.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub accepted_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_split_into_words() {
        assert_eq!(search_words("checkStock", None), "check stock");
        assert_eq!(
            search_words("check_stock", Some("Check stock")),
            "check stock Check stock"
        );
        assert_eq!(search_words("get-HTTPStatus.v2", None), "get httpstatus v2");
        assert_eq!(search_words("__x__", None), "x");
        assert_eq!(search_words("", Some("  ")), "");
    }

    #[test]
    fn query_terms_are_words_without_syntax() {
        assert_eq!(
            search_terms(r#"check "Stock" OR * stock"#),
            ["check", "stock", "or"]
        );
        assert!(search_terms("  -- ").is_empty());
        assert_eq!(search_terms(&"a ".repeat(100)), ["a"]);
        let many: String = (0..40).map(|i| format!("w{i} ")).collect();
        assert_eq!(search_terms(&many).len(), MAX_SEARCH_TERMS);
    }

    #[test]
    fn items_keep_first_listing_and_skip_nameless_ones() {
        let catalog: Catalog = serde_json::from_value(json!({
            "tools": [
                {"name": "lookup", "description": "Find.", "inputSchema": {"type": "object"}},
                {"name": "lookup", "description": "Again.", "inputSchema": {"type": "object"}}
            ],
            "prompts": [{"name": "summary", "title": "Summary"}, {"title": "no name"}],
            "resources": [{"uri": "file:///a", "name": "a"}]
        }))
        .unwrap();
        let items = catalog.items();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].description, "Find.");
        assert_eq!(items[1].kind, ItemKind::Prompt);
        assert_eq!(items[2].name, "file:///a");
        assert_eq!(items[0].hash, tool_hash(&catalog.tools[0]));
        let again = catalog_hash(&items);
        let mut reordered = items.clone();
        reordered.reverse();
        assert_eq!(catalog_hash(&reordered), again);
        reordered[0].hash = "x".into();
        assert_ne!(catalog_hash(&reordered), again);
    }
}
