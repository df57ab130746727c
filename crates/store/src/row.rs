//! What both backends share about rows: the column lists their queries name, how a row's
//! columns are read ([`StoredRow`], the one place the two differ: SQLite keeps tags and metadata
//! as JSON text and every integer as 64 bits), and how read columns become model values.

use mcp_fleet_model::{
    AuthSpec, AuthType, Entry, HealthCheck, HealthCheckMode, HealthStatus, HttpUrl, ServerId, Tag,
    Timestamp, TokenRecord,
};
use serde_json::{Map, Value};

use crate::events::Event;
use crate::health::{HealthRow, HeartbeatRow};
use crate::tokens::RawToken;
use crate::{StatusRow, StoreError};

/// The columns of an entry, as [`raw_entry`] reads them.
pub(crate) const ENTRY_COLUMNS: &str = "id, service, name, description, url, version, tags, \
     auth_type, token_endpoint, health_url, status, last_seen, registered_at, updated_at, \
     metadata, health_mode, ttl_seconds, last_checked_at, last_error, last_error_detail, \
     latency_ms, status_since, updated_by";

/// The columns of an entry the health worker reads, as [`health_row`] reads them.
pub(crate) const HEALTH_COLUMNS: &str = "id, name, url, health_url, auth_type, health_mode, \
     ttl_seconds, heartbeat_at, status, status_since, successes, failures, reg_rev, \
     last_checked_at";

/// The columns of an entry `/status` shows, as [`status_row`] reads them, from `servers` joined
/// with its current version's catalog `c` (`LEFT JOIN catalogs c`): the tool count, when the
/// catalog last changed, and whether a tool's listed hash differs from its pin.
pub(crate) const STATUS_COLUMNS: &str = "servers.id, servers.name, servers.status, servers.last_seen, servers.last_error, \
     servers.status_since, servers.health_mode, c.tools AS tools, \
     c.changed_at AS catalog_changed_at, c.unpinned AS tool_changed";

/// The columns of a token, as [`token`] reads them.
pub(crate) const TOKEN_COLUMNS: &str =
    "id, secret_sha256, scopes, ids, description, created_at, expires_at, revoked_at";

/// The columns of a logged event, as [`event`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "revision, kind, server_id, at, data";

