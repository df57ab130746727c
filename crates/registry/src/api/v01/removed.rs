//! Removed entries, as long as the event log remembers them: read from the log (a `created` or
//! `replaced` event holds the whole entry, a `deleted` one its id), incrementally, only when an
//! answer asks for deleted versions.

use std::collections::HashMap;

use mcp_fleet_model::{Entry, ServerId, Timestamp};
use mcp_fleet_store::{EventKind, Store, StoreError};

use super::catalog::Removed;

/// Events read per store call.
const PAGE: u32 = 500;

/// What the event log says about entries, up to `after`.
#[derive(Default)]
pub(crate) struct Memory {
    /// The last revision read.
    after: i64,
    /// The last registration of each id seen in the log.
    last: HashMap<ServerId, Entry>,
    /// Removed ids: the entry as last registered, when and at which revision it was removed.
    removed: HashMap<ServerId, (Entry, Timestamp, i64)>,
}

impl Memory {
    /// Reads the log past what was read before; starts over when the log no longer holds the
    /// events right after it.
    pub(crate) async fn catch_up(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        loop {
            let log = store.events_since(self.after, PAGE).await?;
            if log.gone && self.after > 0 {
                *self = Self::default();
                continue;
            }
            // What the log no longer holds is no longer remembered.
            if let Some(oldest) = log.oldest {
                self.removed.retain(|_, (_, _, rev)| *rev >= oldest);
            }
            let n = log.events.len();
            for event in log.events {
                self.after = event.revision;
                match event.kind {
                    EventKind::Created | EventKind::Replaced => {
                        self.removed.remove(&event.server_id);
                        match serde_json::from_str::<Entry>(&event.data) {
                            Ok(entry) => {
                                self.last.insert(event.server_id, entry);
                            }
                            Err(e) => tracing::warn!(
                                id = %event.server_id, error = %e,
                                "cannot read an entry in the event log"
                            ),
                        }
                    }
                    EventKind::Deleted => {
                        if let Some(entry) = self.last.remove(&event.server_id) {
                            self.removed
                                .insert(event.server_id, (entry, event.at, event.revision));
                        }
                    }
                    _ => {}
                }
            }
            if n < PAGE as usize || self.after >= log.current {
                self.after = self.after.max(log.current);
                return Ok(());
            }
        }
    }

    /// Every removed entry remembered, in id order.
    pub(crate) fn removed(&self) -> Vec<Removed> {
        let mut out: Vec<Removed> = self
            .removed
            .values()
            .map(|(entry, at, _)| Removed {
                entry: entry.clone(),
                at: *at,
            })
            .collect();
        out.sort_by(|a, b| a.entry.id.cmp(&b.entry.id));
        out
    }
}
