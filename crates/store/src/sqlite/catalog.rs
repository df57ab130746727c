//! The tool catalog in SQLite: the shared SQL (`crate::catalog::catalog!`) and search through
//! the FTS5 table `catalog_search` (Porter stemming, BM25 ranking with a tool's words weighing
//! four times its description), in the tiers of [`search_in_tiers`]: tools having every term,
//! then those having some.
//!
//! A search ranks in the full-text index first and reads the rows of the best-ranked hits
//! only: joining every match to its item and entry before sorting cost ~2.5 µs a match, 50 ms
//! for a query matching 5% of 200,000 tools (docs/perf.md, tool catalog).

use mcp_fleet_model::Timestamp;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::StoreError;
use crate::catalog::{
    HitRow, Tier, TierSearch, ToolPage, ToolQuery, hit_page, push_tool_filters, search_in_tiers,
};

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
    search_in_tiers(store, query).await
}

/// The FTS5 query of `tier`. Each term is quoted: FTS5 syntax in a term (`OR`, `*`, `-`) is
/// then plain text.
fn fts_match(terms: &[&str], tier: Tier) -> String {
    let quoted: Vec<String> = terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "")))
        .collect();
    let every = quoted.join(" AND ");
    match tier {
        Tier::Every => every,
        Tier::Some => format!("({}) NOT ({every})", quoted.join(" OR ")),
    }
}

impl TierSearch for SqliteStore {
    async fn tier(
        &self,
        query: &ToolQuery,
        terms: &[&str],
        tier: Tier,
        offset: u32,
        rows: u32,
    ) -> Result<Vec<HitRow>, StoreError> {
        let matched = fts_match(terms, tier);
        let filtered = query.status.is_some() || query.service.is_some() || !query.tags.is_empty();
        if !filtered && let Some(found) = ranked_first(self, &matched, offset, rows).await? {
            return Ok(found);
        }
        let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
        q.push(HIT_COLUMNS)
            .push(", -bm25(catalog_search, 4.0, 1.0)");
        push_matches(&mut q, query, matched);
        q.push(" ORDER BY 9 DESC, s.id, i.name");
        push_window(&mut q, offset, rows);
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn tier_count(
        &self,
        query: &ToolQuery,
        terms: &[&str],
        tier: Tier,
    ) -> Result<u32, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT count(*)");
        push_matches(&mut q, query, fts_match(terms, tier));
        let n: i64 = q.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
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
    push_window(&mut q, query.offset, query.limit + 1);
    let rows: Vec<HitRow> = q.build_query_as().fetch_all(&store.pool).await?;
    hit_page(rows, query)
}

/// Rows `offset..offset + rows` of an unfiltered search, from the best-ranked matches only:
/// those scoring at least as well as the match ranked `4 × (offset + rows)`th, ties included,
/// joined to their items and entries. Every match left out scores below every one kept, so
/// the rows are those the whole ranking gives, unless fewer remain once matches of other
/// kinds (prompts, resources) and of versions no longer served are dropped: then `None`, and
/// the caller ranks everything.
async fn ranked_first(
    store: &SqliteStore,
    matched: &str,
    offset: u32,
    rows: u32,
) -> Result<Option<Vec<HitRow>>, StoreError> {
    let wanted = i64::from(offset) + i64::from(rows);
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
    push_window(&mut q, offset, rows);
    let found: Vec<RankedRow> = q.build_query_as().fetch_all(&store.pool).await?;
    let cut = found.first().is_none_or(|r| r.9);
    if cut && found.len() < rows as usize {
        return Ok(None);
    }
    Ok(Some(
        found
            .into_iter()
            .map(|(a, b, c, d, e, f, g, h, score, _)| (a, b, c, d, e, f, g, h, score))
            .collect(),
    ))
}

/// `FROM … WHERE`: the tools of entries' current versions whose words match `matched` (an FTS5
/// query) and that pass `query`'s filters.
fn push_matches(q: &mut QueryBuilder<Sqlite>, query: &ToolQuery, matched: String) {
    q.push(
        " FROM catalog_search \
         JOIN catalog_items i ON i.item_id = catalog_search.rowid \
         JOIN servers s ON s.id = i.server_id AND s.version = i.version \
         WHERE catalog_search MATCH ",
    )
    .push_bind(matched)
    .push(" AND i.kind = 'tool'");
    push_filters(q, query);
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

/// Rows `offset..offset + rows`.
fn push_window(q: &mut QueryBuilder<Sqlite>, offset: u32, rows: u32) {
    q.push(" LIMIT ")
        .push_bind(i64::from(rows))
        .push(" OFFSET ")
        .push_bind(i64::from(offset));
}

crate::catalog::catalog!(SqliteStore, "");