/// A row of either backend, read column by column in the types the model wants.
pub(crate) trait StoredRow {
    /// A text column.
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    /// A timestamp column.
    fn time(&self, col: &str) -> Result<Timestamp, sqlx::Error>;
    /// A nullable timestamp column.
    fn opt_time(&self, col: &str) -> Result<Option<Timestamp>, sqlx::Error>;
    /// A 64-bit integer column (revisions, row versions).
    fn int8(&self, col: &str) -> Result<i64, sqlx::Error>;
    /// A nullable 64-bit integer column.
    fn opt_int8(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A nullable boolean (PostgreSQL `boolean`, SQLite an integer).
    fn opt_flag(&self, col: &str) -> Result<Option<bool>, sqlx::Error>;
    /// A 32-bit integer column (PostgreSQL `integer`; SQLite has only 64-bit integers).
    fn int4(&self, col: &str) -> Result<i64, sqlx::Error>;
    /// A nullable 32-bit integer column.
    fn opt_int4(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    /// The tags column (PostgreSQL `text[]`, SQLite a JSON array).
    fn tags(&self, col: &str) -> Result<Vec<String>, sqlx::Error>;
    /// The metadata column (PostgreSQL `jsonb`, SQLite JSON text).
    fn json(&self, col: &str) -> Result<Value, sqlx::Error>;
}

/// The [`StoredRow`] methods whose columns both backends decode the same way.
macro_rules! same_columns {
    () => {
        fn text(&self, col: &str) -> Result<String, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn time(&self, col: &str) -> Result<mcp_fleet_model::Timestamp, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn opt_time(&self, col: &str) -> Result<Option<mcp_fleet_model::Timestamp>, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn int8(&self, col: &str) -> Result<i64, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn opt_int8(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
        fn opt_flag(&self, col: &str) -> Result<Option<bool>, sqlx::Error> {
            sqlx::Row::try_get(self, col)
        }
    };
}
pub(crate) use same_columns;

/// An entry's columns.
pub(crate) fn raw_entry(row: &impl StoredRow) -> Result<RawEntry, sqlx::Error> {
    Ok(RawEntry {
        id: row.text("id")?,
        service: row.text("service")?,
        name: row.text("name")?,
        description: row.text("description")?,
        url: row.text("url")?,
        version: row.text("version")?,
        tags: row.tags("tags")?,
        auth_type: row.text("auth_type")?,
        token_endpoint: row.opt_text("token_endpoint")?,
        health_url: row.opt_text("health_url")?,
        status: row.text("status")?,
        last_seen: row.opt_time("last_seen")?,
        registered_at: row.time("registered_at")?,
        updated_at: row.time("updated_at")?,
        metadata: row.json("metadata")?,
        health_mode: row.text("health_mode")?,
        ttl_seconds: row.opt_int4("ttl_seconds")?,
        last_checked_at: row.opt_time("last_checked_at")?,
        last_error: row.opt_text("last_error")?,
        last_error_detail: row.opt_text("last_error_detail")?,
        latency_ms: row.opt_int4("latency_ms")?,
        status_since: row.opt_time("status_since")?,
        updated_by: row.opt_text("updated_by")?,
    })
}

/// An entry read from [`ENTRY_COLUMNS`].
pub(crate) fn entry(row: &impl StoredRow) -> Result<Entry, StoreError> {
    raw_entry(row)?.into_entry()
}

/// An entry's columns and its row version, read from [`ENTRY_COLUMNS`]` + row_version`.
pub(crate) fn versioned(row: &impl StoredRow) -> Result<(RawEntry, i64), StoreError> {
    Ok((raw_entry(row)?, row.int8("row_version")?))
}

/// A token read from [`TOKEN_COLUMNS`].
pub(crate) fn token(row: &impl StoredRow) -> Result<TokenRecord, StoreError> {
    RawToken {
        id: row.text("id")?,
        secret_sha256: row.text("secret_sha256")?,
        scopes: row.text("scopes")?,
        ids: row.text("ids")?,
        description: row.text("description")?,
        created_at: row.time("created_at")?,
        expires_at: row.opt_time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    }
    .into_record()
}

/// A health row read from [`HEALTH_COLUMNS`].
pub(crate) fn health_row(row: &impl StoredRow) -> Result<HealthRow, StoreError> {
    crate::health::health_row(
        row.text("id")?,
        row.text("name")?,
        row.text("url")?,
        row.opt_text("health_url")?,
        row.text("auth_type")?,
        row.text("health_mode")?,
        row.opt_int4("ttl_seconds")?,
        row.opt_time("heartbeat_at")?,
        row.text("status")?,
        row.opt_time("status_since")?,
        row.int4("successes")?,
        row.int4("failures")?,
        row.int8("reg_rev")?,
        row.opt_time("last_checked_at")?,
    )
}

/// A heartbeat row read from `id, heartbeat_at`.
pub(crate) fn heartbeat_row(row: &impl StoredRow) -> Result<HeartbeatRow, StoreError> {
    crate::health::heartbeat_row(row.text("id")?, row.opt_time("heartbeat_at")?)
}

/// An event read from [`EVENT_COLUMNS`].
pub(crate) fn event(row: &impl StoredRow) -> Result<Event, StoreError> {
    crate::events::event(
        row.int8("revision")?,
        row.text("kind")?,
        row.text("server_id")?,
        row.time("at")?,
        row.text("data")?,
    )
}

/// A `/status` row read from [`STATUS_COLUMNS`].
pub(crate) fn status_row(row: &impl StoredRow) -> Result<StatusRow, StoreError> {
    let id = row.text("id")?;
    let bad = |reason: String| StoreError::Corrupt {
        id: id.clone(),
        reason,
    };
    Ok(StatusRow {
        id: id.parse().map_err(|e| bad(format!("id {e}")))?,
        status: row
            .text("status")?
            .parse()
            .map_err(|e| bad(format!("status {e}")))?,
        name: row.text("name")?,
        last_seen: row.opt_time("last_seen")?,
        last_error: row.opt_text("last_error")?,
        status_since: row.opt_time("status_since")?,
        mode: row
            .text("health_mode")?
            .parse()
            .map_err(|e| bad(format!("healthCheck.mode {e}")))?,
        tools: row
            .opt_int8("tools")?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        catalog_changed_at: row.opt_time("catalog_changed_at")?,
        tool_changed: row.opt_flag("tool_changed")?.unwrap_or(false),
    })
}

/// An entry's columns as both backends read them.
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) url: String,
    pub(crate) version: String,
    pub(crate) tags: Vec<String>,
    pub(crate) auth_type: String,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) health_url: Option<String>,
    pub(crate) status: String,
    pub(crate) last_seen: Option<Timestamp>,
    pub(crate) registered_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    pub(crate) metadata: Value,
    pub(crate) health_mode: String,
    pub(crate) ttl_seconds: Option<i64>,
    pub(crate) last_checked_at: Option<Timestamp>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_detail: Option<String>,
    pub(crate) latency_ms: Option<i64>,
    pub(crate) status_since: Option<Timestamp>,
    pub(crate) updated_by: Option<String>,
}

