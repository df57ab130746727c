//! Contracts between versions: what changed in a service's tool catalog from one version to the
//! next, and whether a client written for the old version can break on the new one. Pure: two
//! tool lists in, a [`CatalogDiff`] out, no I/O.
//!
//! Tools are matched by name: a renamed tool is one removed and one added. Two tools of the
//! same name are compared field by field and schema keyword by schema keyword; each difference
//! becomes a [`SchemaChange`] that says whether it breaks.
//!
//! # What breaks
//!
//! The input schema is what the client sends, so a change breaks when the new schema may reject
//! what an old client sends: a new required property, a property removed, a narrower `type` or
//! `enum`, a `const` added or changed, a tighter bound (`maxLength`, `minimum`, `pattern`, ...),
//! `additionalProperties` closed. The opposite changes are compatible, as are title,
//! description and `default` changes, which are reported all the same: a description is what
//! the model reads, and changing it is a candidate "silent change".
//!
//! The output schema is what the server returns, so the direction flips: a change breaks when
//! an old client may receive what it was not written for (a wider `type` or `enum`, a looser
//! bound), or may miss what it reads (a property removed, a required property made optional,
//! the output schema dropped). Adding output properties is compatible: clients ignore fields
//! they do not know.
//!
//! Keywords the comparison does not model (`oneOf`, `anyOf`, `allOf`, `not`, `if`/`then`/
//! `else`, `patternProperties`, tuple `items`, ...) are compared for equality only; a
//! difference in them counts as breaking, since compatibility could not be proven. Local
//! `$ref`s (`#/$defs/...`) are followed, to a depth of 32 and once per cycle.
//!
//! # The answer
//!
//! `GET /services/{service}/diff?from=1.0.0&to=1.1.0` answers a [`VersionDiff`]: the service,
//! both versions and the fields of a [`CatalogDiff`]. Here `lookup`
//! got a tighter `sku`, a new required `warehouse` and a new description, `stock` went and
//! `reserve` came:
//!
//! ```
//! use mcp_fleet_model::{ToolDef, diff_catalogs};
//! use serde_json::json;
//!
//! let old: Vec<ToolDef> = serde_json::from_value(json!([
//!     {"name": "lookup", "description": "Find a product.", "inputSchema": {"type": "object",
//!         "properties": {"sku": {"type": "string", "maxLength": 12}}, "required": ["sku"]}},
//!     {"name": "stock", "inputSchema": {"type": "object"}}
//! ]))?;
//! let new: Vec<ToolDef> = serde_json::from_value(json!([
//!     {"name": "lookup", "description": "Find a product by SKU.", "inputSchema": {"type": "object",
//!         "properties": {"sku": {"type": "string", "maxLength": 8}, "warehouse": {"type": "string"}},
//!         "required": ["sku", "warehouse"]}},
//!     {"name": "reserve", "inputSchema": {"type": "object"}}
//! ]))?;
//! assert_eq!(serde_json::to_value(diff_catalogs(&old, &new))?, json!({
//!     "breaking": true,
//!     "added": ["reserve"],
//!     "removed": ["stock"],
//!     "changed": [{
//!         "name": "lookup",
//!         "breaking": true,
//!         "changes": [
//!             {"kind": "descriptionChanged", "location": "tool", "path": "/description",
//!              "breaking": false, "message": "The tool's description changed."},
//!             {"kind": "boundTightened", "location": "input", "path": "/properties/sku/maxLength",
//!              "breaking": true,
//!              "message": "The input at `/properties/sku`: `maxLength` tightened from 12 to 8."},
//!             {"kind": "propertyAdded", "location": "input", "path": "/properties/warehouse",
//!              "breaking": false,
//!              "message": "Property `warehouse` was added to the input schema."},
//!             {"kind": "requiredAdded", "location": "input", "path": "/properties/warehouse",
//!              "breaking": true,
//!              "message": "Property `warehouse` of the input schema is now required."}
//!         ]
//!     }]
//! }));
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! Tests: the unit tests here and in `hash.rs` and `schema.rs`, and the corpus of tool pairs
//! with their expected verdicts in `tests/fixtures/contract-corpus.json` (`tests/contract.rs`).

