//! The change log in SQLite: revisions taken under the write lock, events inserted in chunks.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::events::NewEvent;
use crate::{StoreError, StoreOptions};

/// Takes the next `events.len()` revisions and logs `events` under them, in the caller's write
/// transaction (which holds SQLite's one write lock, so revisions commit in order); prunes the
/// log when due. Returns the first revision taken.
pub(super) async fn log_events(
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

crate::same_sql::events!(SqliteStore);
