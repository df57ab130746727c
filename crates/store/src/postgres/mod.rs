//! The PostgreSQL store, for several registry replicas or a managed database. Writers lock the
//! rows they change first (by the write itself, or `FOR UPDATE`) and take the revision second,
//! so revisions commit in order and writers cannot deadlock.
//!
//! Split as the [`crate::Store`] trait is: `entries`, `health`, `tokens`, `routing`, `events`;
//! the SQLite store has the same modules. `notify` is PostgreSQL's alone: commits announced to
//! listeners.

mod catalog;
mod entries;
mod events;
mod health;
mod lease;
mod notify;
mod routing;
mod tokens;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use crate::json_cache::JsonCache;
use crate::row::{StoredRow, same_columns};
use crate::{StoreError, StoreOptions};

/// Registry entries in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    json_cache: Arc<JsonCache>,
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
        crate::migrate::migrations!("postgres").run(&pool).await?;
        Ok(Self {
            pool,
            json_cache: Arc::default(),
            options: store_options,
        })
    }
}

impl PostgresStore {
    /// A transaction that may write; it locks the rows it writes as it goes.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

/// PostgreSQL keeps counters as `integer`, tags as `text[]` and metadata as `jsonb`.
impl StoredRow for PgRow {
    same_columns!();

    fn int4(&self, col: &str) -> Result<i64, sqlx::Error> {
        sqlx::Row::try_get::<i32, _>(self, col).map(i64::from)
    }

    fn opt_int4(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        Ok(sqlx::Row::try_get::<Option<i32>, _>(self, col)?.map(i64::from))
    }

    fn tags(&self, col: &str) -> Result<Vec<String>, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }

    fn json(&self, col: &str) -> Result<serde_json::Value, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }
}

crate::by_concern::store_by_concern!(PostgresStore, "postgres", {
    async fn listen(&self) -> Result<Option<Box<dyn crate::Commits>>, StoreError> {
        notify::listen(self).await.map(Some)
    }
});