mod gate;
mod hash;
mod schema;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use gate::{
    BreakingAllowed, ContractBreak, ContractCheck, RoutingContract, check_contract, stable_version,
};
pub use hash::{json_hash, tool_hash};

/// One tool as a server lists it (`tools/list`), in this crate's own type so that comparing
/// catalogs needs no MCP library. Fields the comparison does not read (`_meta`, `icons`) are
/// ignored when parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ToolDef {
    /// The name clients call it by; what two catalogs are matched on.
    pub name: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the tool does, as the model reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments (what the client sends).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub input_schema: Value,
    /// JSON Schema of the structured result (what the server returns), when declared.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Behaviour hints (`readOnlyHint`, `destructiveHint`, ...).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
}

/// How one catalog differs from another: the body of `GET /services/{service}/diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CatalogDiff {
    /// Whether a client of the old catalog can break: a tool removed, or any breaking change.
    pub breaking: bool,
    /// Tools only the new catalog has, by name (compatible).
    pub added: Vec<String>,
    /// Tools only the old catalog has, by name (breaking).
    pub removed: Vec<String>,
    /// Tools in both whose definitions differ, by name; unchanged tools are left out.
    pub changed: Vec<ToolChange>,
}

/// The body of `GET /services/{service}/diff`: how the catalog listed at version `to` of a
/// service differs from the one listed at `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VersionDiff {
    /// The service.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub service: crate::ids::ServerId,
    /// The version compared from: the contract clients were written for.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub from: crate::ids::Version,
    /// The version compared to.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub to: crate::ids::Version,
    /// What changed.
    #[serde(flatten)]
    pub diff: CatalogDiff,
}

/// How one tool present in both catalogs changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ToolChange {
    /// The tool's name.
    pub name: String,
    /// Whether any of its changes is breaking.
    pub breaking: bool,
    /// Every change found, never empty.
    pub changes: Vec<SchemaChange>,
}

/// One change to a tool: what kind, where, whether it breaks clients, and a sentence saying so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SchemaChange {
    /// What changed.
    pub kind: ChangeKind,
    /// Which part of the tool: its input schema, its output schema, or the tool's own fields.
    pub location: ChangeLocation,
    /// JSON-pointer-like path within that part (`/properties/sku`; empty for the schema's
    /// root). It follows the shape of the data: a change inside `$defs/Address`, reached from
    /// property `billing`, reads `/properties/billing/properties/zip`.
    pub path: String,
    /// Whether a client written for the old definition can break on the new one.
    pub breaking: bool,
    /// The change in words.
    pub message: String,
}

/// The part of a tool a [`SchemaChange`] is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum ChangeLocation {
    /// `inputSchema`: what the client sends. Narrowing breaks clients.
    Input,
    /// `outputSchema`: what the server returns. Widening, or taking away, breaks clients.
    Output,
    /// The tool's title, description or annotations: never breaking, always reported.
    Tool,
}

