//! The tool catalog in PostgreSQL: the shared SQL (`crate::catalog::catalog!`) and search
//! through the `search` tsvector of `catalog_items` (English stemming; a tool's words weigh
//! more than its description), ranked by `ts_rank`.

use sqlx::{Postgres, QueryBuilder};

use super::PostgresStore;
use crate::StoreError;
use crate::catalog::{HitRow, ToolPage, ToolQuery, hit_page, push_order, push_tool_filters};

const HIT_COLUMNS: &str = "i.name, i.body, i.hash, s.id, s.service, s.version, s.status, \
                           s.last_seen";

pub(super) async fn search_tools(
    store: &PostgresStore,
    query: &ToolQuery,
) -> Result<ToolPage, StoreError> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT ");
    q.push(HIT_COLUMNS);
    if query.terms.is_empty() {
        q.push(
            ", 0.0::float8 FROM catalog_items i \
             JOIN servers s ON s.id = i.server_id AND s.version = i.version \
             WHERE i.kind = 'tool'",
        );
    } else {
        // Terms are letters and digits only, so none is tsquery syntax; any of them matches.
        let matched = query.terms.join(" | ");
        q.push(", ts_rank(i.search, query)::float8 FROM catalog_items i ")
            .push("JOIN servers s ON s.id = i.server_id AND s.version = i.version, ")
            .push("to_tsquery('english', ")
            .push_bind(matched)
            .push(") query WHERE i.search @@ query AND i.kind = 'tool'");
    }
    push_tool_filters(&mut q, query, |q, tags| {
        q.push(" AND s.tags && ").push_bind(
            tags.iter()
                .map(|t| t.as_str().to_owned())
                .collect::<Vec<_>>(),
        );
    });
    push_order(&mut q, query);
    let rows: Vec<HitRow> = q.build_query_as().fetch_all(&store.pool).await?;
    hit_page(rows, query)
}

crate::catalog::catalog!(PostgresStore, " FOR UPDATE");
