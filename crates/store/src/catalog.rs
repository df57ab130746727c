//! The tool catalog in the store: each entry's listing per version (`catalogs`, `catalog_items`),
//! the hashes operators trust (`tool_pins`), and full-text search over tool names and
//! descriptions. The writes and reads both backends run as written are the macro [`catalog!`]
//! here; each backend's `catalog.rs` adds its search (SQLite FTS5, PostgreSQL `tsvector`).
//!
//! Over 500 lines: the SQL both backends share is one macro here, so that each write is read
//! once, in one place, rather than twice in the two backends' modules.

use std::collections::BTreeMap;

use mcp_fleet_model::{
    Catalog, CatalogTool, HealthStatus, ServerCatalog, ServerId, StatusFilter, Tag, Timestamp,
    ToolChanged, ToolDef, ToolHit,
};
use serde_json::Value;

use crate::StoreError;
use crate::events::{EventKind, NewEvent};

/// Largest page of [`crate::Store::search_tools`].
pub const MAX_TOOL_PAGE: u32 = 100;

/// The words PostgreSQL's `english` text-search configuration leaves out of a query (its
/// Snowball stop-word list). FTS5 has none: SQLite's search drops these terms itself, so both
/// backends match the same words (without it, `refund a payment` matched every tool whose
/// description has an `a`, and ranked them all).
pub const STOP_WORDS: [&str; 127] = [
    "i",
    "me",
    "my",
    "myself",
    "we",
    "our",
    "ours",
    "ourselves",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "a",
    "an",
    "the",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "other",
    "some",
    "such",
    "no",
    "nor",
    "not",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "should",
    "now",
];

/// One listing the health worker took, to store.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRecord {
    /// The entry listed.
    pub id: ServerId,
    /// The registration revision the listing was taken under: a listing of an entry deleted or
    /// registered again since is not stored.
    pub reg_rev: i64,
    /// What the server listed.
    pub catalog: Catalog,
    /// When.
    pub at: Timestamp,
}

/// What storing one listing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogWritten {
    /// The entry.
    pub id: ServerId,
    /// Whether the catalog differs from the one stored for its version before (or there was
    /// none): a `catalog` event was logged.
    pub changed: bool,
    /// Tools whose content changed under the same version (a `tool-changed` event each).
    pub tools_changed: Vec<ToolChanged>,
    /// [`mcp_fleet_model::catalog_hash`] of the catalog now stored: what a later
    /// [`CatalogTouch`] names.
    pub hash: String,
}

/// A listing the health worker found identical to the one it last stored for the entry: only
/// its time is written ([`crate::Store::touch_catalogs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogTouch {
    /// The entry listed.
    pub id: ServerId,
    /// The registration revision the listing was taken under.
    pub reg_rev: i64,
    /// [`CatalogWritten::hash`] of the catalog the worker stored last: the touch applies only
    /// while that catalog is still the one stored at the entry's version.
    pub hash: String,
    /// When.
    pub at: Timestamp,
}

/// A search over the catalog's tools, served by entries matching the filters: every tool when
/// there are no `terms`; otherwise the tools having every term (stop words left out), most
/// relevant first, then those having only some of them, most relevant first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolQuery {
    /// Search terms ([`mcp_fleet_model::search_terms`]).
    pub terms: Vec<String>,
    /// Entries having any of these tags; no filter when empty.
    pub tags: Vec<Tag>,
    /// Status of the serving entry; `Any` by default.
    pub status: Option<HealthStatus>,
    /// Only entries of this service.
    pub service: Option<ServerId>,
    /// Hits to skip: the cursor.
    pub offset: u32,
    /// Page size, 1..=[`MAX_TOOL_PAGE`].
    pub limit: u32,
}

impl ToolQuery {
    /// The status filter as a listing takes it.
    pub fn status_filter(&self) -> StatusFilter {
        self.status.map_or(StatusFilter::Any, StatusFilter::Only)
    }
}

/// One page of search hits.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolPage {
    /// The hits, most relevant first.
    pub tools: Vec<ToolHit>,
    /// The offset of the next page, when more hits remain.
    pub next_offset: Option<u32>,
}

