//! The change log in PostgreSQL: revisions from a locked counter row, events inserted as arrays.

use mcp_fleet_model::Timestamp;
use sqlx::PgConnection;

use super::PostgresStore;
use crate::events::NewEvent;
use crate::{StoreError, StoreOptions};

/// Takes the next `events.len()` revisions and logs `events` under them, in the caller's
/// transaction; prunes the log when due. Returns the first revision taken. The counter row stays
/// locked until the transaction ends, so revisions commit in order; callers lock the entry rows
/// they write before calling this, never after, so that writers cannot deadlock. The new
/// revision is announced on [`super::notify::CHANNEL`], which PostgreSQL delivers to listeners
/// only at commit (and never on rollback).
pub(super) async fn log_events(
    conn: &mut PgConnection,
    events: &[NewEvent],
    options: &StoreOptions,
) -> Result<i64, StoreError> {
    let n = events.len() as i64;
    // The channel is `notify::CHANNEL`, spelled out so the statement stays a literal.
    let last: i64 = sqlx::query_scalar(
        "UPDATE registry_meta SET value = value + $1 WHERE key = 'revision' \
         RETURNING value, pg_notify('mcp_fleet_revision', value::text)::text",
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

crate::same_sql::events!(PostgresStore);
