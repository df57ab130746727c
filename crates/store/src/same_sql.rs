//! The store functions whose SQL both backends run as written (`$N` placeholders work in
//! SQLite too), each written once here as a macro that a backend's module of the same concern
//! expands for its store. What differs between the backends stays in their own modules.
//!
//! A backend's store has a `pool`, `options` and `begin_write()` (a transaction that may write:
//! SQLite takes its write lock up front), and each concern module has `super::events::log_events`.

/// Appends a listing's filters, order and limit (`limit + 1` rows, to tell if more remain) to a
/// query that ends in a `WHERE` condition; `push_tags` appends the condition "has any of these
/// tags", the one filter the backends write differently.
pub(crate) fn push_page<DB: sqlx::Database>(
    q: &mut sqlx::QueryBuilder<DB>,
    query: &crate::ListQuery,
    push_tags: impl FnOnce(&mut sqlx::QueryBuilder<DB>, &[mcp_fleet_model::Tag]),
) where
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    if let mcp_fleet_model::StatusFilter::Only(status) = query.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(service) = &query.service {
        q.push(" AND service = ").push_bind(service.as_str());
    }
    if let Some(after) = &query.after {
        q.push(" AND id > ").push_bind(after.as_str());
    }
    if !query.tags.is_empty() {
        push_tags(q, &query.tags);
    }
    q.push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(query.limit) + 1);
}

/// Entries: read one, delete one, a listing, the `/status` rows. `push_page` is the backend's
/// [`push_page`].
macro_rules! entries {
    ($store:ty, $db:ty) => {
        pub(super) async fn list(
            store: &$store,
            query: &$crate::ListQuery,
        ) -> Result<$crate::Page, $crate::StoreError> {
            let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                "SELECT {} FROM servers WHERE TRUE",
                $crate::row::ENTRY_COLUMNS
            ));
            push_page(&mut q, query);
            let mut rows = q.build().fetch(&store.pool);
            let mut entries = Vec::new();
            while let Some(row) = futures::TryStreamExt::try_next(&mut rows).await? {
                entries.push($crate::row::entry(&row));
            }
            $crate::page(entries.into_iter(), query.limit)
        }

        pub(super) async fn get(
            store: &$store,
            id: &mcp_fleet_model::ServerId,
        ) -> Result<Option<mcp_fleet_model::Entry>, $crate::StoreError> {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM servers WHERE id = $1",
                $crate::row::ENTRY_COLUMNS
            )))
            .bind(id.as_str())
            .fetch_optional(&store.pool)
            .await?;
            row.as_ref().map($crate::row::entry).transpose()
        }

        pub(super) async fn delete_by(
            store: &$store,
            id: &mcp_fleet_model::ServerId,
            by: Option<&str>,
        ) -> Result<bool, $crate::StoreError> {
            let mut tx = store.begin_write().await?;
            let done = sqlx::query("DELETE FROM servers WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            let deleted = done.rows_affected() > 0;
            if deleted {
                let event = $crate::events::NewEvent::deleted_by(id, chrono::Utc::now(), by);
                super::events::log_events(&mut tx, &[event], &store.options).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        }

        pub(super) fn status_rows(
            store: &$store,
        ) -> futures::stream::BoxStream<'_, Result<$crate::StatusRow, $crate::StoreError>> {
            use futures::{StreamExt, TryStreamExt};
            // Row by row: the rows of a whole fleet, read at once, are allocated on the
            // connection's thread, whose allocator keeps the memory once they are freed here.
            let sql = format!(
                "SELECT {} FROM servers LEFT JOIN catalogs c \
                 ON c.server_id = servers.id AND c.version = servers.version ORDER BY servers.id",
                $crate::row::STATUS_COLUMNS
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch(&store.pool)
                .map_err($crate::StoreError::from)
                .and_then(|row| std::future::ready($crate::row::status_row(&row)))
                .boxed()
        }
    };
}
pub(crate) use entries;

