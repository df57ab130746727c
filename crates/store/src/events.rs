//! The change log behind the registry's change feed: one event per committed change, numbered by
//! the registry revision its transaction took, kept for a bounded number of revisions.

use std::fmt;
use std::str::FromStr;

use mcp_fleet_model::{Entry, Routing, ServerId, Timestamp, format_timestamp};

use crate::StoreError;

/// How many of the newest events a store keeps by default.
pub const DEFAULT_EVENT_RETENTION: u64 = 100_000;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// An entry was registered under a new id; `data` is the entry.
    Created,
    /// An entry was registered again, replacing the old one; `data` is the entry.
    Replaced,
    /// An entry was deleted (or deregistered by the health worker); `data` is `{"id"}`.
    Deleted,
    /// An entry's status changed; `data` is `{"id","from","to","lastError","at"}`.
    Status,
    /// A service's routing policy was set or rolled back (`data` is the
    /// [`mcp_fleet_model::Routing`] document) or deleted (`data` is `{"service"}`). The event's
    /// server id is the service's name.
    Routing,
    /// An entry's catalog (tools, prompts, resources) at its version was listed for the first
    /// time or differs from the listing before; `data` is `{"id","service","version","hash",
    /// "tools","prompts","resources","added","removed","changed"}` (tool names).
    Catalog,
    /// A tool's content changed while its entry's version stayed the same; `data` is a
    /// [`mcp_fleet_model::ToolChanged`].
    ToolChanged,
}

impl EventKind {
    /// The name the feed uses (`event:` of a server-sent event).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Replaced => "replaced",
            Self::Deleted => "deleted",
            Self::Status => "status",
            Self::Routing => "routing",
            Self::Catalog => "catalog",
            Self::ToolChanged => "tool-changed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "created" => Self::Created,
            "replaced" => Self::Replaced,
            "deleted" => Self::Deleted,
            "status" => Self::Status,
            "routing" => Self::Routing,
            "catalog" => Self::Catalog,
            "tool-changed" => Self::ToolChanged,
            other => return Err(format!("unknown event kind {other:?}")),
        })
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The registry revision of the change: gap-free, in commit order.
    pub revision: i64,
    /// What changed.
    pub kind: EventKind,
    /// The entry it changed.
    pub server_id: ServerId,
    /// When.
    pub at: Timestamp,
    /// The change as JSON text (see [`EventKind`]).
    pub data: String,
}

/// What [`crate::Store::events_since`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct EventLog {
    /// The events after the revision asked for, oldest first, at most the limit asked for.
    pub events: Vec<Event>,
    /// The registry's revision when the events were read; every event up to it is committed
    /// (later ones may be in `events` too).
    pub current: i64,
    /// The oldest revision still logged, `None` when none is.
    pub oldest: Option<i64>,
    /// Some events right after the revision asked for are no longer logged (pruned, or made
    /// before the log existed), or that revision is newer than any: the reader must start over
    /// from a full listing.
    pub gone: bool,
}

impl EventLog {
    pub(crate) fn new(after: i64, current: i64, oldest: Option<i64>, events: Vec<Event>) -> Self {
        let gone = after > current
            || (after < current && events.first().map(|e| e.revision) != Some(after + 1));
        Self {
            events,
            current,
            oldest,
            gone,
        }
    }
}

/// Settings of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How many of the newest events to keep (at least 1); older ones are pruned as new ones
    /// are written, a batch at a time.
    pub event_retention: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            event_retention: DEFAULT_EVENT_RETENTION,
        }
    }
}

impl StoreOptions {
    /// The revision up to which (inclusive) to prune after a write took revisions
    /// `first..=last`, if pruning is due: every `retention / 16` revisions (1 to 1024), so that
    /// a write rarely pays for it and the log stays within `retention` plus one batch.
    pub(crate) fn prune_through(&self, first: i64, last: i64) -> Option<i64> {
        let retention = self.event_retention.max(1);
        let every = i64::try_from((retention / 16).clamp(1, 1024)).unwrap_or(1024);
        let through = last.saturating_sub(i64::try_from(retention).unwrap_or(i64::MAX));
        ((first - 1).div_euclid(every) != last.div_euclid(every) && through > 0).then_some(through)
    }
}

/// An event about to be logged, before it has a revision.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) kind: EventKind,
    pub(crate) server_id: String,
    pub(crate) at: Timestamp,
    pub(crate) data: String,
}

