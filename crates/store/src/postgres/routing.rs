//! Routing policies in PostgreSQL: one JSON document per service.

use mcp_fleet_model::Routing;

use super::PostgresStore;
use super::events::log_events;
use crate::StoreError;
use crate::events::NewEvent;

pub(super) async fn put_routing(store: &PostgresStore, doc: &Routing) -> Result<bool, StoreError> {
    let (service, now) = (&doc.service, doc.updated_at);
    let text = crate::routing::render(doc)?;
    let mut tx = store.begin_write().await?;
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
    log_events(&mut tx, &[NewEvent::routing(doc)?], &store.options).await?;
    tx.commit().await?;
    Ok(inserted)
}

// PostgreSQL: the policy a rollback rewrites stays locked until it commits.
crate::same_sql::routing!(PostgresStore, " FOR UPDATE");
