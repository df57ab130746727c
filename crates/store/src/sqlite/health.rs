//! What the health worker reads and writes in SQLite, with the SQLite-only speed paths: the rows
//! to probe read as one JSON value, and each batch of checks written by one statement per run.

use std::collections::HashMap;

use chrono::Utc;
use mcp_fleet_model::Timestamp;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteStore;
use super::events::log_events;
use crate::health::{note_written, runs};
use crate::row::HEALTH_COLUMNS;
use crate::{CheckRecord, HealthRow, StoreError, Written};

/// The columns of [`HEALTH_COLUMNS`], in order, as `json_array` renders them.
type HealthJson = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<i64>,
    Option<String>,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    Option<String>,
);

/// Health rows from `json_group_array(json_array(HEALTH_COLUMNS))`; `None` when the text is not
/// that shape or a timestamp is not RFC 3339 (as sqlx writes them), for the caller to read the
/// rows one by one instead.
fn health_rows_of_json(json: &str) -> Option<Result<Vec<HealthRow>, StoreError>> {
    fn time(t: Option<String>) -> Option<Option<Timestamp>> {
        match t {
            None => Some(None),
            Some(t) => Some(Some(
                chrono::DateTime::parse_from_rfc3339(&t)
                    .ok()?
                    .with_timezone(&Utc),
            )),
        }
    }
    let rows: Vec<HealthJson> = serde_json::from_str(json).ok()?;
    let mut out = Vec::with_capacity(rows.len());
    for (
        id,
        name,
        url,
        health_url,
        auth,
        mode,
        ttl,
        beat,
        status,
        since,
        ok,
        failed,
        rev,
        checked,
    ) in rows
    {
        let (beat, since, checked) = (time(beat)?, time(since)?, time(checked)?);
        out.push(crate::health::health_row(
            id, name, url, health_url, auth, mode, ttl, beat, status, since, ok, failed, rev,
            checked,
        ));
    }
    Some(out.into_iter().collect())
}

/// The health rows registered after `after` as one JSON value (an array of arrays of
/// [`HEALTH_COLUMNS`]): sqlx hands each value of each row from its SQLite thread to ours, which
/// for a fleet's worth of rows costs more than SQLite takes to read them (docs/perf.md, health
/// sweep).
async fn health_rows_json(
    conn: &mut SqliteConnection,
    after: Option<i64>,
) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT json_group_array(json_array({HEALTH_COLUMNS})) FROM servers WHERE reg_rev > ?"
    )))
    .bind(after.unwrap_or(-1))
    .fetch_one(&mut *conn)
    .await?)
}

/// The health rows registered after `after`, read the plain way: a row at a time.
async fn health_rows_one_by_one(
    conn: &mut SqliteConnection,
    after: Option<i64>,
) -> Result<Vec<HealthRow>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {HEALTH_COLUMNS} FROM servers WHERE reg_rev > ?"
    )))
    .bind(after.unwrap_or(-1))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(crate::row::health_row).collect()
}

/// Checks written by one statement: 10 parameters each, well under SQLite's 32,766.
const CHECKS_PER_UPDATE: usize = 1000;

/// The current status of each of `ids` that exists, read in the caller's transaction.
async fn statuses(
    conn: &mut SqliteConnection,
    ids: &[&str],
) -> Result<HashMap<String, String>, StoreError> {
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT id, status FROM servers WHERE id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
        found.extend(rows);
    }
    Ok(found)
}

pub(super) async fn health_rows(
    store: &SqliteStore,
    after: Option<i64>,
) -> Result<(Vec<HealthRow>, i64), StoreError> {
    let mut tx = store.pool.begin().await?;
    let rev: i64 = sqlx::query_scalar("SELECT value FROM registry_meta WHERE key = 'revision'")
        .fetch_one(&mut *tx)
        .await?;
    let json = health_rows_json(&mut tx, after).await?;
    if let Some(rows) = health_rows_of_json(&json) {
        tx.commit().await?;
        return Ok((rows?, rev));
    }
    // A value the JSON form cannot carry (a timestamp in another format): read row by row.
    let rows = health_rows_one_by_one(&mut tx, after).await?;
    tx.commit().await?;
    Ok((rows, rev))
}

