//! Routing policies in SQLite: one JSON document per service.

use mcp_fleet_model::Routing;

use super::SqliteStore;
use super::events::log_events;
use crate::StoreError;
use crate::events::NewEvent;

pub(super) async fn put_routing(store: &SqliteStore, doc: &Routing) -> Result<bool, StoreError> {
    let (service, now) = (&doc.service, doc.updated_at);
    let text = crate::routing::render(doc)?;
    let mut tx = store.begin_write().await?;
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
    log_events(&mut tx, &[NewEvent::routing(doc)?], &store.options).await?;
    tx.commit().await?;
    Ok(existed.is_none())
}

// SQLite: `begin_write()` holds the write lock already.
crate::same_sql::routing!(SqliteStore, "");