/// The `catalog` event of a changed catalog: its counts and what changed from the one stored
/// for the same version before.
pub(crate) fn catalog_event(
    record: &CatalogRecord,
    service: &str,
    version: &str,
    hash: &str,
    old: Option<&BTreeMap<(String, String), String>>,
    new: &BTreeMap<(String, String), String>,
) -> NewEvent {
    let (id, catalog, at) = (&record.id, &record.catalog, record.at);
    let names = |f: &dyn Fn(&(String, String), &String) -> bool| -> Vec<String> {
        new.iter()
            .filter(|(k, h)| k.0 == "tool" && f(k, h))
            .map(|(k, _)| k.1.clone())
            .collect()
    };
    let (added, changed) = match old {
        Some(old) => (
            names(&|k, _| !old.contains_key(k)),
            names(&|k, h| old.get(k).is_some_and(|o| o != h)),
        ),
        None => (names(&|_, _| true), Vec::new()),
    };
    let removed: Vec<&String> = old
        .map(|old| {
            old.keys()
                .filter(|k| k.0 == "tool" && !new.contains_key(*k))
                .map(|k| &k.1)
                .collect()
        })
        .unwrap_or_default();
    let data = serde_json::json!({
        "id": id.as_str(),
        "service": service,
        "version": version,
        "hash": hash,
        "tools": catalog.tools.len(),
        "prompts": catalog.prompts.len(),
        "resources": catalog.resources.len(),
        "added": added,
        "removed": removed,
        "changed": changed,
    });
    NewEvent {
        kind: EventKind::Catalog,
        server_id: id.to_string(),
        at,
        data: data.to_string(),
    }
}

/// The `tool-changed` event of `change`.
pub(crate) fn tool_changed_event(change: &ToolChanged, at: Timestamp) -> NewEvent {
    NewEvent {
        kind: EventKind::ToolChanged,
        server_id: change.id.to_string(),
        at,
        data: serde_json::to_string(change).unwrap_or_default(),
    }
}

/// A stored catalog from its row and its items' `(kind, body, hash)`.
pub(crate) fn server_catalog(
    id: ServerId,
    service: &str,
    version: String,
    row: Option<(String, Timestamp, Timestamp)>,
    items: Vec<(String, String, String)>,
) -> Result<ServerCatalog, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        id: id.to_string(),
        reason,
    };
    let service = service
        .parse::<ServerId>()
        .map_err(|e| corrupt(format!("service: {e}")))?;
    let mut catalog = ServerCatalog {
        service,
        version,
        fetched_at: row.as_ref().map(|r| r.1),
        changed_at: row.as_ref().map(|r| r.2),
        hash: row.map(|r| r.0),
        tools: Vec::new(),
        prompts: Vec::new(),
        resources: Vec::new(),
        id: id.clone(),
    };
    for (kind, body, hash) in items {
        match kind.as_str() {
            "tool" => {
                let tool: ToolDef = serde_json::from_str(&body)
                    .map_err(|e| corrupt(format!("catalog tool: {e}")))?;
                catalog.tools.push(CatalogTool { tool, hash });
            }
            other => {
                let value: Value = serde_json::from_str(&body)
                    .map_err(|e| corrupt(format!("catalog {other}: {e}")))?;
                if other == "prompt" {
                    catalog.prompts.push(value);
                } else {
                    catalog.resources.push(value);
                }
            }
        }
    }
    Ok(catalog)
}

/// A search hit from its row: `(name, body, hash, server id, service, version, status,
/// last seen, score)`.
pub(crate) type HitRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<Timestamp>,
    f64,
);

/// The hits of `rows` (at most `limit + 1`), cut to a page.
pub(crate) fn hit_page(rows: Vec<HitRow>, query: &ToolQuery) -> Result<ToolPage, StoreError> {
    let more = rows.len() > query.limit as usize;
    let mut tools = Vec::with_capacity(rows.len().min(query.limit as usize));
    for (name, body, hash, id, service, version, status, last_seen, score) in
        rows.into_iter().take(query.limit as usize)
    {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: id.clone(),
            reason,
        };
        let tool: ToolDef =
            serde_json::from_str(&body).map_err(|e| corrupt(format!("catalog tool: {e}")))?;
        tools.push(ToolHit {
            name,
            title: tool.title,
            description: tool.description,
            hash,
            server_id: id
                .parse::<ServerId>()
                .map_err(|e| corrupt(format!("id: {e}")))?,
            service: service
                .parse::<ServerId>()
                .map_err(|e| corrupt(format!("service: {e}")))?,
            version,
            status: status.parse().map_err(corrupt)?,
            last_seen,
            score,
        });
    }
    Ok(ToolPage {
        tools,
        next_offset: more.then(|| query.offset + query.limit),
    })
}

