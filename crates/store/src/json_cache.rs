//! Pre-rendered JSON for listings ([`crate::Store::list_rendered`]): each entry's JSON is kept
//! by row version, so that a listing decodes and renders only the rows written since the last
//! one. Shared by both backends; each answers "which ids at which versions" its own way.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::row::RawEntry;
use crate::{RenderedPage, StoreError};

/// Most renderings kept, and most bytes of them; past either they are dropped and rendered again
/// as rows are listed. The bytes bound the memory a large fleet's listings cost (a rendering is
/// about a kilobyte): a fleet larger than it renders some rows again on each listing.
const MAX_RENDERINGS: usize = 1 << 16;
const MAX_RENDERED_BYTES: usize = 16 * 1024 * 1024;

/// The pre-rendered JSON of listed entries, by id and row version. Every write to a row gives it a new version
/// (a trigger does, whoever writes, see migration 0002), and versions are never reused, so a
/// rendering kept for `(id, version)` is always that of the row as it is at that version.
/// Listings then decode and render only rows written since they were last listed: decoding
/// (URLs, semver, JSON) and rendering cost more than the query itself.
#[derive(Default)]
pub(crate) struct JsonCache {
    kept: Mutex<Kept>,
}

/// The renderings, and the bytes of their JSON.
#[derive(Default)]
struct Kept {
    map: HashMap<String, (i64, Arc<str>)>,
    bytes: usize,
}

impl fmt::Debug for JsonCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self.kept.lock().map_or(0, |k| k.map.len());
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
                .map(|(id, version)| match kept.map.get(id) {
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
        let adding: usize = rendered.values().map(|(_, json)| json.len()).sum();
        if kept.map.len() + rendered.len() > MAX_RENDERINGS
            || kept.bytes + adding > MAX_RENDERED_BYTES
        {
            kept.map.clear();
            kept.bytes = 0;
        }
        for (id, (version, json)) in rendered {
            // A slower listing may have read an older version: keep the newest.
            if kept.map.get(&id).is_none_or(|(v, _)| *v < version) {
                kept.bytes += json.len();
                if let Some((_, old)) = kept.map.insert(id, (version, json)) {
                    kept.bytes -= old.len();
                }
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

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;
    use sqlx::{AssertSqlSafe, Connection};

    use mcp_fleet_model::{HealthStatus, Registration, ServerId, StatusFilter, Timestamp};

    use crate::{CheckRecord, ListQuery, Store, connect, render_page};

    /// A replacement counts once, and past the byte bound the renderings start over.
    #[test]
    fn renderings_are_bounded_by_bytes() {
        let cache = super::JsonCache::default();
        let mib: std::sync::Arc<str> = "x".repeat(1024 * 1024).into();
        for round in 0..40 {
            let id = format!("e{}", round % 30);
            cache.keep(std::collections::HashMap::from([(
                id,
                (round, mib.clone()),
            )]));
            let kept = cache.kept.lock().expect("not poisoned");
            let held: usize = kept.map.values().map(|(_, json)| json.len()).sum();
            assert_eq!(kept.bytes, held, "round {round}");
            assert!(kept.bytes <= super::MAX_RENDERED_BYTES, "round {round}");
        }
    }

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
