//! Durable storage of registry entries.
//!
//! [`Store`] is the one interface the registry uses; [`SqliteStore`] (embedded, the default) and
//! [`PostgresStore`] implement the same behaviour, proven by one test suite run against both.
//! Every write returns only after its transaction has committed durably.
//!
//! Each backend is split the way the [`Store`] trait is sectioned: `entries`, `health`,
//! `tokens`, `routing` and `events` (`src/sqlite/` and `src/postgres/` side by side); what they
//! share (column lists, row mapping, migrations, the JSON cache) is written once here.

mod by_concern;
mod catalog;
mod error;
mod events;
mod health;
mod json_cache;
mod lease;
mod migrate;
mod postgres;
mod routing;
mod row;
mod same_sql;
mod sqlite;
mod tokens;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use mcp_fleet_model::{
    Entry, HealthStatus, Observations, ObservedTotals, Registration, Routing, ServerId,
    StatusFilter, Tag, Timestamp, TokenRecord, ToolPin, Version,
};

pub use catalog::{
    CatalogRecord, CatalogTouch, CatalogWritten, MAX_TOOL_PAGE, STOP_WORDS, ToolPage, ToolQuery,
};
pub use error::StoreError;
pub use events::{DEFAULT_EVENT_RETENTION, Event, EventKind, EventLog, StoreOptions};
pub use health::{CheckRecord, HealthRow, HeartbeatRow, Written};
pub use lease::{LEASE_SHARDS, Leases, shard_of};
pub use postgres::PostgresStore;
pub use sqlite::{ServingClaim, SqliteStore, claim_for_serving};

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

/// Most entries a store may hold, in all and per principal (`updatedBy`); `None` is no cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryCaps {
    /// Most entries in all.
    pub max_entries: Option<u64>,
    /// Most entries one principal may have registered last.
    pub max_per_principal: Option<u64>,
}

impl EntryCaps {
    fn any(&self) -> bool {
        self.max_entries.is_some() || self.max_per_principal.is_some()
    }

    /// Whether a new entry by `by` may join `all` entries, `mine` of them by `by`.
    fn admit(&self, all: u64, mine: u64, by: Option<&str>) -> Result<(), StoreError> {
        if let Some(max) = self.max_entries
            && all >= max
        {
            return Err(StoreError::CapReached(CapReached::Entries {
                held: all,
                max,
            }));
        }
        if let (Some(max), Some(by)) = (self.max_per_principal, by)
            && mine >= max
        {
            return Err(StoreError::CapReached(CapReached::PerPrincipal {
                principal: by.to_owned(),
                held: mine,
                max,
            }));
        }
        Ok(())
    }
}

/// Which of the [`EntryCaps`] a registration would have passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapReached {
    /// The store holds `held` entries, its cap `max`.
    Entries {
        /// Entries held.
        held: u64,
        /// The cap.
        max: u64,
    },
    /// `principal` registered `held` entries, its cap `max`.
    PerPrincipal {
        /// The token id or OIDC subject.
        principal: String,
        /// Entries it registered.
        held: u64,
        /// The cap.
        max: u64,
    },
}

impl std::fmt::Display for CapReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Entries { held, max } => write!(f, "{held} entries held, at most {max}"),
            Self::PerPrincipal {
                principal,
                held,
                max,
            } => write!(
                f,
                "{principal} has registered {held} entries, at most {max}"
            ),
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
    /// How many tools its current version listed; `None` when never listed.
    pub tools: Option<u32>,
    /// When its current version's catalog last changed.
    pub catalog_changed_at: Option<Timestamp>,
    /// Whether a tool of its current version is listed with a hash other than its pin: changed
    /// in place and not accepted yet.
    pub tool_changed: bool,
}