impl RawEntry {
    pub(crate) fn into_entry(self) -> Result<Entry, StoreError> {
        let id = self.id;
        let bad = |reason: String| StoreError::Corrupt {
            id: id.clone(),
            reason,
        };
        let metadata = match self.metadata {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => return Err(bad(format!("metadata is not an object: {other}"))),
        };
        Ok(Entry {
            id: id.parse::<ServerId>().map_err(|e| bad(format!("id {e}")))?,
            service: self
                .service
                .parse::<ServerId>()
                .map_err(|e| bad(format!("service {e}")))?,
            name: self.name,
            description: self.description,
            // Read as stored by any version: URLs were checked less strictly before.
            url: HttpUrl::from_stored(&self.url).map_err(|e| bad(format!("url {e}")))?,
            version: self
                .version
                .parse()
                .map_err(|e| bad(format!("version {e}")))?,
            tags: self
                .tags
                .iter()
                .map(|t| t.parse::<Tag>())
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("tag {e}")))?,
            auth: AuthSpec {
                kind: self
                    .auth_type
                    .parse::<AuthType>()
                    .map_err(|e| bad(format!("auth.type {e}")))?,
                token_endpoint: self
                    .token_endpoint
                    .map(|u| HttpUrl::from_stored(&u))
                    .transpose()
                    .map_err(|e| bad(format!("auth.tokenEndpoint {e}")))?,
            },
            health_url: self
                .health_url
                .map(|u| HttpUrl::from_stored(&u))
                .transpose()
                .map_err(|e| bad(format!("healthUrl {e}")))?,
            last_seen: self.last_seen,
            status: self
                .status
                .parse::<HealthStatus>()
                .map_err(|e| bad(format!("status {e}")))?,
            registered_at: self.registered_at,
            updated_at: self.updated_at,
            metadata,
            health_check: HealthCheck {
                mode: self
                    .health_mode
                    .parse::<HealthCheckMode>()
                    .map_err(|e| bad(format!("healthCheck.mode {e}")))?,
            },
            ttl_seconds: crate::health::u32_of(self.ttl_seconds),
            last_checked_at: self.last_checked_at,
            last_error: self.last_error,
            last_error_detail: self.last_error_detail,
            latency_ms: crate::health::u32_of(self.latency_ms),
            status_since: self.status_since,
            updated_by: self.updated_by,
        })
    }
}

/// A stored id, parsed; a bad one is a corrupt row named by the text.
pub(crate) fn server_id(id: String) -> Result<ServerId, StoreError> {
    id.parse().map_err(|e| StoreError::Corrupt {
        reason: format!("id {e}"),
        id,
    })
}