impl NewEvent {
    /// A registration: `created` or `replaced`, with the stored entry.
    pub(crate) fn registered(created: bool, entry: &Entry) -> Result<Self, StoreError> {
        Ok(Self {
            kind: if created {
                EventKind::Created
            } else {
                EventKind::Replaced
            },
            server_id: entry.id.to_string(),
            at: entry.updated_at,
            data: crate::render(entry)?.to_string(),
        })
    }

    /// A deletion.
    pub(crate) fn deleted(id: &ServerId, at: Timestamp) -> Self {
        Self::deleted_by(id, at, None)
    }

    /// An entry deleted by `by` (a token id or OIDC subject): `{"id","updatedBy"}`.
    pub(crate) fn deleted_by(id: &ServerId, at: Timestamp, by: Option<&str>) -> Self {
        let data = match by {
            Some(by) => serde_json::json!({ "id": id.as_str(), "updatedBy": by }),
            None => serde_json::json!({ "id": id.as_str() }),
        };
        Self {
            kind: EventKind::Deleted,
            server_id: id.to_string(),
            at,
            data: data.to_string(),
        }
    }

    /// A routing policy set or rolled back: the new document.
    pub(crate) fn routing(doc: &Routing) -> Result<Self, StoreError> {
        Ok(Self {
            kind: EventKind::Routing,
            server_id: doc.service.to_string(),
            at: doc.updated_at,
            data: crate::routing::render(doc)?,
        })
    }

    /// A routing policy deleted.
    pub(crate) fn routing_deleted(service: &ServerId, at: Timestamp) -> Self {
        Self {
            kind: EventKind::Routing,
            server_id: service.to_string(),
            at,
            data: serde_json::json!({ "service": service.as_str() }).to_string(),
        }
    }

    /// A status change, made by `check` (its short cause, whole error chain and latency go
    /// with it, so a page following the feed shows what a fresh read would).
    pub(crate) fn status(check: &crate::CheckRecord, from: &str) -> Self {
        let at = check.checked_at;
        Self {
            kind: EventKind::Status,
            server_id: check.id.to_string(),
            at,
            data: serde_json::json!({
                "id": check.id.as_str(),
                "from": from,
                "to": check.status.as_str(),
                "lastError": check.last_error,
                "lastErrorDetail": check.last_error_detail,
                "latencyMs": check.latency_ms,
                "at": format_timestamp(&at),
            })
            .to_string(),
        }
    }
}

/// Builds an [`Event`] from its stored columns.
pub(crate) fn event(
    revision: i64,
    kind: String,
    server_id: String,
    at: Timestamp,
    data: String,
) -> Result<Event, StoreError> {
    let bad = |reason: String| StoreError::Corrupt {
        id: format!("event {revision}"),
        reason,
    };
    Ok(Event {
        revision,
        kind: kind.parse().map_err(bad)?,
        server_id: server_id
            .parse()
            .map_err(|e| bad(format!("server id {e}")))?,
        at,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_is_due_once_per_batch_and_keeps_the_retention() {
        let opts = StoreOptions {
            event_retention: 160,
        };
        // Batches of 10 revisions: due when a write crosses a multiple of 10.
        assert_eq!(opts.prune_through(1, 1), None);
        assert_eq!(opts.prune_through(100, 100), None); // nothing old enough yet
        assert_eq!(opts.prune_through(169, 170), Some(10));
        assert_eq!(opts.prune_through(171, 171), None);
        assert_eq!(opts.prune_through(175, 185), Some(25));
        let every = StoreOptions { event_retention: 1 };
        assert_eq!(every.prune_through(5, 5), Some(4));
    }

    #[test]
    fn a_log_is_gone_when_its_first_event_is_not_the_next_revision() {
        let ev = |revision| Event {
            revision,
            kind: EventKind::Deleted,
            server_id: "a".parse().expect("id"),
            at: Timestamp::default(),
            data: "{}".into(),
        };
        assert!(!EventLog::new(5, 7, Some(1), vec![ev(6), ev(7)]).gone);
        assert!(EventLog::new(5, 7, Some(7), vec![ev(7)]).gone);
        assert!(EventLog::new(5, 7, None, vec![]).gone);
        assert!(!EventLog::new(7, 7, Some(1), vec![]).gone);
        assert!(!EventLog::new(7, 7, Some(1), vec![ev(8)]).gone); // committed after `current`
        assert!(EventLog::new(9, 7, Some(1), vec![]).gone); // from another database
    }
}
