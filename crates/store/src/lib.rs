//! Durable storage of registry entries.
//!
//! [`Store`] is the one interface the registry uses; [`SqliteStore`] (embedded, the default) and
//! [`PostgresStore`] implement the same behaviour, proven by one test suite run against both.
//! Every write returns only after its transaction has committed durably.

mod error;
mod events;
mod health;
mod postgres;
mod routing;
mod row;
mod sqlite;
mod tokens;

use std::sync::Arc;

use async_trait::async_trait;
use mcp_fleet_model::{
    Entry, HealthStatus, Registration, Routing, RoutingPolicy, ServerId, StatusFilter, Tag,
    Timestamp, TokenRecord, Version,
};

pub use error::StoreError;
pub use events::{DEFAULT_EVENT_RETENTION, Event, EventKind, EventLog, StoreOptions};
pub use health::{CheckRecord, HealthRow, HeartbeatRow};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Largest page [`Store::list`] returns.
pub const MAX_PAGE: u32 = 1000;

/// A filtered, paginated listing: entries having ANY of `tags` (all when empty), matching
/// `status` (and `service`, when given), in id order, after `after`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListQuery {
    /// Entries having any of these tags; no filter when empty.
    pub tags: Vec<Tag>,
    /// Status filter.
    pub status: StatusFilter,
    /// Only instances of this service; every entry when `None`.
    pub service: Option<ServerId>,
    /// Start after this id (exclusive): the cursor.
    pub after: Option<ServerId>,
    /// Page size, 1..=[`MAX_PAGE`].
    pub limit: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            tags: Vec::new(),
            status: StatusFilter::default(),
            service: None,
            after: None,
            limit: 100,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The entries, in id order.
    pub entries: Vec<Entry>,
    /// Set when more entries remain: pass it as [`ListQuery::after`] for the next page.
    pub next_after: Option<ServerId>,
}

/// One page of a listing with each entry already rendered as JSON: what `GET /servers` sends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderedPage {
    /// Each entry exactly as `serde_json` renders its [`Entry`], in id order.
    pub entries: Vec<Arc<str>>,
    /// Set when more entries remain, as in [`Page`].
    pub next_after: Option<ServerId>,
}

/// Whether a registration created an entry or replaced one.
#[derive(Debug, Clone, PartialEq)]
pub enum Upserted {
    /// The id was new.
    Created(Entry),
    /// An entry with that id existed and was replaced (its `registeredAt` kept).
    Replaced(Entry),
}

impl Upserted {
    /// The stored entry.
    pub fn entry(&self) -> &Entry {
        match self {
            Self::Created(e) | Self::Replaced(e) => e,
        }
    }
}

/// The fields `/status` shows of each entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    /// Entry id.
    pub id: ServerId,
    /// Entry name.
    pub name: String,
    /// Current health.
    pub status: HealthStatus,
    /// Last successful check.
    pub last_seen: Option<Timestamp>,
    /// Why the last check failed, when it did.
    pub last_error: Option<String>,
    /// Since when the entry has had its status.
    pub status_since: Option<Timestamp>,
    /// How the entry is checked.
    pub mode: mcp_fleet_model::HealthCheckMode,
}

