//! The tool catalog in PostgreSQL: the shared SQL (`crate::catalog::catalog!`) and search
//! through the narrow table `catalog_search` (each tool's `tsvector`, English stemming, a
//! tool's words weighing more than its description; migration 0012), ranked by `ts_rank`, in
//! the tiers of [`search_in_tiers`]: tools having every term, then those having some.
//!
//! A search ranks and cuts the page in `catalog_search` joined to `servers` (for the filters
//! and the served version), and reads `catalog_items` by key for the page's rows only.

use sqlx::{Postgres, QueryBuilder};

use super::PostgresStore;
use crate::StoreError;
use crate::catalog::{
    HitRow, Tier, TierSearch, ToolPage, ToolQuery, hit_page, push_order, push_tool_filters,
    search_in_tiers,
};

pub(super) async fn search_tools(
    store: &PostgresStore,
    query: &ToolQuery,
) -> Result<ToolPage, StoreError> {
    if query.terms.is_empty() {
        return list_tools(store, query).await;
    }
    search_in_tiers(store, query).await
}

/// The `tsquery` text of `tier`. Terms are letters and digits only, so none is syntax.
fn ts_query(terms: &[&str], tier: Tier) -> String {
    let every = terms.join(" & ");
    match tier {
        Tier::Every => every,
        Tier::Some => format!("({}) & !({every})", terms.join(" | ")),
    }
}

/// `FROM` and `WHERE` of a tier's matches, served and filtered: `c` the search rows, `s` their
/// entries, `query` the `tsquery`.
fn push_matches(q: &mut QueryBuilder<Postgres>, query: &ToolQuery, terms: &[&str], tier: Tier) {
    q.push(
        " FROM catalog_search c \
         JOIN servers s ON s.id = c.server_id AND s.version = c.version, \
         to_tsquery('english', ",
    )
    .push_bind(ts_query(terms, tier))
    .push(") query WHERE c.search @@ query");
    push_filters(q, query);
}

impl TierSearch for PostgresStore {
    async fn tier(
        &self,
        query: &ToolQuery,
        terms: &[&str],
        tier: Tier,
        offset: u32,
        rows: u32,
    ) -> Result<Vec<HitRow>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT i.name, i.body, i.hash, m.id, m.service, m.version, m.status, \
             m.last_seen, m.score FROM (SELECT c.item_id, c.name, s.id, s.service, s.version, \
             s.status, s.last_seen, ts_rank(c.search, query)::float8 AS score",
        );
        push_matches(&mut q, query, terms, tier);
        q.push(" ORDER BY score DESC, s.id, c.name LIMIT ")
            .push_bind(i64::from(rows))
            .push(" OFFSET ")
            .push_bind(i64::from(offset))
            .push(
                ") m JOIN catalog_items i ON i.item_id = m.item_id \
                 ORDER BY m.score DESC, m.id, m.name",
            );
        Ok(q.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn tier_count(
        &self,
        query: &ToolQuery,
        terms: &[&str],
        tier: Tier,
    ) -> Result<u32, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT count(*)");
        push_matches(&mut q, query, terms, tier);
        let n: i64 = q.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// Every tool, by entry and name.
async fn list_tools(store: &PostgresStore, query: &ToolQuery) -> Result<ToolPage, StoreError> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT i.name, i.body, i.hash, s.id, s.service, s.version, s.status, s.last_seen, \
         0.0::float8 FROM catalog_items i \
         JOIN servers s ON s.id = i.server_id AND s.version = i.version \
         WHERE i.kind = 'tool'",
    );
    push_filters(&mut q, query);
    push_order(&mut q, query);
    let rows: Vec<HitRow> = q.build_query_as().fetch_all(&store.pool).await?;
    hit_page(rows, query)
}

fn push_filters(q: &mut QueryBuilder<Postgres>, query: &ToolQuery) {
    push_tool_filters(q, query, |q, tags| {
        q.push(" AND s.tags && ").push_bind(
            tags.iter()
                .map(|t| t.as_str().to_owned())
                .collect::<Vec<_>>(),
        );
    });
}

crate::catalog::catalog!(PostgresStore, " FOR UPDATE");
