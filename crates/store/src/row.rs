//! Conversion of stored columns back into an [`Entry`], and the renderings of unchanged rows that
//! listings reuse, shared by both backends.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use mcp_fleet_model::{
    AuthSpec, AuthType, Entry, HealthCheck, HealthCheckMode, HealthStatus, HttpUrl, ServerId, Tag,
    Timestamp,
};
use serde_json::{Map, Value};

use crate::{RenderedPage, StoreError};

/// Most renderings kept; past it they are dropped and rendered again as rows are listed.
const MAX_RENDERINGS: usize = 1 << 16;

/// An entry's columns as both backends read them.
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) service: String,
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
    pub(crate) last_error_detail: Option<String>,
    pub(crate) latency_ms: Option<i64>,
    pub(crate) status_since: Option<Timestamp>,
    pub(crate) updated_by: Option<String>,
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
            service: self
                .service
                .parse::<ServerId>()
                .map_err(|e| bad(format!("service {e}")))?,
            name: self.name,
            description: self.description,
            // Read as stored by any version: URLs were checked less strictly before.
            url: HttpUrl::from_stored(&self.url).map_err(|e| bad(format!("url {e}")))?,
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
                    .map(|u| HttpUrl::from_stored(&u))
                    .transpose()
                    .map_err(|e| bad(format!("auth.tokenEndpoint {e}")))?,
            },
            health_url: self
                .health_url
                .map(|u| HttpUrl::from_stored(&u))
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
            last_error_detail: self.last_error_detail,
            latency_ms: crate::health::u32_of(self.latency_ms),
            status_since: self.status_since,
            updated_by: self.updated_by,
        })
    }
}

/// Entries rendered as JSON, by id and row version. Every write to a row gives it a new version
/// (a trigger does, whoever writes, see migration 0002), and versions are never reused, so a
/// rendering kept for `(id, version)` is always that of the row as it is at that version.
/// Listings then decode and render only rows written since they were last listed: decoding
/// (URLs, semver, JSON) and rendering cost more than the query itself.
#[derive(Default)]
pub(crate) struct Renderings {
    kept: Mutex<HashMap<String, (i64, Arc<str>)>>,
}

impl fmt::Debug for Renderings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self.kept.lock().map_or(0, |k| k.len());
        f.debug_struct("Renderings").field("kept", &kept).finish()
    }
}

impl Renderings {
    /// A page from `listed`, the `(id, row version)` of up to `limit + 1` rows in id order. Rows
    /// without a kept rendering at that version are fetched by `fetch` (given their ids, it
    /// returns their columns and versions), rendered and kept. `None` when a fetched row is no
    /// longer at its listed version (written in between): the caller then lists the plain way.
    pub(crate) async fn page<F, Fut>(
        &self,
        listed: Vec<(String, i64)>,
        limit: u32,
        fetch: F,
    ) -> Result<Option<RenderedPage>, StoreError>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<(RawEntry, i64)>, StoreError>>,
    {
        let mut found: Vec<Option<Arc<str>>> = {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            listed
                .iter()
                .map(|(id, version)| match kept.get(id) {
                    Some((v, json)) if v == version => Some(json.clone()),
                    _ => None,
                })
                .collect()
        };
        let missing: Vec<String> = listed
            .iter()
            .zip(&found)
            .filter(|(_, json)| json.is_none())
            .map(|((id, _), _)| id.clone())
            .collect();
        if !missing.is_empty() {
            let mut rendered = HashMap::with_capacity(missing.len());
            for (raw, version) in fetch(missing).await? {
                let entry = raw.into_entry()?;
                rendered.insert(entry.id.to_string(), (version, crate::render(&entry)?));
            }
            for ((id, version), json) in listed.iter().zip(&mut found) {
                if json.is_none() {
                    match rendered.get(id) {
                        Some((v, r)) if v == version => *json = Some(r.clone()),
                        _ => return Ok(None),
                    }
                }
            }
            self.keep(rendered);
        }
        let mut entries: Vec<Arc<str>> = found.into_iter().flatten().collect();
        let limit = limit as usize;
        let next_after = if entries.len() > limit {
            entries.truncate(limit);
            listed[..limit]
                .last()
                .map(|(id, _)| server_id(id.clone()))
                .transpose()?
        } else {
            None
        };
        Ok(Some(RenderedPage {
            entries,
            next_after,
        }))
    }

    fn keep(&self, rendered: HashMap<String, (i64, Arc<str>)>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() + rendered.len() > MAX_RENDERINGS {
            kept.clear();
        }
        for (id, (version, json)) in rendered {
            // A slower listing may have read an older version: keep the newest.
            if kept.get(&id).is_none_or(|(v, _)| *v < version) {
                kept.insert(id, (version, json));
            }
        }
    }
}

/// A stored id, parsed; a bad one is a corrupt row named by the text.
pub(crate) fn server_id(id: String) -> Result<ServerId, StoreError> {
    id.parse().map_err(|e| StoreError::Corrupt {
        reason: format!("id {e}"),
        id,
    })
}

/// Parses `id version id version …`, the one-value form of a listing SQLite answers with.
pub(crate) fn parse_listed(text: &str) -> Option<Vec<(String, i64)>> {
    let mut words = text.split_ascii_whitespace();
    let mut listed = Vec::new();
    while let Some(id) = words.next() {
        listed.push((id.to_owned(), words.next()?.parse().ok()?));
    }
    Some(listed)
}
