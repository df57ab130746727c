//! The change log in PostgreSQL: revisions from a locked counter row, events inserted as arrays.

use mcp_fleet_model::Timestamp;
use sqlx::PgConnection;

use super::PostgresStore;
use crate::events::NewEvent;
use crate::row::EVENT_COLUMNS;
use crate::{EventLog, StoreError, StoreOptions};

/// Takes the next `events.len()` revisions and logs `events` under them, in the caller's
/// transaction; prunes the log when due. Returns the first revision taken. The counter row stays
/// locked until the transaction ends, so revisions commit in order; callers lock the entry rows
/// they write before calling this, never after, so that writers cannot deadlock.
pub(super) async fn log_events(
    conn: &mut PgConnection,
    events: &[NewEvent],
    options: &StoreOptions,
) -> Result<i64, StoreError> {
    let n = events.len() as i64;
    let last: i64 = sqlx::query_scalar(
        "UPDATE registry_meta SET value = value + $1 WHERE key = 'revision' RETURNING value",
    )
    .bind(n)
    .fetch_one(&mut *conn)
    .await?;
    let first = last - n + 1;
    let revisions: Vec<i64> = (first..=last).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.server_id.as_str()).collect();
    let ats: Vec<Timestamp> = events.iter().map(|e| e.at).collect();
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    sqlx::query(
        "INSERT INTO events (revision, kind, server_id, at, data) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])",
    )
    .bind(revisions)
    .bind(kinds)
    .bind(ids)
    .bind(ats)
    .bind(data)
    .execute(&mut *conn)
    .await?;
    if let Some(through) = options.prune_through(first, last) {
        sqlx::query("DELETE FROM events WHERE revision <= $1")
            .bind(through)
            .execute(&mut *conn)
            .await?;
    }
    Ok(first)
}

pub(super) async fn events_since(
    store: &PostgresStore,
    after: i64,
    limit: u32,
) -> Result<EventLog, StoreError> {
    // The revision first: every event up to it has committed, so the read below sees them.
    let (current, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT value FROM registry_meta WHERE key = 'revision'), \
         (SELECT MIN(revision) FROM events)",
    )
    .fetch_one(&store.pool)
    .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE revision > $1 ORDER BY revision LIMIT $2"
    )))
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&store.pool)
    .await?;
    let events = rows
        .iter()
        .map(crate::row::event)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EventLog::new(after, current, oldest, events))
}

pub(super) async fn current_revision(store: &PostgresStore) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT value FROM registry_meta WHERE key = 'revision'")
            .fetch_one(&store.pool)
            .await?,
    )
}
