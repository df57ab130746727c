//! The tool catalog in SQLite: the shared SQL (`crate::catalog::catalog!`) and search through
//! the FTS5 table `catalog_search` (Porter stemming, BM25 ranking with a tool's words weighing
//! four times its description).
//!
//! A search ranks in the full-text index first and reads the rows of the best-ranked hits
//! only: joining every match to its item and entry before sorting cost ~2.5 µs a match, 50 ms
//! for a query matching 5% of 200,000 tools (docs/perf.md, tool catalog).

use mcp_fleet_model::Timestamp;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::StoreError;
use crate::catalog::{HitRow, STOP_WORDS, ToolPage, ToolQuery, hit_page, push_tool_filters};

const HIT_COLUMNS: &str = "i.name, i.body, i.hash, s.id, s.service, s.version, s.status, \
                           s.last_seen";

/// A hit of the ranked-first search, and whether the ranking left matches out.
type RankedRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<Timestamp>,
    f64,
    bool,
);

pub(super) async fn search_tools(
    store: &SqliteStore,
    query: &ToolQuery,
) -> Result<ToolPage, StoreError> {
    if query.terms.is_empty() {
        return list_tools(store, query).await;
    }
    let terms: Vec<&String> = query
        .terms
        .iter()
        .filter(|t| !STOP_WORDS.contains(&t.as_str()))
        .collect();
    if terms.is_empty() {
        // Only stop words: PostgreSQL finds nothing for them either.
        return Ok(ToolPage {
            tools: Vec::new(),
            next_offset: None,
        });
    }
    // Each term quoted: FTS5 syntax in a term (`OR`, `*`, `-`) is then plain text.
    let matched = terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "")))
        .collect::<Vec<_>>()
        .join(" OR ");
    let filtered = query.status.is_some() || query.service.is_some() || !query.tags.is_empty();
    if !filtered && let Some(page) = ranked_first(store, query, &matched).await? {
        return Ok(page);
    }
    let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
    q.push(HIT_COLUMNS)
        .push(
            ", -bm25(catalog_search, 4.0, 1.0) FROM catalog_search \
             JOIN catalog_items i ON i.item_id = catalog_search.rowid \
             JOIN servers s ON s.id = i.server_id AND s.version = i.version \
             WHERE catalog_search MATCH ",
        )
        .push_bind(matched)
        .push(" AND i.kind = 'tool'");
    push_filters(&mut q, query);
    q.push(" ORDER BY 9 DESC, s.id, i.name");
    push_page(&mut q, query);
    let rows: Vec<HitRow> = q.build_query_as().fetch_all(&store.pool).await?;
    hit_page(rows, query)
}

/// Every tool, by entry and name.
async fn list_tools(store: &SqliteStore, query: &ToolQuery) -> Result<ToolPage, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
    q.push(HIT_COLUMNS).push(
        ", 0.0 FROM catalog_items i \
         JOIN servers s ON s.id = i.server_id AND s.version = i.version \
         WHERE i.kind = 'tool'",
    );
    push_filters(&mut q, query);
    q.push(" ORDER BY s.id, i.name");
    push_page(&mut q, query);
    let rows: Vec<HitRow> = q.build_query_as().fetch_all(&store.pool).await?;
    hit_page(rows, query)
}

/// The page of an unfiltered search from the best-ranked matches only: those scoring at least
/// as well as the match ranked `4 × (offset + limit + 1)`th, ties included, joined to their
/// items and entries. Every match left out scores below every one kept, so the page is the
/// one the whole ranking gives, unless fewer than a page's rows remain once matches of other
/// kinds (prompts, resources) and of versions no longer served are dropped: then `None`, and
/// the caller ranks everything.
async fn ranked_first(
    store: &SqliteStore,
    query: &ToolQuery,
    matched: &str,
) -> Result<Option<ToolPage>, StoreError> {
    let wanted = i64::from(query.offset) + i64::from(query.limit) + 1;
    let mut q = QueryBuilder::<Sqlite>::new(
        // MATERIALIZED: bm25() is computed once per match, in the full-text scan, where it
        // can be.
        "WITH m AS MATERIALIZED (SELECT rowid AS item_id, -bm25(catalog_search, 4.0, 1.0) \
         AS score FROM catalog_search WHERE catalog_search MATCH ",
    );
    q.push_bind(matched)
        .push(
            "), ranked AS (SELECT item_id, score FROM (SELECT item_id, score, \
             rank() OVER (ORDER BY score DESC) AS r FROM m) WHERE r <= ",
        )
        .push_bind(wanted * 4)
        .push(") SELECT ")
        .push(HIT_COLUMNS)
        .push(
            ", ranked.score, (SELECT count(*) FROM m) > (SELECT count(*) FROM ranked) \
             FROM ranked JOIN catalog_items i ON i.item_id = ranked.item_id \
             JOIN servers s ON s.id = i.server_id AND s.version = i.version \
             WHERE i.kind = 'tool' ORDER BY 9 DESC, s.id, i.name",
        );
    push_page(&mut q, query);
    let rows: Vec<RankedRow> = q.build_query_as().fetch_all(&store.pool).await?;
    let cut = rows.first().is_none_or(|r| r.9);
    if cut && (rows.len() as i64) < wanted - i64::from(query.offset) {
        return Ok(None);
    }
    let rows = rows
        .into_iter()
        .map(|(a, b, c, d, e, f, g, h, score, _)| (a, b, c, d, e, f, g, h, score))
        .collect();
    hit_page(rows, query).map(Some)
}

fn push_filters(q: &mut QueryBuilder<Sqlite>, query: &ToolQuery) {
    push_tool_filters(q, query, |q, tags| {
        q.push(" AND s.id IN (SELECT server_id FROM server_tags WHERE tag IN (");
        let mut list = q.separated(", ");
        for tag in tags {
            list.push_bind(tag.as_str());
        }
        q.push("))");
    });
}

fn push_page(q: &mut QueryBuilder<Sqlite>, query: &ToolQuery) {
    q.push(" LIMIT ")
        .push_bind(i64::from(query.limit) + 1)
        .push(" OFFSET ")
        .push_bind(i64::from(query.offset));
}

crate::catalog::catalog!(SqliteStore, "");
