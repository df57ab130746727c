//! Routing policies in PostgreSQL: one JSON document per service.

use mcp_fleet_model::{Routing, RoutingPolicy, ServerId, Timestamp, Version};

use super::PostgresStore;
use super::events::log_events;
use crate::StoreError;
use crate::events::NewEvent;

pub(super) async fn put_routing(
    store: &PostgresStore,
    service: &ServerId,
    policy: RoutingPolicy,
    by: Option<&str>,
    now: Timestamp,
) -> Result<(Routing, bool), StoreError> {
    let doc = Routing::new(service.clone(), policy, by, now);
    let text = crate::routing::render(&doc)?;
    let mut tx = store.pool.begin().await?;
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
    log_events(&mut tx, &[NewEvent::routing(&doc)?], &store.options).await?;
    tx.commit().await?;
    Ok((doc, inserted))
}

pub(super) async fn record_rollback(
    store: &PostgresStore,
    service: &ServerId,
    version: &Version,
    reason: &str,
    by: Option<&str>,
    now: Timestamp,
) -> Result<Option<Routing>, StoreError> {
    let mut tx = store.pool.begin().await?;
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
        log_events(&mut tx, &[NewEvent::routing(&doc)?], &store.options).await?;
        tx.commit().await?;
    }
    Ok(Some(doc))
}

crate::same_sql::routing!(PostgresStore);