/// The kinds of change. Whether one breaks depends on where it is: see [`ChangeLocation`] and
/// the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub enum ChangeKind {
    /// A `title` was added, changed or removed.
    TitleChanged,
    /// A `description` was added, changed or removed: harmless to a schema check, but it
    /// changes what the model reads (a candidate "silent change").
    DescriptionChanged,
    /// A `default` was added, changed or removed: clients omitting the value get another one.
    DefaultChanged,
    /// Another annotation (`examples`, `deprecated`, a tool hint, an unknown keyword) changed.
    AnnotationChanged,
    /// A property was added to `properties`.
    PropertyAdded,
    /// A property was removed from `properties`.
    PropertyRemoved,
    /// A property became required (new or not).
    RequiredAdded,
    /// A required property became optional.
    RequiredRemoved,
    /// `type` accepts fewer types (`["string","null"]` → `"string"`, `number` → `integer`).
    TypeNarrowed,
    /// `type` accepts more types.
    TypeWidened,
    /// `type` both dropped and gained types (`string` → `number`).
    TypeChanged,
    /// `enum` lost values, or was added.
    EnumNarrowed,
    /// `enum` gained values, or was removed.
    EnumWidened,
    /// `enum` both lost and gained values.
    EnumChanged,
    /// `const` was added, changed or removed.
    ConstChanged,
    /// A bound (`maxLength`, `minimum`, `pattern`, `format`, ...) was added or tightened.
    BoundTightened,
    /// A bound was removed or loosened.
    BoundLoosened,
    /// A bound changed in a way neither tighter nor looser (another `pattern`).
    BoundChanged,
    /// `additionalProperties` went from open to `false` or to a schema, or from a schema to
    /// `false`.
    AdditionalPropertiesRestricted,
    /// `additionalProperties` went from `false` or a schema to open, or from `false` to a schema.
    AdditionalPropertiesRelaxed,
    /// The tool gained an output schema.
    OutputSchemaAdded,
    /// The tool lost its output schema.
    OutputSchemaRemoved,
    /// Something the comparison does not model (`oneOf`, `anyOf`, `allOf`, `not`, `if`, an
    /// unresolvable `$ref`, nesting past the depth limit) changed: counted as breaking, since
    /// compatibility could not be proven.
    NotComparable,
}

impl std::fmt::Display for ChangeLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::Tool => "tool",
        })
    }
}

impl std::fmt::Display for ChangeKind {
    /// The name the JSON answer gives it (`requiredAdded`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(Value::String(name)) => f.write_str(&name),
            _ => write!(f, "{self:?}"),
        }
    }
}

/// Which way a change moves the set of values a schema accepts; with the location, it decides
/// whether the change breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Annotations: the accepted values are the same.
    None,
    /// The new schema accepts less.
    Narrows,
    /// The new schema accepts more.
    Widens,
    /// Both, or unknown.
    Both,
}

impl SchemaChange {
    fn new(
        kind: ChangeKind,
        effect: Effect,
        location: ChangeLocation,
        path: String,
        message: String,
    ) -> Self {
        Self {
            kind,
            location,
            path,
            breaking: is_breaking(kind, effect, location),
            message,
        }
    }
}

/// The rule. Input: a change breaks when the new schema may reject what a client sends, i.e.
/// it narrows. Output: when a client may receive what it was not written for, i.e. it widens,
/// or a property it reads is gone. Two exceptions on purpose, both following how clients
/// actually use schemas rather than strict set inclusion: clients send only the properties a
/// schema names, so a new optional input property is compatible and a removed one breaks (the
/// new schema rejects it or the server ignores it); and clients ignore output fields they do
/// not know, so new output properties and a relaxed output `additionalProperties` are
/// compatible.
fn is_breaking(kind: ChangeKind, effect: Effect, location: ChangeLocation) -> bool {
    match (kind, location) {
        _ if effect == Effect::None => false,
        (ChangeKind::NotComparable | ChangeKind::PropertyRemoved, _) => true,
        (ChangeKind::PropertyAdded, _)
        | (ChangeKind::AdditionalPropertiesRelaxed, ChangeLocation::Output) => false,
        (_, ChangeLocation::Output) => matches!(effect, Effect::Widens | Effect::Both),
        _ => matches!(effect, Effect::Narrows | Effect::Both),
    }
}