/// Health: heartbeats, and deleting an entry down for too long.
macro_rules! health {
    ($store:ty) => {
        pub(super) async fn heartbeat(
            store: &$store,
            id: &mcp_fleet_model::ServerId,
            now: mcp_fleet_model::Timestamp,
        ) -> Result<bool, $crate::StoreError> {
            let done =
                sqlx::query("UPDATE servers SET heartbeat_at = $1, last_seen = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id.as_str())
                    .execute(&store.pool)
                    .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(super) async fn heartbeats(
            store: &$store,
        ) -> Result<Vec<$crate::HeartbeatRow>, $crate::StoreError> {
            let rows = sqlx::query(
                "SELECT id, heartbeat_at FROM servers WHERE ttl_seconds IS NOT NULL ORDER BY id",
            )
            .fetch_all(&store.pool)
            .await?;
            rows.iter().map($crate::row::heartbeat_row).collect()
        }

        pub(super) async fn deregister_if_down(
            store: &$store,
            id: &mcp_fleet_model::ServerId,
            before: mcp_fleet_model::Timestamp,
        ) -> Result<bool, $crate::StoreError> {
            let mut tx = store.begin_write().await?;
            let done = sqlx::query(
                "DELETE FROM servers WHERE id = $1 AND status = 'down' AND status_since <= $2",
            )
            .bind(id.as_str())
            .bind(before)
            .execute(&mut *tx)
            .await?;
            let deleted = done.rows_affected() > 0;
            if deleted {
                let event = $crate::events::NewEvent::deleted(id, chrono::Utc::now());
                super::events::log_events(&mut tx, &[event], &store.options).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        }
    };
}
pub(crate) use health;

/// Tokens: all of them.
macro_rules! tokens {
    ($store:ty) => {
        pub(super) async fn create_token(
            store: &$store,
            token: &mcp_fleet_model::TokenRecord,
        ) -> Result<(), $crate::StoreError> {
            let (scopes, ids) = $crate::tokens::columns(token);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO tokens ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                $crate::row::TOKEN_COLUMNS
            )))
            .bind(&token.id)
            .bind(&token.secret_sha256)
            .bind(scopes)
            .bind(ids)
            .bind(&token.description)
            .bind(token.created_at)
            .bind(token.expires_at)
            .bind(token.revoked_at)
            .execute(&store.pool)
            .await?;
            Ok(())
        }

        pub(super) async fn token(
            store: &$store,
            id: &str,
        ) -> Result<Option<mcp_fleet_model::TokenRecord>, $crate::StoreError> {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM tokens WHERE id = $1",
                $crate::row::TOKEN_COLUMNS
            )))
            .bind(id)
            .fetch_optional(&store.pool)
            .await?;
            row.as_ref().map($crate::row::token).transpose()
        }

        pub(super) async fn tokens(
            store: &$store,
        ) -> Result<Vec<mcp_fleet_model::TokenRecord>, $crate::StoreError> {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM tokens ORDER BY created_at DESC, id",
                $crate::row::TOKEN_COLUMNS
            )))
            .fetch_all(&store.pool)
            .await?;
            rows.iter().map($crate::row::token).collect()
        }

        pub(super) async fn revoke_token(
            store: &$store,
            id: &str,
            now: mcp_fleet_model::Timestamp,
        ) -> Result<bool, $crate::StoreError> {
            let done = sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&store.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(super) async fn has_tokens(store: &$store) -> Result<bool, $crate::StoreError> {
            let any = sqlx::query("SELECT 1 FROM tokens LIMIT 1")
                .fetch_optional(&store.pool)
                .await?;
            Ok(any.is_some())
        }
    };
}
pub(crate) use tokens;

