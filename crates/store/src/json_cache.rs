//! Pre-rendered JSON for listings ([`crate::Store::list_rendered`]): each entry's JSON is kept
//! by row version, so that a listing decodes and renders only the rows written since the last
//! one. Shared by both backends; each answers "which ids at which versions" its own way.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::row::RawEntry;
use crate::{RenderedPage, StoreError};

/// Most renderings kept; past it they are dropped and rendered again as rows are listed.
const MAX_RENDERINGS: usize = 1 << 16;

/// The pre-rendered JSON of listed entries, by id and row version. Every write to a row gives it a new version
/// (a trigger does, whoever writes, see migration 0002), and versions are never reused, so a
/// rendering kept for `(id, version)` is always that of the row as it is at that version.
/// Listings then decode and render only rows written since they were last listed: decoding
/// (URLs, semver, JSON) and rendering cost more than the query itself.
#[derive(Default)]
pub(crate) struct JsonCache {
    kept: Mutex<HashMap<String, (i64, Arc<str>)>>,
}

impl fmt::Debug for JsonCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self.kept.lock().map_or(0, |k| k.len());
        f.debug_struct("JsonCache").field("kept", &kept).finish()
    }
}

impl JsonCache {
    /// A page from `listed`, the `(id, row version)` of up to `limit + 1` rows in id order. Rows
    /// without a kept rendering at that version are fetched by `fetch` (given their ids, it
    /// returns their columns and versions), rendered and kept. `None` when a fetched row is no
    /// longer at its listed version (written in between): the caller then lists the plain way.
    pub(crate) async fn page<F, Fut>(
        &self,
        listed: Vec<(String, i64)>,
        limit: u32,
        fetch: F,
    ) -> Result<Option<RenderedPage>, StoreError>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<(RawEntry, i64)>, StoreError>>,
    {
        let mut found: Vec<Option<Arc<str>>> = {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            listed
                .iter()
                .map(|(id, version)| match kept.get(id) {
                    Some((v, json)) if v == version => Some(json.clone()),
                    _ => None,
                })
                .collect()
        };
        let missing: Vec<String> = listed
            .iter()
            .zip(&found)
            .filter(|(_, json)| json.is_none())
            .map(|((id, _), _)| id.clone())
            .collect();
        if !missing.is_empty() {
            let mut rendered = HashMap::with_capacity(missing.len());
            for (raw, version) in fetch(missing).await? {
                let entry = raw.into_entry()?;
                rendered.insert(entry.id.to_string(), (version, crate::render(&entry)?));
            }
            for ((id, version), json) in listed.iter().zip(&mut found) {
                if json.is_none() {
                    match rendered.get(id) {
                        Some((v, r)) if v == version => *json = Some(r.clone()),
                        _ => return Ok(None),
                    }
                }
            }
            self.keep(rendered);
        }
        let mut entries: Vec<Arc<str>> = found.into_iter().flatten().collect();
        let limit = limit as usize;
        let next_after = if entries.len() > limit {
            entries.truncate(limit);
            listed[..limit]
                .last()
                .map(|(id, _)| crate::row::server_id(id.clone()))
                .transpose()?
        } else {
            None
        };
        Ok(Some(RenderedPage {
            entries,
            next_after,
        }))
    }

    fn keep(&self, rendered: HashMap<String, (i64, Arc<str>)>) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() + rendered.len() > MAX_RENDERINGS {
            kept.clear();
        }
        for (id, (version, json)) in rendered {
            // A slower listing may have read an older version: keep the newest.
            if kept.get(&id).is_none_or(|(v, _)| *v < version) {
                kept.insert(id, (version, json));
            }
        }
    }
}

/// Parses `id version id version …`, the one-value form of a listing SQLite answers with.
pub(crate) fn parse_listed(text: &str) -> Option<Vec<(String, i64)>> {
    let mut words = text.split_ascii_whitespace();
    let mut listed = Vec::new();
    while let Some(id) = words.next() {
        listed.push((id.to_owned(), words.next()?.parse().ok()?));
    }
    Some(listed)
}