/// Compares two catalogs: tools matched by name (a name listed twice counts once, as its last
/// definition), each list sorted by name.
pub fn diff_catalogs(old: &[ToolDef], new: &[ToolDef]) -> CatalogDiff {
    let old: BTreeMap<&str, &ToolDef> = old.iter().map(|t| (t.name.as_str(), t)).collect();
    let new: BTreeMap<&str, &ToolDef> = new.iter().map(|t| (t.name.as_str(), t)).collect();
    let added: Vec<String> = new
        .keys()
        .filter(|name| !old.contains_key(*name))
        .map(|name| (*name).to_owned())
        .collect();
    let removed: Vec<String> = old
        .keys()
        .filter(|name| !new.contains_key(*name))
        .map(|name| (*name).to_owned())
        .collect();
    let changed: Vec<ToolChange> = old
        .iter()
        .filter_map(|(name, before)| diff_tool(before, new.get(name)?))
        .collect();
    CatalogDiff {
        breaking: !removed.is_empty() || changed.iter().any(|c| c.breaking),
        added,
        removed,
        changed,
    }
}

/// How `new` differs from `old` (the same tool in two versions; the name is taken from `new`),
/// or `None` when nothing the comparison sees changed.
pub fn diff_tool(old: &ToolDef, new: &ToolDef) -> Option<ToolChange> {
    let mut changes = Vec::new();
    let tool_field = |kind, field: &str, what: &str| {
        SchemaChange::new(
            kind,
            Effect::None,
            ChangeLocation::Tool,
            format!("/{field}"),
            format!("The tool's {what} changed."),
        )
    };
    if old.title != new.title {
        changes.push(tool_field(ChangeKind::TitleChanged, "title", "title"));
    }
    if old.description != new.description {
        changes.push(tool_field(
            ChangeKind::DescriptionChanged,
            "description",
            "description",
        ));
    }
    if old.annotations != new.annotations {
        diff_annotations(
            old.annotations.as_ref(),
            new.annotations.as_ref(),
            &mut changes,
        );
    }
    changes.extend(schema::compare(
        &old.input_schema,
        &new.input_schema,
        ChangeLocation::Input,
    ));
    match (&old.output_schema, &new.output_schema) {
        (None, None) => {}
        (None, Some(_)) => changes.push(SchemaChange::new(
            ChangeKind::OutputSchemaAdded,
            Effect::Narrows,
            ChangeLocation::Output,
            String::new(),
            "The tool now declares an output schema.".to_owned(),
        )),
        (Some(_), None) => changes.push(SchemaChange::new(
            ChangeKind::OutputSchemaRemoved,
            Effect::Widens,
            ChangeLocation::Output,
            String::new(),
            "The tool no longer declares an output schema: clients reading its structured \
             result lose the guarantee."
                .to_owned(),
        )),
        (Some(before), Some(after)) => {
            changes.extend(schema::compare(before, after, ChangeLocation::Output));
        }
    }
    if changes.is_empty() {
        return None;
    }
    Some(ToolChange {
        name: new.name.clone(),
        breaking: changes.iter().any(|c| c.breaking),
        changes,
    })
}

/// One change per annotation key that differs, or one for the whole field when either side is
/// not an object.
fn diff_annotations(old: Option<&Value>, new: Option<&Value>, changes: &mut Vec<SchemaChange>) {
    let empty = Map::new();
    let as_map = |v: Option<&'_ Value>| -> Option<Map<String, Value>> {
        match v {
            None => Some(empty.clone()),
            Some(v) => v.as_object().cloned(),
        }
    };
    let (Some(before), Some(after)) = (as_map(old), as_map(new)) else {
        changes.push(SchemaChange::new(
            ChangeKind::AnnotationChanged,
            Effect::None,
            ChangeLocation::Tool,
            "/annotations".to_owned(),
            "The tool's annotations changed.".to_owned(),
        ));
        return;
    };
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (was, is) = (before.get(key), after.get(key));
        if was != is {
            let show = |v: Option<&Value>| v.map_or_else(|| "unset".to_owned(), Value::to_string);
            changes.push(SchemaChange::new(
                ChangeKind::AnnotationChanged,
                Effect::None,
                ChangeLocation::Tool,
                format!("/annotations/{}", schema::escape(key)),
                format!(
                    "The tool's annotation `{key}` changed from {} to {}.",
                    show(was),
                    show(is)
                ),
            ));
        }
    }
}