pub(super) async fn record_checks(
    store: &SqliteStore,
    checks: &[CheckRecord],
) -> Result<Vec<Written>, StoreError> {
    let mut written = Vec::with_capacity(checks.len());
    if checks.is_empty() {
        return Ok(written);
    }
    let mut tx = store.begin_write().await?;
    let ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
    let mut status = statuses(&mut tx, &ids).await?;
    let mut events = Vec::new();
    // One statement per run of checks (a run names each entry once): the rows change in
    // SQLite's own loop instead of one round trip to the connection's thread per entry.
    for run in runs(checks, CHECKS_PER_UPDATE) {
        // Each row's new version is set here, from versions taken from the clock at once:
        // the update trigger, which would otherwise rewrite every row a second time to give
        // it a version, then stands aside (versions left unused by entries that are gone
        // are skipped numbers, never reused).
        let last: i64 = sqlx::query_scalar(
            "UPDATE row_clock SET value = value + ? WHERE id = 0 RETURNING value",
        )
        .bind(run.len() as i64)
        .fetch_one(&mut *tx)
        .await?;
        let first = last - run.len() as i64 + 1;
        let mut q = QueryBuilder::<Sqlite>::new(
            "WITH c (id, reg_rev, status, successes, failures, checked_at, seen_at, \
             last_error, last_error_detail, latency_ms, row_version) AS (",
        );
        q.push_values(run.iter().enumerate(), |mut b, (j, c)| {
            b.push_bind(c.id.as_str())
                .push_bind(c.reg_rev)
                .push_bind(c.status.as_str())
                .push_bind(i64::from(c.successes))
                .push_bind(i64::from(c.failures))
                .push_bind(c.checked_at)
                .push_bind(c.seen_at)
                .push_bind(c.last_error.as_deref())
                .push_bind(c.last_error_detail.as_deref())
                .push_bind(c.latency_ms.map(i64::from))
                .push_bind(first + j as i64);
        });
        q.push(
            ") UPDATE servers SET status = c.status, successes = c.successes, \
             failures = c.failures, last_checked_at = c.checked_at, \
             row_version = c.row_version, \
             last_seen = COALESCE(c.seen_at, servers.last_seen), last_error = c.last_error, \
             last_error_detail = c.last_error_detail, latency_ms = c.latency_ms, \
             status_since = CASE WHEN servers.status = c.status \
             THEN servers.status_since ELSE c.checked_at END \
             FROM c WHERE servers.id = c.id AND servers.reg_rev = c.reg_rev \
             RETURNING servers.id",
        );
        let updated: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await?;
        note_written(run, &updated, &mut status, &mut written, &mut events);
    }
    if !events.is_empty() {
        log_events(&mut tx, &events, &store.options).await?;
    }
    tx.commit().await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use mcp_fleet_model::{HealthStatus, Registration, StatusFilter};

    use super::*;
    use crate::{ListQuery, RenderedPage, Store};

    fn reg(body: serde_json::Value) -> Registration {
        Registration::from_json(&body, None).expect("valid registration")
    }

    /// The one-value read and the row-by-row read agree on every column, including the
    /// timestamps and the empty ones, so the fallback is only ever a fallback.
    #[tokio::test]
    async fn health_rows_read_as_one_value_match_rows_read_one_by_one() {
        let store = SqliteStore::open("sqlite::memory:").await.expect("open");
        let now = Utc::now();
        store
            .upsert(
                reg(serde_json::json!({
                    "id": "plain", "name": "Plain \"quoted\" ünïcode", "url": "http://127.0.0.1:9",
                    "version": "1.0.0", "tags": [],
                })),
                now,
            )
            .await
            .expect("register");
        store
            .upsert(
                reg(serde_json::json!({
                    "id": "ttl", "name": "TTL", "url": "http://127.0.0.1:9/x",
                    "version": "1.0.0", "tags": [], "ttlSeconds": 30,
                    "healthUrl": "http://127.0.0.1:9/health", "healthCheck": {"mode": "http"},
                })),
                now,
            )
            .await
            .expect("register");
        let (rows, _) = store.health_rows(None).await.expect("rows");
        let ttl = rows.iter().find(|r| r.id.as_str() == "ttl").expect("ttl");
        let any = ListQuery {
            status: StatusFilter::Any,
            ..ListQuery::default()
        };
        let rendered = |page: RenderedPage| {
            page.entries
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        let before = rendered(store.list_rendered(&any).await.expect("list"));
        assert!(
            before.iter().all(|e| e.contains(r#""status":"unknown""#)),
            "{before:?}"
        );
        store
            .record_checks(&[CheckRecord {
                id: ttl.id.clone(),
                reg_rev: ttl.reg_rev,
                status: HealthStatus::Down,
                successes: 0,
                failures: 3,
                checked_at: now,
                seen_at: None,
                last_error: Some("refused".into()),
                last_error_detail: None,
                latency_ms: Some(4),
            }])
            .await
            .expect("record");

        // The write gave the row a new version: the kept rendering is not served again.
        let after = rendered(store.list_rendered(&any).await.expect("list"));
        assert!(after[1].contains(r#""status":"down""#), "{after:?}");
        assert_eq!(
            after[0], before[0],
            "the entry not written renders as before"
        );

        let mut conn = store.pool.acquire().await.expect("connection");
        for after in [None, Some(ttl.reg_rev - 1), Some(i64::MAX)] {
            let json = health_rows_json(&mut conn, after).await.expect("json");
            let mut fast = health_rows_of_json(&json)
                .expect("the one-value form parses")
                .expect("rows");
            let mut slow = health_rows_one_by_one(&mut conn, after)
                .await
                .expect("rows");
            fast.sort_by(|a, b| a.id.cmp(&b.id));
            slow.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(fast, slow, "after {after:?}");
        }
        drop(conn); // an in-memory store has one connection
        let (rows, _) = store.health_rows(None).await.expect("rows");
        let ttl = rows.iter().find(|r| r.id.as_str() == "ttl").expect("ttl");
        assert_eq!(
            (ttl.status, ttl.failures, ttl.ttl_seconds),
            (HealthStatus::Down, 3, Some(30))
        );
        assert!(ttl.heartbeat_at.is_some() && ttl.status_since.is_some());
        assert_eq!(health_rows_of_json("[[1]]").map(|r| r.is_ok()), None);
    }
}

crate::same_sql::health!(SqliteStore);