/// Where registry entries live. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates or fully replaces the entry `reg.id` as of `now`, committing before it returns.
    /// A replaced entry keeps its `registeredAt`; status and `lastSeen` are reset as on a first
    /// registration. Logs a `created` or `replaced` event.
    async fn upsert(&self, reg: Registration, now: Timestamp) -> Result<Upserted, StoreError>;

    /// The entry with this id.
    async fn get(&self, id: &ServerId) -> Result<Option<Entry>, StoreError>;

    /// Deletes the entry, logging a `deleted` event; `false` when there was none.
    async fn delete(&self, id: &ServerId) -> Result<bool, StoreError> {
        self.delete_by(id, None).await
    }

    /// [`Store::delete`] by `by` (a token id or OIDC subject), which the `deleted` event names
    /// as `updatedBy`.
    async fn delete_by(&self, id: &ServerId, by: Option<&str>) -> Result<bool, StoreError>;

    /// How many entries there are, and how many of them `by` registered last.
    async fn count_entries(&self, by: Option<&str>) -> Result<(u64, u64), StoreError>;

    /// Stores a new API token (its hash, scopes and id patterns).
    async fn create_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    /// The token with this id, active or not.
    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// Revokes token `id` as of `now`; `false` when there is no such token or it was revoked.
    async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Whether any token was ever created (revoked ones count: revoking every token must not
    /// open writes).
    async fn has_tokens(&self) -> Result<bool, StoreError>;

    /// One page of entries matching `query`, filtered in the database.
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// [`Store::list`] with each entry rendered as JSON. The backends keep each row's rendering
    /// until the row changes, so a listing decodes and renders only the entries that changed.
    async fn list_rendered(&self, query: &ListQuery) -> Result<RenderedPage, StoreError> {
        render_page(self.list(query).await?)
    }

    /// `(id, name, status, lastSeen)` of every entry, in id order.
    async fn status_rows(&self) -> Result<Vec<StatusRow>, StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The same database through connections of its own, for background work such as the
    /// health worker: its threads' lower priority and its write transactions then never reach
    /// the connections that answer API requests. `None` when the backend has nothing to gain
    /// from it (a database server keeps its own processes) or cannot (an in-memory database
    /// exists once); use this store then.
    async fn detached(&self) -> Result<Option<Arc<dyn Store>>, StoreError> {
        Ok(None)
    }

    /// Entries registered after revision `after` (every entry when `None`), and the registry's
    /// current revision: the health worker's view of what to probe.
    async fn health_rows(&self, after: Option<i64>) -> Result<(Vec<HealthRow>, i64), StoreError>;

    /// Writes a batch of check results in one transaction; a result for an entry that was
    /// deleted or re-registered since (`reg_rev` differs) is skipped. Logs a `status` event
    /// for each result that changes its entry's status. Returns the ids written.
    async fn record_checks(&self, checks: &[CheckRecord]) -> Result<Vec<ServerId>, StoreError>;

    /// Records a heartbeat for `id` at `now`; `false` when there is no such entry.
    async fn heartbeat(&self, id: &ServerId, now: Timestamp) -> Result<bool, StoreError>;

    /// The last heartbeat of every entry that has a TTL.
    async fn heartbeats(&self) -> Result<Vec<HeartbeatRow>, StoreError>;

    /// Deletes `id` if it is still `down` since before `before`, logging a `deleted` event;
    /// `true` when it was deleted.
    async fn deregister_if_down(
        &self,
        id: &ServerId,
        before: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` logged events after revision `after`, oldest first, and whether some that
    /// should follow `after` are no longer logged ([`EventLog::gone`]).
    async fn events_since(&self, after: i64, limit: u32) -> Result<EventLog, StoreError>;

    /// The registry's revision: that of the last committed change.
    async fn current_revision(&self) -> Result<i64, StoreError>;

    /// Sets the routing policy of `service`, `by` a principal as of `now`, replacing any (and
    /// its rollback record), and logs a `routing` event. Returns the stored document and whether
    /// the service had no policy before.
    async fn put_routing(
        &self,
        service: &ServerId,
        policy: RoutingPolicy,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<(Routing, bool), StoreError>;

    /// The routing policy of `service`.
    async fn get_routing(&self, service: &ServerId) -> Result<Option<Routing>, StoreError>;

    /// Deletes the routing policy of `service`, logging a `routing` event with data
    /// `{"service"}`; `false` when there was none.
    async fn delete_routing(&self, service: &ServerId) -> Result<bool, StoreError>;

    /// Rolls `version` of `service` back, `by` a principal as of `now` ([`Routing::roll_back`]:
    /// its weight goes to the heaviest other version, the rollback is recorded) and logs a
    /// `routing` event.
    /// `None` when the service has no policy. When the rollback does not apply (the weight is
    /// already 0, or the version is not weighed or is the only one) nothing is written and the
    /// current document is returned.
    async fn record_rollback(
        &self,
        service: &ServerId,
        version: &Version,
        reason: &str,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Routing>, StoreError>;

    /// The distinct versions of the entries of `service`, in version order.
    async fn service_versions(&self, service: &ServerId) -> Result<Vec<Version>, StoreError>;

    /// Which backend this is, for logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The connection pool's occupancy, for metrics; `None` for stores without a pool.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}

/// A connection pool's occupancy at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open, idle or in use.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Most connections the pool opens.
    pub max: u32,
}

impl PoolStats {
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        Self {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

/// Opens the store a database URL names, creating the SQLite file if needed and applying
/// migrations: `sqlite://path/to/file.db` (or `sqlite::memory:`) or `postgres://…`.
pub async fn connect(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(database_url, StoreOptions::default()).await
}

/// [`connect`] with `options`.
pub async fn connect_with(
    database_url: &str,
    options: StoreOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::open_with(database_url, options).await?,
        ))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(
            PostgresStore::open_with(database_url, options).await?,
        ))
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL {:?}: expected sqlite://FILE or postgres://USER@HOST/DB",
            redact(database_url)
        )))
    }
}

