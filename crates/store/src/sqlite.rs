//! The embedded SQLite store: one file, WAL journal, `synchronous=FULL` so that an answered
//! write survives a crash or power cut.

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
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, SqlSafeStr, Sqlite};

use crate::events::NewEvent;
use crate::health::{note_written, runs};
use crate::row::{RawEntry, Renderings};
use crate::{
    CheckRecord, EventLog, HealthRow, HeartbeatRow, ListQuery, Page, RenderedPage, StatusRow,
    Store, StoreError, StoreOptions, Upserted,
};

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
            include_str!("../migrations/sqlite/0001_servers.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            Cow::Borrowed("row version"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0002_row_version.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            Cow::Borrowed("events"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0003_events.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            4,
            Cow::Borrowed("service"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0004_service.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            5,
            Cow::Borrowed("routing"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0005_routing.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            6,
            Cow::Borrowed("auth"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0006_auth.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            7,
            Cow::Borrowed("error detail"),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0007_error_detail.sql").into_sql_str(),
            false,
        ),
    ])
}

/// Registry entries in an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    renderings: Arc<Renderings>,
    options: StoreOptions,
    /// How connections are opened, for [`Store::detached`]; `None` for an in-memory database.
    connect: Option<SqliteConnectOptions>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://file.db`) and migrates it.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, StoreOptions::default()).await
    }

    /// [`Self::open`] with `options`.
    pub async fn open_with(url: &str, store_options: StoreOptions) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("{url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // No `mmap_size`: mapping the file cost more than it saved once the health worker
            // writes a fleet's statuses in batches. A profile of the sweep bench showed the
            // connections' threads faulting pages in and unmapping them after each batch; without
            // it they copy the pages they re-read, and spent ~25% less CPU over a sweep.
            .busy_timeout(Duration::from_secs(5));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // An in-memory database exists once per connection: keep exactly one.
        let pool = pool_options(if in_memory { 1 } else { 8 })
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
        migrator().run(&pool).await?;
        Ok(Self {
            pool,
            renderings: Arc::default(),
            options: store_options,
            connect: (!in_memory).then_some(options),
        })
    }
}

/// Takes the next `events.len()` revisions and logs `events` under them, in the caller's write
/// transaction (which holds SQLite's one write lock, so revisions commit in order); prunes the
/// log when due. Returns the first revision taken.
async fn log_events(
    conn: &mut SqliteConnection,
    events: &[NewEvent],
    options: &StoreOptions,
) -> Result<i64, StoreError> {
    const ROWS_PER_INSERT: usize = 1000;
    let n = events.len() as i64;
    let last: i64 = sqlx::query_scalar(
        "UPDATE registry_meta SET value = value + ? WHERE key = 'revision' RETURNING value",
    )
    .bind(n)
    .fetch_one(&mut *conn)
    .await?;
    let first = last - n + 1;
    for (i, chunk) in events.chunks(ROWS_PER_INSERT).enumerate() {
        let base = first + (i * ROWS_PER_INSERT) as i64;
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (revision, kind, server_id, at, data) ",
        );
        q.push_values(chunk.iter().enumerate(), |mut b, (j, e)| {
            b.push_bind(base + j as i64)
                .push_bind(e.kind.as_str())
                .push_bind(e.server_id.as_str())
                .push_bind(e.at)
                .push_bind(e.data.as_str());
        });
        q.build().execute(&mut *conn).await?;
    }
    if let Some(through) = options.prune_through(first, last) {
        sqlx::query("DELETE FROM events WHERE revision <= ?")
            .bind(through)
            .execute(&mut *conn)
            .await?;
    }
    Ok(first)
}

/// A pool of at most `max` connections, kept open for the life of the store.
fn pool_options(max: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(10))
}

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
    for (id, name, url, health_url, auth, mode, ttl, beat, status, since, ok, failed, rev) in rows {
        let (beat, since) = (time(beat)?, time(since)?);
        out.push(crate::health::health_row(
            id, name, url, health_url, auth, mode, ttl, beat, status, since, ok, failed, rev,
        ));
    }
    Some(out.into_iter().collect())
}

