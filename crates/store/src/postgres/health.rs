//! What the health worker reads and writes in PostgreSQL: each batch of checks written by one
//! statement per run, its columns sent as arrays.

use std::collections::HashMap;

use super::PostgresStore;
use super::events::log_events;
use crate::health::{note_written, runs};
use crate::row::HEALTH_COLUMNS;
use crate::{CheckRecord, HealthRow, StoreError, Written};

/// Checks written by one statement (its columns go as arrays, with no parameter limit to mind).
const CHECKS_PER_UPDATE: usize = 1000;

pub(super) async fn health_rows(
    store: &PostgresStore,
    after: Option<i64>,
) -> Result<(Vec<HealthRow>, i64), StoreError> {
    let mut tx = store.pool.begin().await?;
    let rev: i64 = sqlx::query_scalar("SELECT value FROM registry_meta WHERE key = 'revision'")
        .fetch_one(&mut *tx)
        .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {HEALTH_COLUMNS} FROM servers WHERE reg_rev > $1"
    )))
    .bind(after.unwrap_or(-1))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let rows = rows
        .iter()
        .map(crate::row::health_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((rows, rev))
}

pub(super) async fn record_checks(
    store: &PostgresStore,
    checks: &[CheckRecord],
) -> Result<Vec<Written>, StoreError> {
    let mut written = Vec::with_capacity(checks.len());
    if checks.is_empty() {
        return Ok(written);
    }
    let mut tx = store.begin_write().await?;
    // Lock the rows in id order, so that two batches cannot deadlock, and read the statuses
    // they change from.
    let mut ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, status FROM servers WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    let mut status: HashMap<String, String> = rows.into_iter().collect();
    let mut events = Vec::new();
    // One statement per run of checks (a run names each entry once), its columns sent as
    // arrays: one round trip to the server instead of one per entry.
    for run in runs(checks, CHECKS_PER_UPDATE) {
        let updated: Vec<String> = sqlx::query_scalar(
            "UPDATE servers AS s SET status = c.status, successes = c.successes, \
             failures = c.failures, last_checked_at = c.checked_at, \
             last_seen = COALESCE(c.seen_at, s.last_seen), last_error = c.last_error, \
             last_error_detail = c.last_error_detail, latency_ms = c.latency_ms, \
             status_since = CASE WHEN s.status = c.status \
             THEN s.status_since ELSE c.checked_at END \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::int[], $5::int[], \
             $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::int[]) \
             AS c (id, reg_rev, status, successes, failures, checked_at, seen_at, \
             last_error, last_error_detail, latency_ms) \
             WHERE s.id = c.id AND s.reg_rev = c.reg_rev RETURNING s.id",
        )
        .bind(run.iter().map(|c| c.id.as_str()).collect::<Vec<_>>())
        .bind(run.iter().map(|c| c.reg_rev).collect::<Vec<_>>())
        .bind(run.iter().map(|c| c.status.as_str()).collect::<Vec<_>>())
        .bind(run.iter().map(|c| c.successes as i32).collect::<Vec<_>>())
        .bind(run.iter().map(|c| c.failures as i32).collect::<Vec<_>>())
        .bind(run.iter().map(|c| c.checked_at).collect::<Vec<_>>())
        .bind(run.iter().map(|c| c.seen_at).collect::<Vec<_>>())
        .bind(
            run.iter()
                .map(|c| c.last_error.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            run.iter()
                .map(|c| c.last_error_detail.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            run.iter()
                .map(|c| c.latency_ms.map(|n| n as i32))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
        note_written(run, &updated, &mut status, &mut written, &mut events);
    }
    if !events.is_empty() {
        log_events(&mut tx, &events, &store.options).await?;
    }
    tx.commit().await?;
    Ok(written)
}

crate::same_sql::health!(PostgresStore);