/// A URL with any password replaced, safe to print.
pub fn redact(database_url: &str) -> String {
    match url::Url::parse(database_url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => database_url.to_owned(),
    }
}

/// Cuts a `limit + 1` fetch down to one page, noting whether more remain.
fn page(
    rows: impl Iterator<Item = Result<mcp_fleet_model::Entry, StoreError>>,
    limit: u32,
) -> Result<Page, StoreError> {
    let mut entries = rows.collect::<Result<Vec<_>, _>>()?;
    let next_after = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok(Page {
        entries,
        next_after,
    })
}

/// Renders every entry of `page` as JSON.
fn render_page(page: Page) -> Result<RenderedPage, StoreError> {
    Ok(RenderedPage {
        entries: page.entries.iter().map(render).collect::<Result<_, _>>()?,
        next_after: page.next_after,
    })
}

fn render(entry: &Entry) -> Result<Arc<str>, StoreError> {
    serde_json::to_string(entry)
        .map(Arc::from)
        .map_err(|e| StoreError::Corrupt {
            id: entry.id.to_string(),
            reason: format!("cannot render: {e}"),
        })
}

fn status_row(
    id: String,
    name: String,
    status: String,
    last_seen: Option<Timestamp>,
    (last_error, status_since, mode): (Option<String>, Option<Timestamp>, String),
) -> Result<StatusRow, StoreError> {
    let bad = |reason: String| StoreError::Corrupt {
        id: id.clone(),
        reason,
    };
    Ok(StatusRow {
        id: id.parse().map_err(|e| bad(format!("id {e}")))?,
        status: status.parse().map_err(|e| bad(format!("status {e}")))?,
        name,
        last_seen,
        last_error,
        status_since,
        mode: mode
            .parse()
            .map_err(|e| bad(format!("healthCheck.mode {e}")))?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;
    use sqlx::{AssertSqlSafe, Connection};

    use super::*;

    fn reg(id: &str, tags: &[&str]) -> Registration {
        Registration::from_json(
            &json!({
                "id": id,
                "name": format!("Server {id}"),
                "url": format!("http://127.0.0.1:9/{id}"),
                "version": "1.0.0",
                "tags": tags,
                "metadata": {"team": "t", "n": 1.5},
            }),
            None,
        )
        .expect("valid registration")
    }

    fn id(s: &str) -> ServerId {
        s.parse().expect("id")
    }

    /// Checks that rendered listings, also those answered from kept renderings, are the plain
    /// listings rendered.
    async fn assert_renderings_current(store: &dyn Store, after: &str) {
        let any = ListQuery {
            status: StatusFilter::Any,
            ..ListQuery::default()
        };
        let queries = [
            any.clone(),
            ListQuery::default(),
            ListQuery {
                tags: vec!["red".parse().expect("tag")],
                ..any.clone()
            },
            ListQuery {
                limit: 2,
                ..any.clone()
            },
            ListQuery {
                limit: 2,
                after: Some(id("b")),
                ..any
            },
        ];
        for query in &queries {
            // The second time round, every rendering is a kept one.
            for _ in 0..2 {
                let want = render_page(store.list(query).await.expect("list")).expect("render");
                let got = store.list_rendered(query).await.expect("list rendered");
                assert_eq!(got, want, "after {after}: {query:?}");
            }
        }
    }

    /// Runs `sql` on a connection of its own, as another process would.
    async fn write_elsewhere(url: &str, sql: &str) {
        let sql = AssertSqlSafe(sql.to_owned());
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.expect("write");
        } else {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.expect("write");
        }
    }

    /// Issue #25: a URL stored before the registry refused ambiguous authorities still reads,
    /// in the form this parser reads it (no stored entry becomes unreadable after an upgrade).
    #[tokio::test]
    async fn urls_stored_before_the_authority_check_read_normalized() {
        for db in mcp_fleet_test_support::all_backends().await {
            let store = connect(&db.url).await.expect("open store");
            let t0 = Timestamp::default() + Duration::days(20_000);
            store.upsert(reg("old", &[]), t0).await.expect("create");
            write_elsewhere(
                &db.url,
                r"UPDATE servers SET url = 'http://10.0.0.5\@169.254.169.254/', health_url = 'HTTP://H:80'",
            )
            .await;
            let entry = store.get(&id("old")).await.expect("get").expect("entry");
            assert_eq!(
                entry.url.as_str(),
                "http://10.0.0.5/@169.254.169.254/",
                "{}",
                db.backend
            );
            let health = entry.health_url.expect("health url");
            assert_eq!(health.as_str(), "http://h", "{}", db.backend);
            let (rows, _) = store.health_rows(None).await.expect("health rows");
            assert_eq!(rows[0].url.as_str(), "http://10.0.0.5/@169.254.169.254/");
        }
    }

    #[tokio::test]
    async fn rendered_listings_follow_every_kind_of_write() {
        for db in mcp_fleet_test_support::all_backends().await {
            eprintln!("rendered listings: {}", db.backend);
            let store = connect(&db.url).await.expect("open store");
            let store = store.as_ref();
            let t0 = Timestamp::default() + Duration::days(20_000);
            for (s, tags) in [
                ("a", &["red"][..]),
                ("b", &["blue"]),
                ("c", &["red"]),
                ("d", &[]),
            ] {
                store.upsert(reg(s, tags), t0).await.expect("create");
            }
            assert_renderings_current(store, "registrations").await;

            let t1 = t0 + Duration::seconds(1);
            let mut renamed = reg("b", &["red"]);
            renamed.name = "Renamed".into();
            store.upsert(renamed, t1).await.expect("replace");
            assert_renderings_current(store, "a re-registration").await;

            let (rows, _) = store.health_rows(None).await.expect("health rows");
            let a = rows.iter().find(|r| r.id == id("a")).expect("a");
            let check = CheckRecord {
                id: a.id.clone(),
                reg_rev: a.reg_rev,
                status: HealthStatus::Healthy,
                successes: 1,
                failures: 0,
                checked_at: t1,
                seen_at: Some(t1),
                last_error: None,
                last_error_detail: None,
                latency_ms: Some(5),
            };
            store.record_checks(&[check]).await.expect("record");
            assert_renderings_current(store, "a check").await;

            assert!(store.heartbeat(&id("c"), t1).await.expect("heartbeat"));
            assert_renderings_current(store, "a heartbeat").await;

            // Deleted and registered again, identically: a new row, never the old rendering.
            assert!(store.delete(&id("d")).await.expect("delete"));
            assert_renderings_current(store, "a deletion").await;
            store.upsert(reg("d", &[]), t1).await.expect("create");
            assert_renderings_current(store, "registering a deleted id again").await;

            write_elsewhere(
                &db.url,
                "UPDATE servers SET name = 'Elsewhere' WHERE id = 'a'",
            )
            .await;
            assert_renderings_current(store, "a write by another process").await;
        }
    }
}
