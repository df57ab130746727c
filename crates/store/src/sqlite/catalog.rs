//! The tool catalog in SQLite: the shared SQL (`crate::catalog::catalog!`) and search through
//! the FTS5 table `catalog_search` (Porter stemming, BM25 ranking with a tool's words weighing
//! four times its description).

use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::StoreError;
use crate::catalog::{HitRow, ToolPage, ToolQuery, hit_page, push_order, push_tool_filters};

const HIT_COLUMNS: &str = "i.name, i.body, i.hash, s.id, s.service, s.version, s.status, \
                           s.last_seen";

pub(super) async fn search_tools(
    store: &SqliteStore,
    query: &ToolQuery,
) -> Result<ToolPage, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT ");
    q.push(HIT_COLUMNS);
    if query.terms.is_empty() {
        q.push(
            ", 0.0 FROM catalog_items i \
             JOIN servers s ON s.id = i.server_id AND s.version = i.version \
             WHERE i.kind = 'tool'",
        );
    } else {
        // Each term quoted: FTS5 syntax in a term (`OR`, `*`, `-`) is then plain text.
        let matched = query
            .terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "")))
            .collect::<Vec<_>>()
            .join(" OR ");
        q.push(
            ", -bm25(catalog_search, 4.0, 1.0) FROM catalog_search \
             JOIN catalog_items i ON i.item_id = catalog_search.rowid \
             JOIN servers s ON s.id = i.server_id AND s.version = i.version \
             WHERE catalog_search MATCH ",
        )
        .push_bind(matched)
        .push(" AND i.kind = 'tool'");
    }
    push_tool_filters(&mut q, query, |q, tags| {
        q.push(" AND s.id IN (SELECT server_id FROM server_tags WHERE tag IN (");
        let mut list = q.separated(", ");
        for tag in tags {
            list.push_bind(tag.as_str());
        }
        q.push("))");
    });
    push_order(&mut q, query);
    let rows: Vec<HitRow> = q.build_query_as().fetch_all(&store.pool).await?;
    hit_page(rows, query)
}

crate::catalog::catalog!(SqliteStore, "");