/// The health rows registered after `after` as one JSON value (an array of arrays of
/// [`HEALTH_COLUMNS`]): sqlx hands each value of each row from its SQLite thread to ours, which
/// for a fleet's worth of rows costs more than SQLite takes to read them (10,000 entries read
/// by the health worker: ~170 ms as rows, ~80 ms as one value, parsing included).
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
    rows.iter()
        .map(|r: &SqliteRow| {
            crate::health::health_row(
                r.try_get("id")?,
                r.try_get("name")?,
                r.try_get("url")?,
                r.try_get("health_url")?,
                r.try_get("auth_type")?,
                r.try_get("health_mode")?,
                r.try_get("ttl_seconds")?,
                r.try_get("heartbeat_at")?,
                r.try_get("status")?,
                r.try_get("status_since")?,
                r.try_get("successes")?,
                r.try_get("failures")?,
                r.try_get("reg_rev")?,
            )
        })
        .collect()
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

/// Appends a listing's filters, order and limit (`limit + 1` rows, to tell if more remain) to a
/// query that ends in a `WHERE` condition.
fn push_page(q: &mut QueryBuilder<Sqlite>, query: &ListQuery) {
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
        q.push(" AND id IN (SELECT server_id FROM server_tags WHERE tag IN (");
        let mut list = q.separated(", ");
        for tag in &query.tags {
            list.push_bind(tag.as_str());
        }
        q.push("))");
    }
    q.push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(query.limit) + 1);
}

