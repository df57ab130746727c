//! Registry entry types and their validation. No I/O: everything here is testable in microseconds.
//!
//! A registration body is parsed once, at the edge, into a [`Registration`] whose fields are
//! already-valid newtypes ([`ServerId`], [`Tag`], [`Version`], ...); the rest of the system
//! never sees an unchecked value.

pub mod address;
mod auth;
mod base_url;
mod canary;
pub mod catalog;
pub mod contract;
mod duration;
mod entry;
mod error;
mod ids;
pub mod official;
#[cfg(feature = "openapi")]
mod openapi;
mod registration;
mod routing;
pub mod server_json;
mod status;
mod time;

pub use address::{AddressPolicy, AddressPolicyDocument, PolicyMode, Refused, parse_cidr};
pub use auth::{IdPattern, Scope, TokenRecord, glob_match, parse_id_patterns, parse_scopes};
pub use base_url::registry_base_url;
pub use canary::{
    MAX_OBSERVED_SLOTS, MAX_OBSERVED_VERSIONS, MAX_REPLICA_CHARS, MAX_SLOT_CALLS, MAX_SLOT_MS,
    Observations, ObservedTotals, SlotCounts, VersionTotals, WINDOW_SLOTS, parse_replica, slot_ms,
    slot_of,
};
pub use catalog::{
    Catalog, CatalogItem, CatalogTool, ItemKind, ServerCatalog, ToolChanged, ToolHit, ToolPin,
    catalog_hash, search_terms, search_words,
};
pub use contract::{
    BreakingAllowed, CatalogDiff, ChangeKind, ChangeLocation, ContractBreak, ContractCheck,
    RoutingContract, SchemaChange, ToolChange, ToolDef, VersionDiff, check_contract, diff_catalogs,
    diff_tool, json_hash, stable_version, tool_hash,
};
pub use duration::parse_duration;
pub use entry::{Entry, HealthCheck, HealthCheckMode, HealthStatus, StatusFilter};
pub use error::{FieldError, ValidationErrors};
pub use ids::{AuthSpec, AuthType, HttpUrl, ServerId, Tag, Version};
pub use registration::{
    MAX_METADATA_BYTES, MAX_TAGS, REGISTRATION_FIELDS, REGISTRY_OWNED, Registration, TTL_SECONDS,
};
pub use routing::{
    AllowBreaking, MAX_ALLOW_REASON_CHARS, MAX_ROUTED_VERSIONS, ROLLBACK_MIN_REQUESTS,
    ROLLBACK_WINDOW, RollbackError, RollbackRecord, RollbackRule, Routing, RoutingPolicy,
    format_window, parse_window, subset_name,
};
pub use status::{BreakingCanary, FleetStatus, ServerStatus, StatusSummary};
pub use time::{Timestamp, format_timestamp};