/// Where registry entries live. Implementations are cheap to share (`Arc<dyn Store>`).
///
/// The methods come in sections, as each backend's modules do: entries, health, tokens,
/// routing, events, and the backend itself.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- Entries (`entries.rs`) ----

    /// Creates or fully replaces the entry `reg.id` as of `now`, committing before it returns.
    /// A replaced entry keeps its `registeredAt`; status and `lastSeen` are reset as on a first
    /// registration. Logs a `created` or `replaced` event.
    async fn upsert(&self, reg: Registration, now: Timestamp) -> Result<Upserted, StoreError> {
        self.upsert_capped(reg, now, &EntryCaps::default()).await
    }

    /// [`Store::upsert`] that refuses to create an entry past `caps`
    /// ([`StoreError::CapReached`]); a replacement is always allowed. The entries are counted
    /// inside the write's transaction, under a lock every capped creation takes, so writers
    /// racing on several processes cannot overshoot a cap together.
    async fn upsert_capped(
        &self,
        reg: Registration,
        now: Timestamp,
        caps: &EntryCaps,
    ) -> Result<Upserted, StoreError>;

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

    /// One page of entries matching `query`, filtered in the database.
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// [`Store::list`] as pre-rendered JSON, what `GET /servers` sends. The backends keep each
    /// row's JSON by row version until the row changes (the JSON cache, `json_cache.rs`), so a
    /// listing decodes and renders only the entries written since the last one.
    async fn list_rendered(&self, query: &ListQuery) -> Result<RenderedPage, StoreError> {
        render_page(self.list(query).await?)
    }

    /// `(id, name, status, lastSeen)` of every entry, in id order, one row at a time: a whole
    /// fleet's rows are never held at once.
    fn status_rows(&self) -> BoxStream<'_, Result<StatusRow, StoreError>>;

    // ---- Health (`health.rs`): what the health worker reads and writes ----

    /// Entries registered after revision `after` (every entry when `None`), and the registry's
    /// current revision: the health worker's view of what to probe.
    async fn health_rows(&self, after: Option<i64>) -> Result<(Vec<HealthRow>, i64), StoreError>;

    /// Writes a batch of check results in one transaction; a result for an entry that was
    /// deleted or re-registered since (`reg_rev` differs) is skipped. Logs a `status` event
    /// for each result that changes its entry's status. Returns the checks written, in order,
    /// each with the status it replaced when it changed it: only the writer of a change learns
    /// of it, however many processes write checks.
    async fn record_checks(&self, checks: &[CheckRecord]) -> Result<Vec<Written>, StoreError>;

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

    // ---- Leases (`lease.rs`): the health work shared by replicas ----

    /// Renews the leases `replica` holds for `ttl` and marks it alive as long, then takes its
    /// fair share of the shards: releases its highest shards past it (free at once, or all after
    /// `grace` when one of them is in `busy`, its probes in flight), or claims free and expired
    /// ones up to it, lowest first.
    async fn renew_leases(
        &self,
        replica: &str,
        ttl: std::time::Duration,
        grace: std::time::Duration,
        busy: &[u32],
    ) -> Result<Leases, StoreError>;

    /// Releases every lease `replica` holds, for others to take at once (at shutdown).
    async fn release_leases(&self, replica: &str) -> Result<(), StoreError>;

    // ---- Tokens (`tokens.rs`) ----

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

    // ---- Routing (`routing.rs`) ----

    /// Stores `doc` as the routing policy of its service, replacing any (and its rollback
    /// record), and logs a `routing` event. Returns whether the service had no policy before.
    /// The caller builds the document ([`Routing::new`], held to its contract).
    async fn put_routing(&self, doc: &Routing) -> Result<bool, StoreError>;

    /// The routing policy of `service`.
    async fn get_routing(&self, service: &ServerId) -> Result<Option<Routing>, StoreError>;

    /// Every service's routing policy, in service order: what `/status` reads its breaking
    /// canaries from (one small row per service).
    async fn routing_documents(&self) -> Result<Vec<Routing>, StoreError>;

    /// Deletes the routing policy of `service`, logging a `routing` event with data
    /// `{"service"}`; `false` when there was none.
    async fn delete_routing(&self, service: &ServerId) -> Result<bool, StoreError>;

    /// Rolls `version` of `service` back, `by` a principal as of `now` ([`Routing::roll_back`]:
    /// its weight goes to the heaviest other version, the rollback is recorded, its canary counts
    /// are deleted) and logs a `routing` event.
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

    /// Stores a gateway replica's canary counts of `service` ([`Observations`]: a slot's whole
    /// count, replacing what that replica reported of the slot before; versions without weight
    /// in the policy and slots outside the window are left out), deletes counts that have left
    /// every window, and returns every replica's counts over the window of
    /// [`mcp_fleet_model::WINDOW_SLOTS`] slots ending at `now`. `None` when the service has no
    /// policy. Reports and rollbacks of one service take turns; neither logs an event.
    async fn record_observations(
        &self,
        service: &ServerId,
        report: &Observations,
        now: Timestamp,
    ) -> Result<Option<ObservedTotals>, StoreError>;

    /// The distinct versions of the entries of `service`, in version order.
    async fn service_versions(&self, service: &ServerId) -> Result<Vec<Version>, StoreError>;

    // ---- Catalog (`catalog.rs`): what each entry offers, per version ----

    /// Stores listings the health worker took, in one transaction: each replaces the catalog of
    /// its entry at the entry's version, unless the entry was deleted or registered again since
    /// (`reg_rev` differs). A listing that differs from the stored one logs a `catalog` event,
    /// and each tool in it whose hash changed (the version being the same) a `tool-changed`
    /// event; a tool's first hash at a version is pinned ([`Store::tool_pins`]). Returns what
    /// each stored listing did: only its writer learns of a change.
    async fn put_catalogs(
        &self,
        records: &[CatalogRecord],
    ) -> Result<Vec<CatalogWritten>, StoreError>;

    /// Moves `fetchedAt` of catalogs listed again unchanged, in one transaction, without
    /// reading or rewriting their items. A touch applies only while the entry is at the same
    /// registration and its catalog there still has the touch's hash; returns the entries
    /// touched (the others' listings are to be stored in full).
    async fn touch_catalogs(&self, touches: &[CatalogTouch]) -> Result<Vec<ServerId>, StoreError>;

    /// The catalog of entry `id` at its current version (empty, `fetchedAt` null, when it was
    /// never listed); `None` when there is no such entry.
    async fn server_catalog(
        &self,
        id: &ServerId,
    ) -> Result<Option<mcp_fleet_model::ServerCatalog>, StoreError>;

    /// The newest listing of any instance of `service` at `version`; `None` when none was
    /// listed (the listing stays while its entry does, whatever version the entry moved to).
    async fn service_catalog(
        &self,
        service: &ServerId,
        version: &str,
    ) -> Result<Option<mcp_fleet_model::ServerCatalog>, StoreError>;

    /// When each entry's catalog at its current version was last listed.
    async fn catalog_times(&self) -> Result<Vec<(ServerId, Timestamp)>, StoreError>;

    /// Tools of entries' current versions matching `query`, most relevant first.
    async fn search_tools(&self, query: &ToolQuery) -> Result<ToolPage, StoreError>;

    /// The trusted hash of every tool of `service`, per version.
    async fn tool_pins(&self, service: &ServerId) -> Result<Vec<ToolPin>, StoreError>;

    /// Trusts the newest listed hash of `tool` at every version of `service` where it is
    /// listed, `by` a principal as of `now`; returns the pins set (none when no listing has it).
    async fn accept_tool(
        &self,
        service: &ServerId,
        tool: &str,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<ToolPin>, StoreError>;

    // ---- Events (`events.rs`): the change log every write appends to ----

    /// Up to `limit` logged events after revision `after`, oldest first, and whether some that
    /// should follow `after` are no longer logged ([`EventLog::gone`]).
    async fn events_since(&self, after: i64, limit: u32) -> Result<EventLog, StoreError>;

    /// The registry's revision: that of the last committed change.
    async fn current_revision(&self) -> Result<i64, StoreError>;

    /// Hears of commits made through any connection to the database as they happen, so other
    /// processes' writes need not be polled for. `None` when the backend cannot announce them
    /// (SQLite): poll [`Store::current_revision`] then.
    async fn listen(&self) -> Result<Option<Box<dyn Commits>>, StoreError> {
        Ok(None)
    }

    // ---- The backend (`mod.rs`) ----

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The same database through a pool of its own for background work (the health worker):
    /// its threads' lower priority and its write transactions then never reach the connections
    /// that answer API requests. `None` when the backend has nothing to gain from it (a
    /// database server keeps its own processes) or cannot (an in-memory database exists once);
    /// use this store then.
    async fn detached(&self) -> Result<Option<Arc<dyn Store>>, StoreError> {
        Ok(None)
    }

    /// Which backend this is, for logs: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The connection pool's occupancy, for metrics; `None` for stores without a pool.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}

/// Commits announced by the database ([`Store::listen`]).
#[async_trait]
pub trait Commits: Send {
    /// Waits for the next commit that took a revision, and returns that revision; `None` when
    /// the connection was lost (it reconnects), so announcements may have been missed: read the
    /// event log after the last revision known to catch up.
    async fn next(&mut self) -> Result<Option<i64>, StoreError>;
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
