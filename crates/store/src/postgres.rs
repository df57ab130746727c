//! The PostgreSQL store, for several registry replicas or a managed database.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mcp_fleet_model::{Entry, Registration, ServerId, StatusFilter, Timestamp};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, SqlSafeStr};

use crate::row::RawEntry;
use crate::{ListQuery, Page, StatusRow, Store, StoreError, Upserted};

const COLUMNS: &str = "id, name, description, url, version, tags, auth_type, token_endpoint, \
     health_url, status, last_seen, registered_at, updated_at, metadata";

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        Cow::Borrowed("servers"),
        MigrationType::Simple,
        include_str!("../migrations/postgres/0001_servers.sql").into_sql_str(),
        false,
    )])
}

/// Registry entries in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host/db`) and migrates the schema.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("{}: {e}", crate::redact(url))))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot connect to {}: {e}", crate::redact(url)))
            })?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }
}

fn raw(row: &PgRow) -> Result<RawEntry, sqlx::Error> {
    Ok(RawEntry {
        id: row.try_get("id")?,
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
        // `xmax = 0` holds only for a freshly inserted row version: it tells insert from update
        // in the same statement, so no separate read (and no race) is needed.
        let row = sqlx::query(
            "INSERT INTO servers (id, name, description, url, version, tags, auth_type, \
             token_endpoint, health_url, status, last_seen, registered_at, updated_at, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             description = excluded.description, url = excluded.url, version = excluded.version, \
             tags = excluded.tags, auth_type = excluded.auth_type, \
             token_endpoint = excluded.token_endpoint, health_url = excluded.health_url, \
             status = excluded.status, last_seen = excluded.last_seen, \
             updated_at = excluded.updated_at, metadata = excluded.metadata \
             RETURNING registered_at, (xmax = 0) AS inserted",
        )
        .bind(entry.id.as_str())
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
        .fetch_one(&self.pool)
        .await?;
        entry.registered_at = row.try_get("registered_at")?;
        let inserted: bool = row.try_get("inserted")?;
        Ok(if inserted {
            Upserted::Created(entry)
        } else {
            Upserted::Replaced(entry)
        })
    }

    async fn get(&self, id: &ServerId) -> Result<Option<Entry>, StoreError> {
        let row = sqlx::query("SELECT * FROM servers WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(to_entry).transpose()
    }

    async fn delete(&self, id: &ServerId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM servers WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let mut q =
            QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM servers WHERE TRUE"));
        if let StatusFilter::Only(status) = query.status {
            q.push(" AND status = ").push_bind(status.as_str());
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
        let rows = q.build().fetch_all(&self.pool).await?;
        crate::page(rows.iter().map(to_entry), query.limit)
    }

    async fn status_rows(&self) -> Result<Vec<StatusRow>, StoreError> {
        let rows = sqlx::query("SELECT id, name, status, last_seen FROM servers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                crate::status_row(
                    r.try_get("id")?,
                    r.try_get("name")?,
                    r.try_get("status")?,
                    r.try_get("last_seen")?,
                )
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