fn raw(row: &SqliteRow) -> Result<RawEntry, sqlx::Error> {
    let tags: String = row.try_get("tags")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(RawEntry {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        url: row.try_get("url")?,
        version: row.try_get("version")?,
        tags: serde_json::from_str(&tags).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        auth_type: row.try_get("auth_type")?,
        token_endpoint: row.try_get("token_endpoint")?,
        health_url: row.try_get("health_url")?,
        status: row.try_get("status")?,
        last_seen: row.try_get("last_seen")?,
        registered_at: row.try_get("registered_at")?,
        updated_at: row.try_get("updated_at")?,
        metadata: serde_json::from_str(&metadata).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        health_mode: row.try_get("health_mode")?,
        ttl_seconds: row.try_get("ttl_seconds")?,
        last_checked_at: row.try_get("last_checked_at")?,
        last_error: row.try_get("last_error")?,
        last_error_detail: row.try_get("last_error_detail")?,
        latency_ms: row.try_get("latency_ms")?,
        status_since: row.try_get("status_since")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn raw_token(row: &SqliteRow) -> Result<crate::tokens::RawToken, StoreError> {
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

fn to_entry(row: &SqliteRow) -> Result<Entry, StoreError> {
    raw(row)?.into_entry()
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert(&self, reg: Registration, now: Timestamp) -> Result<Upserted, StoreError> {
        // IMMEDIATE takes the write lock up front, so the read below cannot go stale.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<Timestamp> =
            sqlx::query_scalar("SELECT registered_at FROM servers WHERE id = ?")
                .bind(reg.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
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
        let rev = log_events(&mut tx, std::slice::from_ref(&event), &self.options).await?;
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

    async fn get(&self, id: &ServerId) -> Result<Option<Entry>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM servers WHERE id = ?"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(to_entry).transpose()
    }

    async fn delete_by(&self, id: &ServerId, by: Option<&str>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("DELETE FROM servers WHERE id = ?")
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
        let (all, mine): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN updated_by = ? THEN 1 ELSE 0 END), 0) \
             FROM servers",
        )
        .bind(by)
        .fetch_one(&self.pool)
        .await?;
        Ok((all.max(0) as u64, mine.max(0) as u64))
    }

    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        let (scopes, ids) = crate::tokens::columns(token);
        sqlx::query(
            "INSERT INTO tokens (id, secret_sha256, scopes, ids, description, created_at, \
             expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
             revoked_at FROM tokens WHERE id = ?",
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
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn has_tokens(&self) -> Result<bool, StoreError> {
        let any: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tokens LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(any.is_some())
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM servers WHERE 1=1"));
        push_page(&mut q, query);
        let rows = q.build().fetch_all(&self.pool).await?;
        crate::page(rows.iter().map(to_entry), query.limit)
    }

    async fn list_rendered(&self, query: &ListQuery) -> Result<RenderedPage, StoreError> {
        // Ids and versions first, as one value: sqlx hands every value of every row from its
        // SQLite thread to ours, which costs more per value than SQLite takes to find the rows.
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT group_concat(id || ' ' || row_version, ' ') \
             FROM (SELECT id, row_version FROM servers WHERE 1=1",
        );
        push_page(&mut q, query);
        q.push(")");
        let listed: Option<String> = q.build_query_scalar().fetch_one(&self.pool).await?;
        let Some(mut listed) = crate::row::parse_listed(listed.as_deref().unwrap_or_default())
        else {
            return crate::render_page(self.list(query).await?);
        };
        // group_concat keeps the subquery's order in practice; sorting makes sure of it.
        listed.sort_unstable();
        let fetch = |ids: Vec<String>| async move {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {COLUMNS}, row_version FROM servers WHERE id IN ("
            ));
            let mut list = q.separated(", ");
            for id in &ids {
                list.push_bind(id.as_str());
            }
            q.push(") ORDER BY id");
            let rows = q.build().fetch_all(&self.pool).await?;
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

    async fn detached(&self) -> Result<Option<Arc<dyn Store>>, StoreError> {
        let Some(options) = &self.connect else {
            return Ok(None);
        };
        // Two connections: one writes a batch while the other reads what to probe. The schema
        // is this store's, migrated when it opened.
        let pool = pool_options(2).connect_with(options.clone()).await?;
        Ok(Some(Arc::new(Self {
            pool,
            renderings: Arc::default(),
            options: self.options.clone(),
            connect: self.connect.clone(),
        })))
    }

    async fn health_rows(&self, after: Option<i64>) -> Result<(Vec<HealthRow>, i64), StoreError> {
        let mut tx = self.pool.begin().await?;
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

    async fn record_checks(&self, checks: &[CheckRecord]) -> Result<Vec<ServerId>, StoreError> {
        let mut written = Vec::with_capacity(checks.len());
        if checks.is_empty() {
            return Ok(written);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
            log_events(&mut tx, &events, &self.options).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    async fn heartbeat(&self, id: &ServerId, now: Timestamp) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE servers SET heartbeat_at = ?1, last_seen = ?1 WHERE id = ?2")
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "DELETE FROM servers WHERE id = ? AND status = 'down' AND status_since <= ?",
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
            "SELECT revision, kind, server_id, at, data FROM events WHERE revision > ? \
             ORDER BY revision LIMIT ?",
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existed: Option<i64> = sqlx::query_scalar("SELECT 1 FROM routing WHERE service = ?")
            .bind(service.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO routing (service, document, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (service) DO UPDATE SET document = excluded.document, \
             updated_at = excluded.updated_at",
        )
        .bind(service.as_str())
        .bind(&text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        log_events(&mut tx, &[NewEvent::routing(&doc)?], &self.options).await?;
        tx.commit().await?;
        Ok((doc, existed.is_none()))
    }

    async fn get_routing(&self, service: &ServerId) -> Result<Option<Routing>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT document FROM routing WHERE service = ?")
                .bind(service.as_str())
                .fetch_optional(&self.pool)
                .await?;
        text.map(|t| crate::routing::parse(service, &t)).transpose()
    }

    async fn delete_routing(&self, service: &ServerId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("DELETE FROM routing WHERE service = ?")
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let text: Option<String> =
            sqlx::query_scalar("SELECT document FROM routing WHERE service = ?")
                .bind(service.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(text) = text else {
            return Ok(None);
        };
        let mut doc = crate::routing::parse(service, &text)?;
        if doc.roll_back(version, reason, by, now) == Ok(true) {
            sqlx::query("UPDATE routing SET document = ?, updated_at = ? WHERE service = ?")
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
            sqlx::query_scalar("SELECT DISTINCT version FROM servers WHERE service = ?")
                .bind(service.as_str())
                .fetch_all(&self.pool)
                .await?;
        crate::routing::versions(service, raw)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn pool_stats(&self) -> Option<crate::PoolStats> {
        Some(crate::PoolStats::of(&self.pool))
    }
}

#[cfg(test)]
mod tests {
    use mcp_fleet_model::HealthStatus;

    use super::*;
    use crate::Store;

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
