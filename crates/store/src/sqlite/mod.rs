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

/// SQLite's page cache per connection, in KiB (`PRAGMA cache_size = -N`; SQLite's default is
/// 2,000).
const SQLITE_CACHE_KIB: u32 = 1024;

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
            .busy_timeout(Duration::from_secs(5))
            // 1 MiB of page cache per connection, not SQLite's 2 MiB: the pool keeps eight
            // connections (and the health worker two more), each filling its own cache; with
            // 100,000 entries read, RSS drops by ~19 MiB and tag queries keep their throughput
            // (docs/perf.md, registry memory).
            .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pooled connection, and the detached pool's, keeps at most `SQLITE_CACHE_KIB` of
    /// pages.
    #[tokio::test]
    async fn connections_cap_their_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("cache.db").display());
        let store = SqliteStore::open(&url).await.expect("open");
        let want = -i64::from(SQLITE_CACHE_KIB);
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = store.pool.acquire().await.expect("connection");
            let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .expect("cache_size");
            assert_eq!(size, want, "a pooled connection");
            held.push(conn);
        }
        let options = store.connect.clone().expect("a file");
        let detached = pool_options(1).connect_with(options).await.expect("pool");
        let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&detached)
            .await
            .expect("cache_size");
        assert_eq!(size, want, "the detached pool");
    }
}
