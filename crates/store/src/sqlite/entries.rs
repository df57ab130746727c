//! Registry entries in SQLite: tags are kept twice, as JSON in the row and one row each in
//! `server_tags` (which the tag filter of listings reads).

use mcp_fleet_model::{Entry, Registration, Timestamp};
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use super::events::log_events;
use crate::events::NewEvent;
use crate::row::ENTRY_COLUMNS;
use crate::{EntryCaps, ListQuery, RenderedPage, StoreError, Upserted};

pub(super) async fn upsert(
    store: &SqliteStore,
    reg: Registration,
    now: Timestamp,
    caps: &EntryCaps,
) -> Result<Upserted, StoreError> {
    // The write lock is taken up front (`begin_write`), so the reads below cannot go stale: it
    // is also what makes the caps hold across processes.
    let mut tx = store.begin_write().await?;
    let existing: Option<Timestamp> =
        sqlx::query_scalar("SELECT registered_at FROM servers WHERE id = ?")
            .bind(reg.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if existing.is_none() && caps.any() {
        let (all, mine) = count(&mut *tx, reg.updated_by.as_deref()).await?;
        caps.admit(all, mine, reg.updated_by.as_deref())?;
    }
    let mut entry = Entry::new(reg, now);
    if let Some(registered_at) = existing {
        entry.registered_at = registered_at;
    }
    let tags = serde_json::to_string(&entry.tags).map_err(|e| StoreError::Corrupt {
        id: entry.id.to_string(),
        reason: e.to_string(),
    })?;
    let metadata = serde_json::Value::Object(entry.metadata.clone()).to_string();
    let event = NewEvent::registered(existing.is_none(), &entry)?;
    let rev = log_events(&mut tx, std::slice::from_ref(&event), &store.options).await?;
    sqlx::query(
        "INSERT INTO servers (id, service, name, description, url, version, tags, auth_type, \
         token_endpoint, health_url, status, last_seen, registered_at, updated_at, metadata, \
         health_mode, ttl_seconds, heartbeat_at, last_checked_at, last_error, latency_ms, \
         status_since, successes, failures, reg_rev, updated_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, 0, 0, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET service = excluded.service, name = excluded.name, \
         description = excluded.description, url = excluded.url, version = excluded.version, \
         tags = excluded.tags, auth_type = excluded.auth_type, \
         token_endpoint = excluded.token_endpoint, health_url = excluded.health_url, \
         status = excluded.status, last_seen = excluded.last_seen, \
         updated_at = excluded.updated_at, metadata = excluded.metadata, \
         health_mode = excluded.health_mode, ttl_seconds = excluded.ttl_seconds, \
         heartbeat_at = excluded.heartbeat_at, last_checked_at = NULL, last_error = NULL, \
         last_error_detail = NULL, \
         latency_ms = NULL, status_since = excluded.status_since, successes = 0, \
         failures = 0, reg_rev = excluded.reg_rev, updated_by = excluded.updated_by",
    )
    .bind(entry.id.as_str())
    .bind(entry.service.as_str())
    .bind(&entry.name)
    .bind(&entry.description)
    .bind(entry.url.as_str())
    .bind(entry.version.to_string())
    .bind(tags)
    .bind(entry.auth.kind.as_str())
    .bind(entry.auth.token_endpoint.as_ref().map(|u| u.as_str()))
    .bind(entry.health_url.as_ref().map(|u| u.as_str()))
    .bind(entry.status.as_str())
    .bind(entry.last_seen)
    .bind(entry.registered_at)
    .bind(entry.updated_at)
    .bind(metadata)
    .bind(entry.health_check.mode.as_str())
    .bind(entry.ttl_seconds.map(i64::from))
    .bind(now)
    .bind(entry.status_since)
    .bind(rev)
    .bind(entry.updated_by.as_deref())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM server_tags WHERE server_id = ?")
        .bind(entry.id.as_str())
        .execute(&mut *tx)
        .await?;
    if !entry.tags.is_empty() {
        let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO server_tags (tag, server_id) ");
        q.push_values(&entry.tags, |mut b, tag| {
            b.push_bind(tag.as_str()).push_bind(entry.id.as_str());
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(if existing.is_some() {
        Upserted::Replaced(entry)
    } else {
        Upserted::Created(entry)
    })
}

pub(super) async fn count_entries(
    store: &SqliteStore,
    by: Option<&str>,
) -> Result<(u64, u64), StoreError> {
    count(&store.pool, by).await
}

/// How many entries there are, and how many of them `by` registered last.
async fn count<'c>(
    conn: impl sqlx::Executor<'c, Database = Sqlite>,
    by: Option<&str>,
) -> Result<(u64, u64), StoreError> {
    let (all, mine): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN updated_by = ? THEN 1 ELSE 0 END), 0) \
         FROM servers",
    )
    .bind(by)
    .fetch_one(conn)
    .await?;
    Ok((all.max(0) as u64, mine.max(0) as u64))
}

/// [`crate::same_sql::push_page`], tags filtered through `server_tags`.
fn push_page(q: &mut QueryBuilder<Sqlite>, query: &ListQuery) {
    crate::same_sql::push_page(q, query, |q, tags| {
        q.push(" AND id IN (SELECT server_id FROM server_tags WHERE tag IN (");
        let mut list = q.separated(", ");
        for tag in tags {
            list.push_bind(tag.as_str());
        }
        q.push("))");
    });
}

/// The listing as pre-rendered JSON, from the JSON cache where rows have not changed.
pub(super) async fn list_rendered(
    store: &SqliteStore,
    query: &ListQuery,
) -> Result<RenderedPage, StoreError> {
    // Ids and versions first, as one value: sqlx hands every value of every row from its
    // SQLite thread to ours, which costs more per value than SQLite takes to find the rows.
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT group_concat(id || ' ' || row_version, ' ') \
         FROM (SELECT id, row_version FROM servers WHERE 1=1",
    );
    push_page(&mut q, query);
    q.push(")");
    let listed: Option<String> = q.build_query_scalar().fetch_one(&store.pool).await?;
    let Some(mut listed) = crate::json_cache::parse_listed(listed.as_deref().unwrap_or_default())
    else {
        return crate::render_page(list(store, query).await?);
    };
    // group_concat keeps the subquery's order in practice; sorting makes sure of it.
    listed.sort_unstable();
    let fetch = |ids: Vec<String>| async move {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {ENTRY_COLUMNS}, row_version FROM servers WHERE id IN ("
        ));
        let mut list = q.separated(", ");
        for id in &ids {
            list.push_bind(id.as_str());
        }
        q.push(") ORDER BY id");
        // Row by row, as `status_rows` reads (same_sql.rs): no page of rows held at once.
        let mut rows = q.build().fetch(&store.pool);
        let mut out = Vec::with_capacity(ids.len());
        while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await? {
            out.push(crate::row::versioned(&row)?);
        }
        Ok(out)
    };
    match store.json_cache.page(listed, query.limit, fetch).await? {
        Some(page) => Ok(page),
        None => crate::render_page(list(store, query).await?),
    }
}

crate::same_sql::entries!(SqliteStore, Sqlite);