/// Sets `unpinned` of the catalogs the condition appended names: whether a tool they list has a
/// hash other than its pin. Run after a changed listing is written and after pins are accepted.
pub(crate) const SET_UNPINNED: &str = "UPDATE catalogs SET unpinned = EXISTS (SELECT 1 \
     FROM catalog_items i JOIN tool_pins p ON p.service = catalogs.service \
     AND p.version = i.version AND p.tool = i.name WHERE i.server_id = catalogs.server_id \
     AND i.version = catalogs.version AND i.kind = 'tool' AND i.hash <> p.hash) WHERE ";

/// The catalog's writes and plain reads, in SQL both backends run; `$lock` locks the entry's
/// row for the write (PostgreSQL: ` FOR UPDATE`; SQLite's write transaction holds the lock).
macro_rules! catalog {
    ($store:ty, $lock:literal) => {
        pub(super) async fn put_catalogs(
            store: &$store,
            records: &[$crate::catalog::CatalogRecord],
        ) -> Result<Vec<$crate::catalog::CatalogWritten>, $crate::StoreError> {
            use std::collections::BTreeMap;
            let mut written = Vec::with_capacity(records.len());
            let mut events = Vec::new();
            let mut tx = store.begin_write().await?;
            for record in records {
                let id = record.id.as_str();
                let row: Option<(String, String)> = sqlx::query_as(concat!(
                    "SELECT version, service FROM servers WHERE id = $1 AND reg_rev = $2",
                    $lock
                ))
                .bind(id)
                .bind(record.reg_rev)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((version, service)) = row else {
                    continue;
                };
                let items = record.catalog.items();
                let hash = mcp_fleet_model::catalog_hash(&items);
                let new: BTreeMap<(String, String), String> = items
                    .iter()
                    .map(|i| ((i.kind.as_str().to_owned(), i.name.clone()), i.hash.clone()))
                    .collect();
                let stored: Option<String> = sqlx::query_scalar(
                    "SELECT hash FROM catalogs WHERE server_id = $1 AND version = $2",
                )
                .bind(id)
                .bind(&version)
                .fetch_optional(&mut *tx)
                .await?;
                if stored.as_deref() == Some(hash.as_str()) {
                    sqlx::query(
                        "UPDATE catalogs SET fetched_at = $1 WHERE server_id = $2 AND version = $3",
                    )
                    .bind(record.at)
                    .bind(id)
                    .bind(&version)
                    .execute(&mut *tx)
                    .await?;
                    written.push($crate::catalog::CatalogWritten {
                        id: record.id.clone(),
                        changed: false,
                        tools_changed: Vec::new(),
                        hash,
                    });
                    continue;
                }
                let old = if stored.is_some() {
                    let rows: Vec<(String, String, String)> = sqlx::query_as(
                        "SELECT kind, name, hash FROM catalog_items \
                         WHERE server_id = $1 AND version = $2",
                    )
                    .bind(id)
                    .bind(&version)
                    .fetch_all(&mut *tx)
                    .await?;
                    Some(
                        rows.into_iter()
                            .map(|(k, n, h)| ((k, n), h))
                            .collect::<BTreeMap<_, _>>(),
                    )
                } else {
                    None
                };
                sqlx::query(
                    "INSERT INTO catalogs \
                     (server_id, version, service, hash, tools, truncated, fetched_at, changed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     ON CONFLICT (server_id, version) DO UPDATE SET service = excluded.service, \
                     hash = excluded.hash, tools = excluded.tools, truncated = excluded.truncated, \
                     fetched_at = excluded.fetched_at, changed_at = excluded.changed_at",
                )
                .bind(id)
                .bind(&version)
                .bind(&service)
                .bind(&hash)
                .bind(i64::try_from(record.catalog.tools.len()).unwrap_or(i64::MAX))
                .bind(record.catalog.is_truncated())
                .bind(record.at)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM catalog_items WHERE server_id = $1 AND version = $2")
                    .bind(id)
                    .bind(&version)
                    .execute(&mut *tx)
                    .await?;
                for item in &items {
                    sqlx::query(
                        "INSERT INTO catalog_items \
                         (server_id, version, kind, name, words, description, body, hash) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(id)
                    .bind(&version)
                    .bind(item.kind.as_str())
                    .bind(&item.name)
                    .bind(&item.words)
                    .bind(&item.description)
                    .bind(&item.body)
                    .bind(&item.hash)
                    .execute(&mut *tx)
                    .await?;
                    if item.kind == mcp_fleet_model::ItemKind::Tool {
                        // Trust on first use: the first hash seen at a version is pinned.
                        sqlx::query(
                            "INSERT INTO tool_pins (service, version, tool, hash, accepted_at) \
                             VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (service, version, tool) DO NOTHING",
                        )
                        .bind(&service)
                        .bind(&version)
                        .bind(&item.name)
                        .bind(&item.hash)
                        .bind(record.at)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{}server_id = $1 AND version = $2",
                    $crate::catalog::SET_UNPINNED
                )))
                .bind(id)
                .bind(&version)
                .execute(&mut *tx)
                .await?;
                events.push($crate::catalog::catalog_event(
                    record,
                    &service,
                    &version,
                    &hash,
                    old.as_ref(),
                    &new,
                ));
                let service_id = service.parse::<mcp_fleet_model::ServerId>().map_err(|e| {
                    $crate::StoreError::Corrupt {
                        id: id.to_owned(),
                        reason: format!("service: {e}"),
                    }
                })?;
                let mut tools_changed = Vec::new();
                for ((kind, name), hash) in &new {
                    let before = old
                        .as_ref()
                        .and_then(|old| old.get(&(kind.clone(), name.clone())));
                    if kind == "tool" && before.is_some_and(|b| b != hash) {
                        let change = mcp_fleet_model::ToolChanged {
                            id: record.id.clone(),
                            service: service_id.clone(),
                            version: version.clone(),
                            tool: name.clone(),
                            from: before.cloned().unwrap_or_default(),
                            to: hash.clone(),
                        };
                        events.push($crate::catalog::tool_changed_event(&change, record.at));
                        tools_changed.push(change);
                    }
                }
                written.push($crate::catalog::CatalogWritten {
                    id: record.id.clone(),
                    changed: true,
                    tools_changed,
                    hash,
                });
            }
            if !events.is_empty() {
                super::events::log_events(&mut tx, &events, &store.options).await?;
            }
            tx.commit().await?;
            Ok(written)
        }

        pub(super) async fn touch_catalogs(
            store: &$store,
            touches: &[$crate::catalog::CatalogTouch],
        ) -> Result<Vec<mcp_fleet_model::ServerId>, $crate::StoreError> {
            let mut touched = Vec::with_capacity(touches.len());
            let mut tx = store.begin_write().await?;
            for touch in touches {
                let done = sqlx::query(
                    "UPDATE catalogs SET fetched_at = $1 WHERE server_id = $2 AND hash = $3 \
                     AND version = (SELECT version FROM servers WHERE id = $2 AND reg_rev = $4)",
                )
                .bind(touch.at)
                .bind(touch.id.as_str())
                .bind(&touch.hash)
                .bind(touch.reg_rev)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() > 0 {
                    touched.push(touch.id.clone());
                }
            }
            tx.commit().await?;
            Ok(touched)
        }

        /// The catalog of `id` at `version`, `service` being its service.
        async fn catalog_at(
            store: &$store,
            id: mcp_fleet_model::ServerId,
            service: &str,
            version: String,
        ) -> Result<mcp_fleet_model::ServerCatalog, $crate::StoreError> {
            let mut conn = store.pool.acquire().await?;
            let row: Option<(
                String,
                mcp_fleet_model::Timestamp,
                mcp_fleet_model::Timestamp,
            )> = sqlx::query_as(
                "SELECT hash, fetched_at, changed_at FROM catalogs \
                 WHERE server_id = $1 AND version = $2",
            )
            .bind(id.as_str())
            .bind(&version)
            .fetch_optional(&mut *conn)
            .await?;
            let items: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT kind, body, hash FROM catalog_items \
                 WHERE server_id = $1 AND version = $2 ORDER BY kind DESC, name",
            )
            .bind(id.as_str())
            .bind(&version)
            .fetch_all(&mut *conn)
            .await?;
            $crate::catalog::server_catalog(id, service, version, row, items)
        }

        pub(super) async fn server_catalog(
            store: &$store,
            id: &mcp_fleet_model::ServerId,
        ) -> Result<Option<mcp_fleet_model::ServerCatalog>, $crate::StoreError> {
            let row: Option<(String, String)> =
                sqlx::query_as("SELECT service, version FROM servers WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&store.pool)
                    .await?;
            match row {
                None => Ok(None),
                Some((service, version)) => {
                    catalog_at(store, id.clone(), &service, version).await.map(Some)
                }
            }
        }

        pub(super) async fn service_catalog(
            store: &$store,
            service: &mcp_fleet_model::ServerId,
            version: &str,
        ) -> Result<Option<mcp_fleet_model::ServerCatalog>, $crate::StoreError> {
            let newest: Option<String> = sqlx::query_scalar(
                "SELECT server_id FROM catalogs WHERE service = $1 AND version = $2 \
                 ORDER BY fetched_at DESC, server_id LIMIT 1",
            )
            .bind(service.as_str())
            .bind(version)
            .fetch_optional(&store.pool)
            .await?;
            let Some(id) = newest else {
                return Ok(None);
            };
            let id = id.parse::<mcp_fleet_model::ServerId>().map_err(|e| {
                $crate::StoreError::Corrupt {
                    id: id.clone(),
                    reason: e.to_string(),
                }
            })?;
            catalog_at(store, id, service.as_str(), version.to_owned())
                .await
                .map(Some)
        }

        pub(super) async fn catalog_times(
            store: &$store,
        ) -> Result<Vec<(mcp_fleet_model::ServerId, mcp_fleet_model::Timestamp)>, $crate::StoreError>
        {
            let rows: Vec<(String, mcp_fleet_model::Timestamp)> = sqlx::query_as(
                "SELECT c.server_id, c.fetched_at FROM catalogs c \
                 JOIN servers s ON s.id = c.server_id AND s.version = c.version",
            )
            .fetch_all(&store.pool)
            .await?;
            Ok(rows
                .into_iter()
                .filter_map(|(id, at)| Some((id.parse::<mcp_fleet_model::ServerId>().ok()?, at)))
                .collect())
        }

        pub(super) async fn tool_pins(
            store: &$store,
            service: &mcp_fleet_model::ServerId,
        ) -> Result<Vec<mcp_fleet_model::ToolPin>, $crate::StoreError> {
            let rows: Vec<(String, String, String, Option<String>, mcp_fleet_model::Timestamp)> =
                sqlx::query_as(
                    "SELECT version, tool, hash, accepted_by, accepted_at FROM tool_pins \
                     WHERE service = $1 ORDER BY version, tool",
                )
                .bind(service.as_str())
                .fetch_all(&store.pool)
                .await?;
            Ok(rows
                .into_iter()
                .map(
                    |(version, tool, hash, accepted_by, accepted_at)| mcp_fleet_model::ToolPin {
                        version,
                        tool,
                        hash,
                        accepted_by,
                        accepted_at,
                    },
                )
                .collect())
        }

        pub(super) async fn accept_tool(
            store: &$store,
            service: &mcp_fleet_model::ServerId,
            tool: &str,
            by: Option<&str>,
            now: mcp_fleet_model::Timestamp,
        ) -> Result<Vec<mcp_fleet_model::ToolPin>, $crate::StoreError> {
            let mut tx = store.begin_write().await?;
            // The newest listing of the tool at each version of the service.
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT c.version, i.hash FROM catalog_items i \
                 JOIN catalogs c ON c.server_id = i.server_id AND c.version = i.version \
                 WHERE c.service = $1 AND i.kind = 'tool' AND i.name = $2 \
                 ORDER BY c.version, c.fetched_at",
            )
            .bind(service.as_str())
            .bind(tool)
            .fetch_all(&mut *tx)
            .await?;
            let newest: std::collections::BTreeMap<String, String> = rows.into_iter().collect();
            let mut pins = Vec::with_capacity(newest.len());
            for (version, hash) in newest {
                sqlx::query(
                    "INSERT INTO tool_pins (service, version, tool, hash, accepted_by, accepted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (service, version, tool) DO UPDATE SET hash = excluded.hash, \
                     accepted_by = excluded.accepted_by, accepted_at = excluded.accepted_at",
                )
                .bind(service.as_str())
                .bind(&version)
                .bind(tool)
                .bind(&hash)
                .bind(by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                pins.push(mcp_fleet_model::ToolPin {
                    version,
                    tool: tool.to_owned(),
                    hash,
                    accepted_by: by.map(str::to_owned),
                    accepted_at: now,
                });
            }
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "{}service = $1",
                $crate::catalog::SET_UNPINNED
            )))
            .bind(service.as_str())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(pins)
        }
    };
}
pub(crate) use catalog;

