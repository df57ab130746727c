//! Conversion of stored columns back into an [`Entry`], shared by both backends.

use mcp_fleet_model::{
    AuthSpec, AuthType, Entry, HealthCheck, HealthCheckMode, HealthStatus, ServerId, Tag, Timestamp,
};
use serde_json::{Map, Value};

use crate::StoreError;

/// An entry's columns as both backends read them.
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) url: String,
    pub(crate) version: String,
    pub(crate) tags: Vec<String>,
    pub(crate) auth_type: String,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) health_url: Option<String>,
    pub(crate) status: String,
    pub(crate) last_seen: Option<Timestamp>,
    pub(crate) registered_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) metadata: Value,
    pub(crate) health_mode: String,
    pub(crate) ttl_seconds: Option<i64>,
    pub(crate) last_checked_at: Option<Timestamp>,
    pub(crate) last_error: Option<String>,
    pub(crate) latency_ms: Option<i64>,
    pub(crate) status_since: Option<Timestamp>,
}

impl RawEntry {
    pub(crate) fn into_entry(self) -> Result<Entry, StoreError> {
        let id = self.id;
        let bad = |reason: String| StoreError::Corrupt {
            id: id.clone(),
            reason,
        };
        let metadata = match self.metadata {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => return Err(bad(format!("metadata is not an object: {other}"))),
        };
        Ok(Entry {
            id: id.parse::<ServerId>().map_err(|e| bad(format!("id {e}")))?,
            name: self.name,
            description: self.description,
            url: self.url.parse().map_err(|e| bad(format!("url {e}")))?,
            version: self
                .version
                .parse()
                .map_err(|e| bad(format!("version {e}")))?,
            tags: self
                .tags
                .iter()
                .map(|t| t.parse::<Tag>())
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("tag {e}")))?,
            auth: AuthSpec {
                kind: self
                    .auth_type
                    .parse::<AuthType>()
                    .map_err(|e| bad(format!("auth.type {e}")))?,
                token_endpoint: self
                    .token_endpoint
                    .map(|u| u.parse())
                    .transpose()
                    .map_err(|e| bad(format!("auth.tokenEndpoint {e}")))?,
            },
            health_url: self
                .health_url
                .map(|u| u.parse())
                .transpose()
                .map_err(|e| bad(format!("healthUrl {e}")))?,
            last_seen: self.last_seen,
            status: self
                .status
                .parse::<HealthStatus>()
                .map_err(|e| bad(format!("status {e}")))?,
            registered_at: self.registered_at,
            updated_at: self.updated_at,
            metadata,
            health_check: HealthCheck {
                mode: self
                    .health_mode
                    .parse::<HealthCheckMode>()
                    .map_err(|e| bad(format!("healthCheck.mode {e}")))?,
            },
            ttl_seconds: crate::health::u32_of(self.ttl_seconds),
            last_checked_at: self.last_checked_at,
            last_error: self.last_error,
            latency_ms: crate::health::u32_of(self.latency_ms),
            status_since: self.status_since,
        })
    }
}
