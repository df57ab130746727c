//! Registry entries in PostgreSQL: tags as a `text[]` column, which the tag filter of listings
//! reads with `&&`.

use mcp_fleet_model::{Entry, Registration, Timestamp};
use sqlx::{Postgres, QueryBuilder, Row};

use super::PostgresStore;
use super::events::log_events;
use crate::events::NewEvent;
use crate::row::ENTRY_COLUMNS;
use crate::{EntryCaps, ListQuery, RenderedPage, StoreError, Upserted};

pub(super) async fn upsert(
    store: &PostgresStore,
    reg: Registration,
    now: Timestamp,
    caps: &EntryCaps,
) -> Result<Upserted, StoreError> {
    let mut entry = Entry::new(reg, now);
    let tags: Vec<&str> = entry.tags.iter().map(|t| t.as_str()).collect();
    let mut tx = store.begin_write().await?;
    if caps.any() {
        // Capped registrations take one lock before any row, so they count one at a time; the
        // lock is this transaction's, released at commit or rollback (a crash too).
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CAPS_LOCK)
            .execute(&mut *tx)
            .await?;
        let by = entry.updated_by.as_deref();
        let (all, mine, exists): (i64, i64, Option<bool>) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE updated_by = $1), bool_or(id = $2) \
             FROM servers",
        )
        .bind(by)
        .bind(entry.id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if exists != Some(true) {
            caps.admit(all.max(0) as u64, mine.max(0) as u64, by)?;
        }
    }
    // The entry's row first (locked by the insert or update), the revision second, as every
    // writer does. `xmax = 0` holds only for a freshly inserted row version: it tells insert
    // from update in the same statement, so no separate read (and no race) is needed. The
    // revision is not known yet: `reg_rev` is set below, in the same transaction.
    let row = sqlx::query(
        "INSERT INTO servers (id, service, name, description, url, version, tags, auth_type, \
         token_endpoint, health_url, status, last_seen, registered_at, updated_at, metadata, \
         health_mode, ttl_seconds, heartbeat_at, last_checked_at, last_error, latency_ms, \
         status_since, successes, failures, reg_rev, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, NULL, NULL, NULL, $19, 0, 0, 0, $20) \
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
         failures = 0, reg_rev = excluded.reg_rev, updated_by = excluded.updated_by \
         RETURNING registered_at, (xmax = 0) AS inserted",
    )
    .bind(entry.id.as_str())
    .bind(entry.service.as_str())
    .bind(&entry.name)
    .bind(&entry.description)
    .bind(entry.url.as_str())
    .bind(entry.version.to_string())
    .bind(&tags)
    .bind(entry.auth.kind.as_str())
    .bind(entry.auth.token_endpoint.as_ref().map(|u| u.as_str()))
    .bind(entry.health_url.as_ref().map(|u| u.as_str()))
    .bind(entry.status.as_str())
    .bind(entry.last_seen)
    .bind(entry.registered_at)
    .bind(entry.updated_at)
    .bind(serde_json::Value::Object(entry.metadata.clone()))
    .bind(entry.health_check.mode.as_str())
    .bind(entry.ttl_seconds.and_then(|n| i32::try_from(n).ok()))
    .bind(now)
    .bind(entry.status_since)
    .bind(entry.updated_by.as_deref())
    .fetch_one(&mut *tx)
    .await?;
    entry.registered_at = row.try_get("registered_at")?;
    let inserted: bool = row.try_get("inserted")?;
    let event = NewEvent::registered(inserted, &entry)?;
    let rev = log_events(&mut tx, std::slice::from_ref(&event), &store.options).await?;
    sqlx::query("UPDATE servers SET reg_rev = $1 WHERE id = $2")
        .bind(rev)
        .bind(entry.id.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(if inserted {
        Upserted::Created(entry)
    } else {
        Upserted::Replaced(entry)
    })
}

/// The advisory lock capped registrations take (`pg_advisory_xact_lock`): "mcpf" and 1.
const CAPS_LOCK: i64 = 0x6d63_7066_0000_0001;

pub(super) async fn count_entries(
    store: &PostgresStore,
    by: Option<&str>,
) -> Result<(u64, u64), StoreError> {
    let (all, mine): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(*) FILTER (WHERE updated_by = $1) FROM servers")
            .bind(by)
            .fetch_one(&store.pool)
            .await?;
    Ok((all.max(0) as u64, mine.max(0) as u64))
}

/// [`crate::same_sql::push_page`], tags filtered by overlap with the `tags` array.
fn push_page(q: &mut QueryBuilder<Postgres>, query: &ListQuery) {
    crate::same_sql::push_page(q, query, |q, tags| {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        q.push(" AND tags && ").push_bind(tags);
    });
}

/// The listing as pre-rendered JSON, from the JSON cache where rows have not changed.
pub(super) async fn list_rendered(
    store: &PostgresStore,
    query: &ListQuery,
) -> Result<RenderedPage, StoreError> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT id, row_version FROM servers WHERE TRUE");
    push_page(&mut q, query);
    let listed: Vec<(String, i64)> = q.build_query_as().fetch_all(&store.pool).await?;
    let fetch = |ids: Vec<String>| async move {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS}, row_version FROM servers WHERE id = ANY($1) ORDER BY id"
        )))
        .bind(ids)
        .fetch_all(&store.pool)
        .await?;
        rows.iter().map(crate::row::versioned).collect()
    };
    match store.json_cache.page(listed, query.limit, fetch).await? {
        Some(page) => Ok(page),
        None => crate::render_page(list(store, query).await?),
    }
}

crate::same_sql::entries!(PostgresStore, Postgres);