/// Which tools of a search with terms a read ranks: a search reads the first tier, and the
/// second only when the first has fewer hits than the page needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Tools having every term.
    Every,
    /// Tools having some of the terms, not every one.
    Some,
}

/// The terms of `query` a backend searches for: [`STOP_WORDS`] left out, as PostgreSQL's
/// `english` configuration leaves them out.
pub(crate) fn key_terms(query: &ToolQuery) -> Vec<&str> {
    query
        .terms
        .iter()
        .map(String::as_str)
        .filter(|t| !STOP_WORDS.contains(t))
        .collect()
}

/// A backend's ranked reads of the tiers of a search.
pub(crate) trait TierSearch: Sync {
    /// Rows `offset..offset + rows` of `tier`'s hits of `terms` (not empty), most relevant
    /// first, among the tools of entries' current versions that pass `query`'s filters.
    fn tier(
        &self,
        query: &ToolQuery,
        terms: &[&str],
        tier: Tier,
        offset: u32,
        rows: u32,
    ) -> impl Future<Output = Result<Vec<HitRow>, StoreError>> + Send;

    /// How many hits `tier` has in all.
    fn tier_count(
        &self,
        query: &ToolQuery,
        terms: &[&str],
        tier: Tier,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
}

/// The page of a search with terms: the hits of [`Tier::Every`], then, once they run out
/// (a query matching fewer tools with all its words than a page), those of [`Tier::Some`].
/// Requiring every word first ranks fewer matches (ranking is the cost of a search: a
/// two-word query's words each match thousands of tools, both of them far fewer) and puts
/// the tools a query describes best first.
pub(crate) async fn search_in_tiers(
    store: &impl TierSearch,
    query: &ToolQuery,
) -> Result<ToolPage, StoreError> {
    let terms = key_terms(query);
    if terms.is_empty() {
        // Only stop words: nothing to search for (PostgreSQL finds nothing for them).
        return Ok(ToolPage {
            tools: Vec::new(),
            next_offset: None,
        });
    }
    let wanted = query.limit + 1;
    let mut rows = store
        .tier(query, &terms, Tier::Every, query.offset, wanted)
        .await?;
    if terms.len() > 1 && rows.len() < wanted as usize {
        // The first tier ends before this page does: how many hits it has, to know where in
        // the second this page starts.
        let every = if rows.is_empty() && query.offset > 0 {
            store.tier_count(query, &terms, Tier::Every).await?
        } else {
            query.offset + rows.len() as u32
        };
        let more = store
            .tier(
                query,
                &terms,
                Tier::Some,
                query.offset.saturating_sub(every),
                wanted - rows.len() as u32,
            )
            .await?;
        rows.extend(more);
    }
    hit_page(rows, query)
}

/// Appends the search's entry filters to a query whose servers are `s` and that ends in a
/// `WHERE` condition; `push_tags` appends "has any of these tags" as the backend writes it.
pub(crate) fn push_tool_filters<DB: sqlx::Database>(
    q: &mut sqlx::QueryBuilder<DB>,
    query: &ToolQuery,
    push_tags: impl FnOnce(&mut sqlx::QueryBuilder<DB>, &[Tag]),
) where
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let Some(status) = query.status {
        q.push(" AND s.status = ").push_bind(status.as_str());
    }
    if let Some(service) = &query.service {
        q.push(" AND s.service = ").push_bind(service.as_str());
    }
    if !query.tags.is_empty() {
        push_tags(q, &query.tags);
    }
}

/// Appends a search's order (relevance, the score being the ninth column, when it has terms)
/// and page (`limit + 1` rows, to tell if more remain).
pub(crate) fn push_order<DB: sqlx::Database>(q: &mut sqlx::QueryBuilder<DB>, query: &ToolQuery)
where
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if query.terms.is_empty() {
        q.push(" ORDER BY s.id, i.name");
    } else {
        q.push(" ORDER BY 9 DESC, s.id, i.name");
    }
    q.push(" LIMIT ")
        .push_bind(i64::from(query.limit) + 1)
        .push(" OFFSET ")
        .push_bind(i64::from(query.offset));
}
