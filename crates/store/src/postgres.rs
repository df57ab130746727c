//! The PostgreSQL store, for several registry replicas or a managed database.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use mcp_fleet_model::{
    Entry, Registration, Routing, RoutingPolicy, ServerId, StatusFilter, Timestamp, TokenRecord,
    Version,
};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, SqlSafeStr};

use crate::events::NewEvent;
use crate::health::{note_written, runs};
use crate::row::{RawEntry, Renderings};
use crate::{
    CheckRecord, EventLog, HealthRow, HeartbeatRow, ListQuery, Page, RenderedPage, StatusRow,
    Store, StoreError, StoreOptions, Upserted,
};

/// Checks written by one statement (its columns go as arrays, with no parameter limit to mind).
const CHECKS_PER_UPDATE: usize = 1000;

const COLUMNS: &str = "id, service, name, description, url, version, tags, auth_type, token_endpoint, \
     health_url, status, last_seen, registered_at, updated_at, metadata, health_mode, ttl_seconds, \
     last_checked_at, last_error, last_error_detail, latency_ms, status_since, updated_by";

const HEALTH_COLUMNS: &str = "id, name, url, health_url, auth_type, health_mode, ttl_seconds, \
     heartbeat_at, status, status_since, successes, failures, reg_rev";

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            Cow::Borrowed("servers"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0001_servers.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("row version"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0002_row_version.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            Cow::Borrowed("events"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0003_events.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            Cow::Borrowed("service"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0004_service.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            Cow::Borrowed("routing"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0005_routing.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            Cow::Borrowed("auth"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0006_auth.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            Cow::Borrowed("error detail"),
            MigrationType::Simple,
            include_str!("../migrations/postgres/0007_error_detail.sql").into_sql_str(),
            false,
        ),
    ])
}

/// Registry entries in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    renderings: Arc<Renderings>,
    options: StoreOptions,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host/db`) and migrates the schema.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`Self::open`] with `options`.
    pub async fn open_with(url: &str, store_options: StoreOptions) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("{}: {e}", crate::redact(url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // While the server is down every acquire retries connecting until this passes: keep
            // it short, so requests fail fast (`503`) during an outage instead of piling up.
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot connect to {}: {e}", crate::redact(url)))
            })?;
        migrator().run(&pool).await?;
        Ok(Self {
            pool,
            renderings: Arc::default(),
            options: store_options,
        })
    }
}

/// Takes the next `events.len()` revisions and logs `events` under them, in the caller's
/// transaction; prunes the log when due. Returns the first revision taken. The counter row stays
/// locked until the transaction ends, so revisions commit in order; callers lock the entry rows
/// they write before calling this, never after, so that writers cannot deadlock.
async fn log_events(
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

/// Appends a listing's filters, order and limit (`limit + 1` rows, to tell if more remain) to a
/// query that ends in a `WHERE` condition.
fn push_page(q: &mut QueryBuilder<Postgres>, query: &ListQuery) {
    if let StatusFilter::Only(status) = query.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(service) = &query.service {
        q.push(" AND service = ").push_bind(service.as_str());
    }
    if let Some(after) = &query.after {
        q.push(" AND id > ").push_bind(after.as_str());
    }
    if !query.tags.is_empty() {
        let tags: Vec<String> = query.tags.iter().map(|t| t.to_string()).collect();
        q.push(" AND tags && ").push_bind(tags);
    }
    q.push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(query.limit) + 1);
}

fn raw(row: &PgRow) -> Result<RawEntry, sqlx::Error> {
    Ok(RawEntry {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        url: row.try_get("url")?,
        version: row.try_get("version")?,
        tags: row.try_get("tags")?,
        auth_type: row.try_get("auth_type")?,
        token_endpoint: row.try_get("token_endpoint")?,
        health_url: row.try_get("health_url")?,
        status: row.try_get("status")?,
        last_seen: row.try_get("last_seen")?,
        registered_at: row.try_get("registered_at")?,
        updated_at: row.try_get("updated_at")?,
        metadata: row.try_get("metadata")?,
        health_mode: row.try_get("health_mode")?,
        ttl_seconds: row.try_get::<Option<i32>, _>("ttl_seconds")?.map(i64::from),
        last_checked_at: row.try_get("last_checked_at")?,
        last_error: row.try_get("last_error")?,
        last_error_detail: row.try_get("last_error_detail")?,
        latency_ms: row.try_get::<Option<i32>, _>("latency_ms")?.map(i64::from),
        status_since: row.try_get("status_since")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn raw_token(row: &PgRow) -> Result<crate::tokens::RawToken, StoreError> {
    Ok(crate::tokens::RawToken {
        id: row.try_get("id")?,
        secret_sha256: row.try_get("secret_sha256")?,
        scopes: row.try_get("scopes")?,
        ids: row.try_get("ids")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn to_entry(row: &PgRow) -> Result<Entry, StoreError> {
    raw(row)?.into_entry()
}

#[async_trait]
impl Store for PostgresStore {
    async fn upsert(&self, reg: Registration, now: Timestamp) -> Result<Upserted, StoreError> {
        let mut entry = Entry::new(reg, now);
        let tags: Vec<&str> = entry.tags.iter().map(|t| t.as_str()).collect();
        let mut tx = self.pool.begin().await?;
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
        let rev = log_events(&mut tx, std::slice::from_ref(&event), &self.options).await?;
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

    async fn get(&self, id: &ServerId) -> Result<Option<Entry>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM servers WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(to_entry).transpose()
    }

    async fn delete_by(&self, id: &ServerId, by: Option<&str>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let deleted = done.rows_affected() > 0;
        if deleted {
            let event = NewEvent::deleted_by(id, Utc::now(), by);
            log_events(&mut tx, &[event], &self.options).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn count_entries(&self, by: Option<&str>) -> Result<(u64, u64), StoreError> {
        let (all, mine): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COUNT(*) FILTER (WHERE updated_by = $1) FROM servers")
                .bind(by)
                .fetch_one(&self.pool)
                .await?;
        Ok((all.max(0) as u64, mine.max(0) as u64))
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let (scopes, ids) = crate::tokens::columns(token);
        sqlx::query(
            "INSERT INTO tokens (id, secret_sha256, scopes, ids, description, created_at, \
             expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(&token.secret_sha256)
        .bind(scopes)
        .bind(ids)
        .bind(&token.description)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, secret_sha256, scopes, ids, description, created_at, expires_at, \
             revoked_at FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| raw_token(&r)?.into_record()).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, secret_sha256, scopes, ids, description, created_at, expires_at, \
             revoked_at FROM tokens ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| raw_token(r)?.into_record()).collect()
    }

    async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn has_tokens(&self) -> Result<bool, StoreError> {
        let any: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tokens LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(any.is_some())
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let mut q =
            QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM servers WHERE TRUE"));
        push_page(&mut q, query);
        let rows = q.build().fetch_all(&self.pool).await?;
        crate::page(rows.iter().map(to_entry), query.limit)
    }

    async fn list_rendered(&self, query: &ListQuery) -> Result<RenderedPage, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT id, row_version FROM servers WHERE TRUE");
        push_page(&mut q, query);
        let listed: Vec<(String, i64)> = q.build_query_as().fetch_all(&self.pool).await?;
        let fetch = |ids: Vec<String>| async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS}, row_version FROM servers WHERE id = ANY($1) ORDER BY id"
            )))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| Ok((raw(r)?, r.try_get("row_version")?)))
                .collect::<Result<Vec<_>, StoreError>>()
        };
        match self.renderings.page(listed, query.limit, fetch).await? {
            Some(page) => Ok(page),
            None => crate::render_page(self.list(query).await?),
        }
    }

    async fn status_rows(&self) -> Result<Vec<StatusRow>, StoreError> {
        let rows = sqlx::query("SELECT id, name, status, last_seen, last_error, status_since, health_mode FROM servers \
             ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                crate::status_row(
                    r.try_get("id")?,
                    r.try_get("name")?,
                    r.try_get("status")?,
                    r.try_get("last_seen")?,
                    (
                        r.try_get("last_error")?,
                        r.try_get("status_since")?,
                        r.try_get("health_mode")?,
                    ),
                )
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn health_rows(&self, after: Option<i64>) -> Result<(Vec<HealthRow>, i64), StoreError> {
        let mut tx = self.pool.begin().await?;
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
            .map(|r: &PgRow| {
                crate::health::health_row(
                    r.try_get("id")?,
                    r.try_get("name")?,
                    r.try_get("url")?,
                    r.try_get("health_url")?,
                    r.try_get("auth_type")?,
                    r.try_get("health_mode")?,
                    r.try_get::<Option<i32>, _>("ttl_seconds")?.map(i64::from),
                    r.try_get("heartbeat_at")?,
                    r.try_get("status")?,
                    r.try_get("status_since")?,
                    r.try_get::<i32, _>("successes").map(i64::from)?,
                    r.try_get::<i32, _>("failures").map(i64::from)?,
                    r.try_get("reg_rev")?,
                )
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((rows, rev))
    }

    async fn record_checks(&self, checks: &[CheckRecord]) -> Result<Vec<ServerId>, StoreError> {
        let mut written = Vec::with_capacity(checks.len());
        if checks.is_empty() {
            return Ok(written);
        }
        let mut tx = self.pool.begin().await?;
        // Lock the rows in id order, so that two batches cannot deadlock, and read the statuses
        // they change from.
        let mut ids: Vec<&str> = checks.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, status FROM servers WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
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
            log_events(&mut tx, &events, &self.options).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn heartbeat(&self, id: &ServerId, now: Timestamp) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE servers SET heartbeat_at = $1, last_seen = $1 WHERE id = $2")
                .bind(now)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, heartbeat_at FROM servers WHERE ttl_seconds IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| crate::health::heartbeat_row(r.try_get("id")?, r.try_get("heartbeat_at")?))
            .collect()
    }

    async fn deregister_if_down(
        &self,
        id: &ServerId,
        before: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "DELETE FROM servers WHERE id = $1 AND status = 'down' AND status_since <= $2",
        )
        .bind(id.as_str())
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let deleted = done.rows_affected() > 0;
        if deleted {
            let event = NewEvent::deleted(id, Utc::now());
            log_events(&mut tx, &[event], &self.options).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn events_since(&self, after: i64, limit: u32) -> Result<EventLog, StoreError> {
        // The revision first: every event up to it has committed, so the read below sees them.
        let (current, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT value FROM registry_meta WHERE key = 'revision'), \
             (SELECT MIN(revision) FROM events)",
        )
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(
            "SELECT revision, kind, server_id, at, data FROM events WHERE revision > $1 \
             ORDER BY revision LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let events = rows
            .iter()
            .map(|r| {
                crate::events::event(
                    r.try_get("revision")?,
                    r.try_get("kind")?,
                    r.try_get("server_id")?,
                    r.try_get("at")?,
                    r.try_get("data")?,
                )
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(EventLog::new(after, current, oldest, events))
    }

    async fn current_revision(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM registry_meta WHERE key = 'revision'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn put_routing(
        &self,
        service: &ServerId,
        policy: RoutingPolicy,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<(Routing, bool), StoreError> {
        let doc = Routing::new(service.clone(), policy, by, now);
        let text = crate::routing::render(&doc)?;
        let mut tx = self.pool.begin().await?;
        // The policy row first (locked by the insert or update), the revision second.
        let inserted: bool = sqlx::query_scalar(
            "INSERT INTO routing (service, document, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (service) DO UPDATE SET document = excluded.document, \
             updated_at = excluded.updated_at \
             RETURNING (xmax = 0)",
        )
        .bind(service.as_str())
        .bind(&text)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        log_events(&mut tx, &[NewEvent::routing(&doc)?], &self.options).await?;
        tx.commit().await?;
        Ok((doc, inserted))
    }

    async fn get_routing(&self, service: &ServerId) -> Result<Option<Routing>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT document FROM routing WHERE service = $1")
                .bind(service.as_str())
                .fetch_optional(&self.pool)
                .await?;
        text.map(|t| crate::routing::parse(service, &t)).transpose()
    }

    async fn delete_routing(&self, service: &ServerId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM routing WHERE service = $1")
            .bind(service.as_str())
            .execute(&mut *tx)
            .await?;
        let deleted = done.rows_affected() > 0;
        if deleted {
            let event = NewEvent::routing_deleted(service, Utc::now());
            log_events(&mut tx, &[event], &self.options).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn record_rollback(
        &self,
        service: &ServerId,
        version: &Version,
        reason: &str,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Routing>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let text: Option<String> =
            sqlx::query_scalar("SELECT document FROM routing WHERE service = $1 FOR UPDATE")
                .bind(service.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(text) = text else {
            return Ok(None);
        };
        let mut doc = crate::routing::parse(service, &text)?;
        if doc.roll_back(version, reason, by, now) == Ok(true) {
            sqlx::query("UPDATE routing SET document = $1, updated_at = $2 WHERE service = $3")
                .bind(crate::routing::render(&doc)?)
                .bind(now)
                .bind(service.as_str())
                .execute(&mut *tx)
                .await?;
            log_events(&mut tx, &[NewEvent::routing(&doc)?], &self.options).await?;
            tx.commit().await?;
        }
        Ok(Some(doc))
    }

    async fn service_versions(&self, service: &ServerId) -> Result<Vec<Version>, StoreError> {
        let raw: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT version FROM servers WHERE service = $1")
                .bind(service.as_str())
                .fetch_all(&self.pool)
                .await?;
        crate::routing::versions(service, raw)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn pool_stats(&self) -> Option<crate::PoolStats> {
        Some(crate::PoolStats::of(&self.pool))
    }
}
