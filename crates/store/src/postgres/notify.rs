//! Commits on the database as they happen: every transaction that takes a revision announces it
//! on [`CHANNEL`] (`events.rs` `log_events`), and PostgreSQL hands the announcement to every
//! session that `LISTEN`s once the transaction commits. Each registry replica listens, so a
//! write acknowledged by one reaches the change feed and read cache of the others at once.

use async_trait::async_trait;
use sqlx::postgres::PgListener;

use super::PostgresStore;
use crate::{Commits, StoreError};

/// The channel revisions are announced on; its payload is the revision, as text.
pub(crate) const CHANNEL: &str = "mcp_fleet_revision";

/// A `LISTEN` session on [`CHANNEL`], on a connection of the store's pool that it keeps.
struct Listener(PgListener);

#[async_trait]
impl Commits for Listener {
    async fn next(&mut self) -> Result<Option<i64>, StoreError> {
        // `try_recv` says `None` when the session was lost (and reconnects): announcements made
        // meanwhile are gone, which the caller must make up for by reading the log.
        match self.0.try_recv().await? {
            Some(n) => Ok(Some(n.payload().parse().map_err(|_| {
                StoreError::Corrupt {
                    id: format!("{CHANNEL} announcement"),
                    reason: format!("payload {:?} is not a revision", n.payload()),
                }
            })?)),
            None => Ok(None),
        }
    }
}

pub(super) async fn listen(store: &PostgresStore) -> Result<Box<dyn Commits>, StoreError> {
    let mut listener = PgListener::connect_with(&store.pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(Box::new(Listener(listener)))
}
