//! The embedded SQLite store: one file, WAL journal, `synchronous=FULL` so that an answered
//! write survives a crash or power cut. Writes take SQLite's one write lock up front
//! (`BEGIN IMMEDIATE`), so what they read cannot go stale before they write.
//!
//! Split as the [`Store`] trait is: `entries`, `health`, `tokens`, `routing`, `events`; the
//! PostgreSQL store has the same modules.

mod catalog;
mod entries;
mod events;
mod health;
mod lease;
mod routing;
mod serving;
mod tokens;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

pub use serving::{ServingClaim, claim_for_serving};

use crate::json_cache::JsonCache;
use crate::row::{StoredRow, same_columns};
use crate::{Store, StoreError, StoreOptions};

/// Registry entries in an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    json_cache: Arc<JsonCache>,
    options: StoreOptions,
    /// How connections are opened, for the background pool of [`Store::detached`]; `None` for
    /// an in-memory database.
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
            // writes a fleet's statuses in batches: the connections' threads faulted pages in
            // and unmapped them after each batch (docs/perf.md, health sweep).
            .busy_timeout(Duration::from_secs(5));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let unavailable =
            |e: sqlx::Error| StoreError::Unavailable(format!("cannot open {url}: {e}"));
        if !in_memory {
            // One connection first creates the file, switches it to WAL and migrates it, alone:
            // the pool's connections opening at once on a new file could find it locked.
            let mut first = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
                .await
                .map_err(unavailable)?;
            crate::migrate::migrations!("sqlite")
                .run(&mut first)
                .await?;
            sqlx::Connection::close(first).await.map_err(unavailable)?;
        }
        // An in-memory database exists once per connection: keep exactly one.
        let pool = pool_options(if in_memory { 1 } else { 8 })
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        if in_memory {
            crate::migrate::migrations!("sqlite").run(&pool).await?;
        }
        Ok(Self {
            pool,
            json_cache: Arc::default(),
            options: store_options,
            connect: (!in_memory).then_some(options),
        })
    }
}

impl SqliteStore {
    /// A transaction that may write: `BEGIN IMMEDIATE` takes the write lock up front, so what
    /// it reads cannot go stale before it writes.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
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

/// SQLite keeps every integer as 64 bits, and tags and metadata as JSON text.
impl StoredRow for SqliteRow {
    same_columns!();

    fn int4(&self, col: &str) -> Result<i64, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }

    fn opt_int4(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::Row::try_get(self, col)
    }

    fn tags(&self, col: &str) -> Result<Vec<String>, sqlx::Error> {
        let text: String = sqlx::Row::try_get(self, col)?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    fn json(&self, col: &str) -> Result<serde_json::Value, sqlx::Error> {
        let text: String = sqlx::Row::try_get(self, col)?;
        serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }
}

crate::by_concern::store_by_concern!(SqliteStore, "sqlite", {
    async fn detached(&self) -> Result<Option<Arc<dyn Store>>, StoreError> {
        let Some(options) = &self.connect else {
            return Ok(None);
        };
        // Two connections: one writes a batch while the other reads what to probe. The schema
        // is this store's, migrated when it opened.
        let pool = pool_options(2).connect_with(options.clone()).await?;
        Ok(Some(Arc::new(Self {
            pool,
            json_cache: Arc::default(),
            options: self.options.clone(),
            connect: self.connect.clone(),
        })))
    }
});