/// Routing: read a policy, roll a version back, record gateways' canary counts, delete a policy,
/// the versions of a service.
/// `$lock` ends the read of the policy a rollback rewrites: what locks its row until the
/// transaction ends, where `begin_write()` has not locked it already.
macro_rules! routing {
    ($store:ty, $lock:literal) => {
        pub(super) async fn record_rollback(
            store: &$store,
            service: &mcp_fleet_model::ServerId,
            version: &mcp_fleet_model::Version,
            reason: &str,
            by: Option<&str>,
            now: mcp_fleet_model::Timestamp,
        ) -> Result<Option<mcp_fleet_model::Routing>, $crate::StoreError> {
            let mut tx = store.begin_write().await?;
            let text: Option<String> = sqlx::query_scalar(concat!(
                "SELECT document FROM routing WHERE service = $1",
                $lock
            ))
            .bind(service.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(text) = text else {
                return Ok(None);
            };
            let mut doc = $crate::routing::parse(service, &text)?;
            if doc.roll_back(version, reason, by, now) == Ok(true) {
                sqlx::query("UPDATE routing SET document = $1, updated_at = $2 WHERE service = $3")
                    .bind($crate::routing::render(&doc)?)
                    .bind(now)
                    .bind(service.as_str())
                    .execute(&mut *tx)
                    .await?;
                // Its counts go: should it get traffic again, it starts from none.
                sqlx::query("DELETE FROM canary_observations WHERE service = $1 AND version = $2")
                    .bind(service.as_str())
                    .bind(version.to_string())
                    .execute(&mut *tx)
                    .await?;
                let event = $crate::events::NewEvent::routing(&doc)?;
                super::events::log_events(&mut tx, &[event], &store.options).await?;
                tx.commit().await?;
            }
            Ok(Some(doc))
        }

        pub(super) async fn record_observations(
            store: &$store,
            service: &mcp_fleet_model::ServerId,
            report: &mcp_fleet_model::Observations,
            now: mcp_fleet_model::Timestamp,
        ) -> Result<Option<mcp_fleet_model::ObservedTotals>, $crate::StoreError> {
            let slot_ms = report.slot_ms;
            let current = mcp_fleet_model::slot_of(now, slot_ms);
            let first = current.saturating_sub(mcp_fleet_model::WINDOW_SLOTS - 1);
            let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            let mut tx = store.begin_write().await?;
            // The policy row is locked first, as a rollback locks it: reports and rollbacks of
            // one service take turns, so each sum is read with every report before it.
            let text: Option<String> = sqlx::query_scalar(concat!(
                "SELECT document FROM routing WHERE service = $1",
                $lock
            ))
            .bind(service.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(text) = text else {
                return Ok(None);
            };
            let doc = $crate::routing::parse(service, &text)?;
            let weighed = |v: &mcp_fleet_model::Version| doc.weights.get(v).is_some_and(|w| *w > 0);
            for (version, slots) in report.versions.iter().filter(|(v, _)| weighed(v)) {
                for counts in slots.iter().filter(|c| (first..=current).contains(&c.slot)) {
                    let expires_at = counts
                        .slot
                        .saturating_add(mcp_fleet_model::WINDOW_SLOTS + 1)
                        .saturating_mul(slot_ms);
                    sqlx::query(
                        "INSERT INTO canary_observations (service, version, replica, slot_ms, \
                         slot, calls, errors, tool_errors, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (service, slot_ms, slot, version, replica) DO UPDATE SET \
                         calls = excluded.calls, errors = excluded.errors, \
                         tool_errors = excluded.tool_errors, expires_at = excluded.expires_at",
                    )
                    .bind(service.as_str())
                    .bind(version.to_string())
                    .bind(&report.replica)
                    .bind(int(slot_ms))
                    .bind(int(counts.slot))
                    .bind(int(counts.calls))
                    .bind(int(counts.errors))
                    .bind(int(counts.tool_errors))
                    .bind(int(expires_at))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            sqlx::query("DELETE FROM canary_observations WHERE expires_at < $1")
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await?;
            let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
                "SELECT version, CAST(SUM(calls) AS BIGINT), CAST(SUM(errors) AS BIGINT), \
                 CAST(SUM(tool_errors) AS BIGINT) FROM canary_observations \
                 WHERE service = $1 AND slot_ms = $2 AND slot BETWEEN $3 AND $4 \
                 GROUP BY version",
            )
            .bind(service.as_str())
            .bind(int(slot_ms))
            .bind(int(first))
            .bind(int(current))
            .fetch_all(&mut *tx)
            .await?;
            let replicas: i64 = sqlx::query_scalar(
                "SELECT COUNT(DISTINCT replica) FROM canary_observations \
                 WHERE service = $1 AND slot_ms = $2 AND slot BETWEEN $3 AND $4",
            )
            .bind(service.as_str())
            .bind(int(slot_ms))
            .bind(int(first))
            .bind(int(current))
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            let count = |n: i64| u64::try_from(n).unwrap_or(0);
            let mut versions = std::collections::BTreeMap::new();
            for (version, calls, errors, tool_errors) in rows {
                let version: mcp_fleet_model::Version =
                    version.parse().map_err(|e| $crate::StoreError::Corrupt {
                        id: format!("canary counts of {service}"),
                        reason: format!("version {e}"),
                    })?;
                if weighed(&version) {
                    versions.insert(
                        version,
                        mcp_fleet_model::VersionTotals {
                            calls: count(calls),
                            errors: count(errors),
                            tool_errors: count(tool_errors),
                        },
                    );
                }
            }
            Ok(Some(mcp_fleet_model::ObservedTotals {
                service: service.clone(),
                slot_ms,
                slot: current,
                replicas: count(replicas),
                versions,
            }))
        }

        pub(super) async fn get_routing(
            store: &$store,
            service: &mcp_fleet_model::ServerId,
        ) -> Result<Option<mcp_fleet_model::Routing>, $crate::StoreError> {
            let text: Option<String> =
                sqlx::query_scalar("SELECT document FROM routing WHERE service = $1")
                    .bind(service.as_str())
                    .fetch_optional(&store.pool)
                    .await?;
            text.map(|t| $crate::routing::parse(service, &t))
                .transpose()
        }

        pub(super) async fn routing_documents(
            store: &$store,
        ) -> Result<Vec<mcp_fleet_model::Routing>, $crate::StoreError> {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT service, document FROM routing ORDER BY service")
                    .fetch_all(&store.pool)
                    .await?;
            rows.into_iter()
                .map(|(service, text)| {
                    let service = service.parse().map_err(|e| $crate::StoreError::Corrupt {
                        id: format!("routing of {service}"),
                        reason: format!("service {e}"),
                    })?;
                    $crate::routing::parse(&service, &text)
                })
                .collect()
        }

        pub(super) async fn delete_routing(
            store: &$store,
            service: &mcp_fleet_model::ServerId,
        ) -> Result<bool, $crate::StoreError> {
            let mut tx = store.begin_write().await?;
            let done = sqlx::query("DELETE FROM routing WHERE service = $1")
                .bind(service.as_str())
                .execute(&mut *tx)
                .await?;
            let deleted = done.rows_affected() > 0;
            if deleted {
                sqlx::query("DELETE FROM canary_observations WHERE service = $1")
                    .bind(service.as_str())
                    .execute(&mut *tx)
                    .await?;
                let event = $crate::events::NewEvent::routing_deleted(service, chrono::Utc::now());
                super::events::log_events(&mut tx, &[event], &store.options).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        }

        pub(super) async fn service_versions(
            store: &$store,
            service: &mcp_fleet_model::ServerId,
        ) -> Result<Vec<mcp_fleet_model::Version>, $crate::StoreError> {
            let raw: Vec<String> =
                sqlx::query_scalar("SELECT DISTINCT version FROM servers WHERE service = $1")
                    .bind(service.as_str())
                    .fetch_all(&store.pool)
                    .await?;
            $crate::routing::versions(service, raw)
        }
    };
}
pub(crate) use routing;

/// Events: reading the log.
macro_rules! events {
    ($store:ty) => {
        pub(super) async fn events_since(
            store: &$store,
            after: i64,
            limit: u32,
        ) -> Result<$crate::EventLog, $crate::StoreError> {
            // The revision first: every event up to it has committed, so the read below sees them.
            let (current, oldest): (i64, Option<i64>) = sqlx::query_as(
                "SELECT (SELECT value FROM registry_meta WHERE key = 'revision'), \
                 (SELECT MIN(revision) FROM events)",
            )
            .fetch_one(&store.pool)
            .await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {} FROM events WHERE revision > $1 ORDER BY revision LIMIT $2",
                $crate::row::EVENT_COLUMNS
            )))
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&store.pool)
            .await?;
            let events = rows
                .iter()
                .map($crate::row::event)
                .collect::<Result<Vec<_>, _>>()?;
            Ok($crate::EventLog::new(after, current, oldest, events))
        }

        pub(super) async fn current_revision(store: &$store) -> Result<i64, $crate::StoreError> {
            Ok(
                sqlx::query_scalar("SELECT value FROM registry_meta WHERE key = 'revision'")
                    .fetch_one(&store.pool)
                    .await?,
            )
        }
    };
}
pub(crate) use events;
