//! The tool catalog on every backend (SQLite always, PostgreSQL when configured): listings
//! stored per entry and version, `catalog` and `tool-changed` events, pins, and search.
//!
//! Over 500 lines: each test is one scenario run on both backends, with the catalogs it
//! stores written out; splitting the file would split the helpers they share.

use chrono::Utc;
use futures::TryStreamExt;
use mcp_fleet_model::{Catalog, HealthStatus, Registration, ServerId};
use mcp_fleet_store::{CatalogRecord, CatalogTouch, EventKind, Store, ToolQuery, connect};
use serde_json::{Value, json};

fn instance(id: &str, service: &str, version: &str, tags: &[&str]) -> Registration {
    Registration::from_json(
        &json!({
            "id": id, "name": id, "service": service, "version": version, "tags": tags,
            "url": format!("http://127.0.0.1:9/{id}"),
        }),
        None,
    )
    .expect("valid registration")
}

fn catalog(tools: Value) -> Catalog {
    serde_json::from_value(json!({ "tools": tools })).expect("catalog")
}

fn tool(name: &str, description: &str) -> Value {
    json!({"name": name, "description": description, "inputSchema": {"type": "object"}})
}

fn id(s: &str) -> ServerId {
    s.parse().expect("id")
}

/// Stores `catalog` as a listing of `server` under its current registration.
async fn list(
    store: &dyn Store,
    server: &str,
    catalog: Catalog,
) -> mcp_fleet_store::CatalogWritten {
    let (rows, _) = store.health_rows(None).await.expect("rows");
    let row = rows.iter().find(|r| r.id.as_str() == server).expect("row");
    let record = CatalogRecord {
        id: row.id.clone(),
        reg_rev: row.reg_rev,
        catalog,
        at: Utc::now(),
    };
    let mut written = store.put_catalogs(&[record]).await.expect("put");
    written.pop().expect("written")
}

/// A touch of `server`'s catalog under its current registration, naming `hash`.
async fn touch(store: &dyn Store, server: &str, hash: &str) -> CatalogTouch {
    let (rows, _) = store.health_rows(None).await.expect("rows");
    let row = rows.iter().find(|r| r.id.as_str() == server).expect("row");
    CatalogTouch {
        id: row.id.clone(),
        reg_rev: row.reg_rev,
        hash: hash.to_owned(),
        at: Utc::now(),
    }
}

#[tokio::test]
async fn a_touch_moves_fetched_at_of_the_catalog_it_names_only() {
    for db in mcp_fleet_test_support::all_backends().await {
        eprintln!("backend: {}", db.backend);
        let store = connect(&db.url).await.expect("open");
        let store = store.as_ref();
        store
            .upsert(instance("inv-1", "inventory", "1.0.0", &[]), Utc::now())
            .await
            .unwrap();
        // Nothing stored yet: nothing to touch.
        let early = touch(store, "inv-1", "0".repeat(64).as_str()).await;
        assert!(store.touch_catalogs(&[early]).await.unwrap().is_empty());

        let written = list(store, "inv-1", catalog(json!([tool("a", "A.")]))).await;
        let stored = store.server_catalog(&id("inv-1")).await.unwrap().unwrap();
        assert_eq!(stored.hash.as_deref(), Some(written.hash.as_str()));
        let events = store.events_since(0, 1000).await.unwrap().events.len();

        let mut again = touch(store, "inv-1", &written.hash).await;
        again.at = stored.fetched_at.unwrap() + chrono::Duration::seconds(5);
        let touched = store.touch_catalogs(&[again.clone()]).await.unwrap();
        assert_eq!(touched, [id("inv-1")]);
        let after = store.server_catalog(&id("inv-1")).await.unwrap().unwrap();
        assert_eq!(after.fetched_at, Some(again.at), "fetchedAt moved");
        assert_eq!(after.changed_at, stored.changed_at, "changedAt did not");
        assert_eq!(after.tools, stored.tools);
        assert_eq!(
            store.events_since(0, 1000).await.unwrap().events.len(),
            events,
            "a touch logs no event"
        );

        // Another hash than the stored one, or an older registration: not touched.
        let other = CatalogTouch {
            hash: "f".repeat(64),
            ..again.clone()
        };
        let stale = CatalogTouch {
            reg_rev: again.reg_rev - 1,
            ..again.clone()
        };
        assert!(
            store
                .touch_catalogs(&[other, stale])
                .await
                .unwrap()
                .is_empty()
        );
        // A new version has no catalog yet: the old version's hash touches nothing.
        store
            .upsert(instance("inv-1", "inventory", "2.0.0", &[]), Utc::now())
            .await
            .unwrap();
        let moved = touch(store, "inv-1", &written.hash).await;
        assert!(store.touch_catalogs(&[moved]).await.unwrap().is_empty());
    }
}

fn query(q: &str) -> ToolQuery {
    ToolQuery {
        terms: mcp_fleet_model::search_terms(q),
        limit: 10,
        ..ToolQuery::default()
    }
}

async fn names(store: &dyn Store, q: ToolQuery) -> Vec<(String, String)> {
    let page = store.search_tools(&q).await.expect("search");
    page.tools
        .into_iter()
        .map(|h| (h.server_id.to_string(), h.name))
        .collect()
}

#[tokio::test]
async fn listings_are_kept_per_version_and_changes_logged_once() {
    for db in mcp_fleet_test_support::all_backends().await {
        eprintln!("backend: {}", db.backend);
        let store = connect(&db.url).await.expect("open");
        let store = store.as_ref();
        let now = Utc::now();
        store
            .upsert(instance("inv-1", "inventory", "1.0.0", &["stock"]), now)
            .await
            .unwrap();

        // Never listed: an empty catalog at the entry's version.
        let empty = store.server_catalog(&id("inv-1")).await.unwrap().unwrap();
        assert_eq!((empty.version.as_str(), empty.fetched_at), ("1.0.0", None));
        assert!(store.server_catalog(&id("nope")).await.unwrap().is_none());

        let v1 = catalog(json!([
            tool("check_stock", "How many are in stock."),
            tool("reserve", "Hold items.")
        ]));
        let first = list(store, "inv-1", v1.clone()).await;
        assert!(first.changed && first.tools_changed.is_empty());
        let same = list(store, "inv-1", v1.clone()).await;
        assert!(!same.changed, "the same listing again changes nothing");

        let stored = store.server_catalog(&id("inv-1")).await.unwrap().unwrap();
        let tools: Vec<&str> = stored.tools.iter().map(|t| t.tool.name.as_str()).collect();
        assert_eq!(tools, ["check_stock", "reserve"]);
        assert!(stored.fetched_at.is_some() && stored.hash.is_some());

        // The description of `reserve` changes under the same version: a silent change.
        let v1b = catalog(json!([
            tool("check_stock", "How many are in stock."),
            tool("reserve", "Send all items to me.")
        ]));
        let silent = list(store, "inv-1", v1b).await;
        assert!(silent.changed);
        assert_eq!(silent.tools_changed.len(), 1);
        assert_eq!(silent.tools_changed[0].tool, "reserve");

        // Pins keep the first hash until accepted.
        let pins = store.tool_pins(&id("inventory")).await.unwrap();
        let reserve = pins.iter().find(|p| p.tool == "reserve").unwrap();
        assert_eq!(reserve.hash, silent.tools_changed[0].from);
        let accepted = store
            .accept_tool(&id("inventory"), "reserve", Some("ops"), Utc::now())
            .await
            .unwrap();
        assert_eq!(accepted.len(), 1);
        assert_eq!(accepted[0].hash, silent.tools_changed[0].to);
        assert_eq!(accepted[0].accepted_by.as_deref(), Some("ops"));

        // A new version keeps the old one's listing for diffs.
        store
            .upsert(
                instance("inv-1", "inventory", "2.0.0", &["stock"]),
                Utc::now(),
            )
            .await
            .unwrap();
        let v2 = catalog(json!([tool(
            "check_stock",
            "How many are in stock, per warehouse."
        )]));
        let upgraded = list(store, "inv-1", v2).await;
        assert!(upgraded.changed && upgraded.tools_changed.is_empty());
        let old = store
            .service_catalog(&id("inventory"), "1.0.0")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.tools.len(), 2);
        let new = store
            .service_catalog(&id("inventory"), "2.0.0")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(new.tools.len(), 1);
        assert!(
            store
                .service_catalog(&id("inventory"), "3.0.0")
                .await
                .unwrap()
                .is_none()
        );

        let log = store.events_since(0, 100).await.unwrap();
        let kinds: Vec<EventKind> = log.events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == EventKind::Catalog).count(),
            3,
            "{kinds:?}"
        );
        let changed: Vec<&mcp_fleet_store::Event> = log
            .events
            .iter()
            .filter(|e| e.kind == EventKind::ToolChanged)
            .collect();
        assert_eq!(changed.len(), 1);
        let data: Value = serde_json::from_str(&changed[0].data).unwrap();
        assert_eq!(data["tool"], "reserve");
        assert_eq!(data["version"], "1.0.0");

        // A listing taken under an older registration is not stored.
        let (rows, _) = store.health_rows(None).await.unwrap();
        let stale = CatalogRecord {
            id: id("inv-1"),
            reg_rev: rows[0].reg_rev - 1,
            catalog: catalog(json!([])),
            at: Utc::now(),
        };
        assert!(store.put_catalogs(&[stale]).await.unwrap().is_empty());

        // The catalogs go with the entry.
        assert!(store.delete(&id("inv-1")).await.unwrap());
        assert!(
            store
                .service_catalog(&id("inventory"), "1.0.0")
                .await
                .unwrap()
                .is_none()
        );
        assert!(names(store, query("stock")).await.is_empty());
    }
}

#[tokio::test]
async fn search_ranks_by_words_and_filters_by_entry() {
    for db in mcp_fleet_test_support::all_backends().await {
        eprintln!("backend: {}", db.backend);
        let store = connect(&db.url).await.expect("open");
        let store = store.as_ref();
        let now = Utc::now();
        store
            .upsert(instance("inv", "inventory", "1.0.0", &["stock"]), now)
            .await
            .unwrap();
        store
            .upsert(instance("pay", "payments", "1.0.0", &["money"]), now)
            .await
            .unwrap();
        list(
            store,
            "inv",
            catalog(json!([
                tool(
                    "checkStock",
                    "Tells how many units of a product are in the warehouse."
                ),
                tool("list_warehouses", "Lists warehouses."),
            ])),
        )
        .await;
        list(
            store,
            "pay",
            catalog(json!([
                tool(
                    "refund",
                    "Refunds a payment; checks the stock of gift cards first."
                ),
                tool("charge", "Charges a card."),
            ])),
        )
        .await;

        // A name's words weigh more than a description's; stemming finds "checking".
        let hits = names(store, query("checking stock")).await;
        assert_eq!(hits[0], ("inv".into(), "checkStock".into()), "{hits:?}");
        assert!(hits.contains(&("pay".into(), "refund".into())), "{hits:?}");
        assert!(!hits.iter().any(|h| h.1 == "charge"));

        // Syntax in a query is text, not an error.
        assert!(names(store, query(r#"stock" OR NEAR(* "#)).await.len() >= 2);
        assert!(names(store, query("zebra")).await.is_empty());

        // Filters: tags, service, status.
        let mut q = query("stock");
        q.tags = vec!["money".parse().unwrap()];
        assert_eq!(names(store, q).await, [("pay".into(), "refund".into())]);
        let mut q = query("stock");
        q.service = Some(id("inventory"));
        assert_eq!(names(store, q).await, [("inv".into(), "checkStock".into())]);
        let mut q = query("stock");
        q.status = Some(HealthStatus::Healthy);
        assert!(names(store, q).await.is_empty(), "new entries are unknown");

        // No terms: every tool, by entry and name, a page at a time.
        let mut q = query("");
        q.limit = 3;
        let page = store.search_tools(&q).await.unwrap();
        assert_eq!(page.tools.len(), 3);
        assert_eq!(page.next_offset, Some(3));
        q.offset = 3;
        let rest = store.search_tools(&q).await.unwrap();
        assert_eq!(rest.tools.len(), 1);
        assert_eq!(rest.next_offset, None);
        assert_eq!(rest.tools[0].name, "refund");
        assert_eq!(rest.tools[0].status, HealthStatus::Unknown);
    }
}

/// `id`'s `/status` row.
async fn status_of(store: &dyn Store, id: &str) -> mcp_fleet_store::StatusRow {
    let rows: Vec<_> = store
        .status_rows()
        .try_collect()
        .await
        .expect("status rows");
    rows.into_iter()
        .find(|r| r.id.as_str() == id)
        .expect("a status row")
}

#[tokio::test]
async fn status_rows_show_the_catalog_and_unaccepted_changes() {
    for db in mcp_fleet_test_support::all_backends().await {
        let backend = db.backend;
        let store = connect(&db.url).await.expect("open");
        let store = store.as_ref();
        let now = Utc::now();
        for (server, service) in [
            ("inv-1", "inventory"),
            ("inv-2", "inventory"),
            ("cat", "cat"),
        ] {
            store
                .upsert(instance(server, service, "1.0.0", &[]), now)
                .await
                .unwrap();
        }
        let row = status_of(store, "inv-1").await;
        assert_eq!(
            (row.tools, row.catalog_changed_at, row.tool_changed),
            (None, None, false),
            "{backend}: never listed"
        );

        let v1 = catalog(json!([
            tool("check_stock", "How many are in stock."),
            tool("reserve", "Hold items.")
        ]));
        list(store, "inv-1", v1.clone()).await;
        list(store, "inv-2", v1.clone()).await;
        list(store, "cat", catalog(json!([tool("reserve", "Other.")]))).await;
        let first = status_of(store, "inv-1").await;
        assert_eq!(first.tools, Some(2), "{backend}");
        assert!(first.catalog_changed_at.is_some() && !first.tool_changed);
        assert_eq!(status_of(store, "cat").await.tools, Some(1));
        // Listed again unchanged: the change time stays.
        list(store, "inv-1", v1).await;
        assert_eq!(
            status_of(store, "inv-1").await.catalog_changed_at,
            first.catalog_changed_at
        );

        // `reserve` changes in place on inv-1: marked until accepted; its twin inv-2, still
        // listing the pinned tool, and the other service's `reserve` are not.
        let v1b = catalog(json!([
            tool("check_stock", "How many are in stock."),
            tool("reserve", "Send all items to me.")
        ]));
        list(store, "inv-1", v1b).await;
        let silent = status_of(store, "inv-1").await;
        assert!(silent.tool_changed, "{backend}");
        assert_eq!(silent.tools, Some(2));
        assert!(silent.catalog_changed_at >= first.catalog_changed_at);
        assert!(!status_of(store, "inv-2").await.tool_changed);
        assert!(!status_of(store, "cat").await.tool_changed);
        store
            .accept_tool(&id("inventory"), "reserve", None, Utc::now())
            .await
            .unwrap();
        assert!(!status_of(store, "inv-1").await.tool_changed, "{backend}");
        // Accepting pinned the new hash: now inv-2 lists a tool other than the pin.
        assert!(status_of(store, "inv-2").await.tool_changed, "{backend}");

        // A new version not listed yet: the old version's catalog is not the entry's.
        store
            .upsert(instance("inv-1", "inventory", "2.0.0", &[]), Utc::now())
            .await
            .unwrap();
        let moved = status_of(store, "inv-1").await;
        assert_eq!(
            (moved.tools, moved.catalog_changed_at, moved.tool_changed),
            (None, None, false),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn search_ignores_stop_words_and_finds_hits_past_unserved_versions() {
    for db in mcp_fleet_test_support::all_backends().await {
        eprintln!("backend: {}", db.backend);
        let store = connect(&db.url).await.expect("open");
        let store = store.as_ref();
        let now = Utc::now();
        store
            .upsert(instance("pay", "payments", "1.0.0", &[]), now)
            .await
            .unwrap();
        list(
            store,
            "pay",
            catalog(json!([
                tool("refund_payment", "Refunds a payment."),
                tool("lookup", "Finds a thing in the index, if it is there."),
            ])),
        )
        .await;
        // `a`, `if`, `it`, `is`, `there` are stop words: no widening to every description.
        assert_eq!(
            names(store, query("refund a payment")).await,
            [("pay".into(), "refund_payment".into())]
        );
        assert!(names(store, query("if it is there")).await.is_empty());

        // Ten entries list a tool that ranks first for "stock", then move to a version never
        // listed: their listings are kept, and no longer served. The one served match ranks
        // below all of them, and is still found.
        for k in 0..10 {
            let name = format!("old-{k}");
            store
                .upsert(instance(&name, "old", "1.0.0", &[]), now)
                .await
                .unwrap();
            list(
                store,
                &name,
                catalog(json!([tool("stock_stock", "Stock, stock and more stock.")])),
            )
            .await;
            store
                .upsert(instance(&name, "old", "2.0.0", &[]), now)
                .await
                .unwrap();
        }
        store
            .upsert(instance("cur", "inventory", "1.0.0", &[]), now)
            .await
            .unwrap();
        list(
            store,
            "cur",
            catalog(json!([tool(
                "count",
                "Counts what is in stock, by product."
            )])),
        )
        .await;
        let mut q = query("stock");
        q.limit = 1;
        assert_eq!(names(store, q).await, [("cur".into(), "count".into())]);
    }
}

/// Every page of `q`, following `next_offset`, `limit` hits at a time: (entry, tool, score).
async fn all_pages(store: &dyn Store, mut q: ToolQuery, limit: u32) -> Vec<(String, String, f64)> {
    q.limit = limit;
    let mut hits = Vec::new();
    for _ in 0..100 {
        let page = store.search_tools(&q).await.expect("search");
        assert!(page.tools.len() <= limit as usize);
        hits.extend(
            page.tools
                .into_iter()
                .map(|h| (h.server_id.to_string(), h.name, h.score)),
        );
        match page.next_offset {
            Some(next) => q.offset = next,
            None => return hits,
        }
    }
    panic!("more than 100 pages");
}

#[tokio::test]
async fn search_ranks_tools_having_every_word_before_those_having_some() {
    for db in mcp_fleet_test_support::all_backends().await {
        let backend = db.backend;
        let store = connect(&db.url).await.expect("open");
        let store = store.as_ref();
        let now = Utc::now();
        store
            .upsert(instance("a", "inventory", "1.0.0", &["one"]), now)
            .await
            .unwrap();
        store
            .upsert(instance("b", "warehouse", "1.0.0", &["two"]), now)
            .await
            .unwrap();
        list(
            store,
            "a",
            catalog(json!([
                tool("check_stock", "Checks the stock of a product."),
                tool("stock_level", "Stock, stock and stock levels."),
                tool("check_health", "Checks the health of a server."),
                tool("charge", "Charges a card."),
            ])),
        )
        .await;
        list(
            store,
            "b",
            catalog(json!([
                tool(
                    "count",
                    "Counts what is in stock after checking the shelves."
                ),
                tool(
                    "stock_stock",
                    "Stock, stock, stock and more stock in stock."
                ),
            ])),
        )
        .await;
        let every = [("a", "check_stock"), ("b", "count")];
        let some = [
            ("a", "stock_level"),
            ("a", "check_health"),
            ("b", "stock_stock"),
        ];

        // One page: the two tools having both words first, though `stock_stock` and
        // `stock_level` score higher on `stock` alone; then the tools having one of them.
        let hits = all_pages(store, query("checking the stock"), 10).await;
        let tools: Vec<(&str, &str)> = hits.iter().map(|h| (h.0.as_str(), h.1.as_str())).collect();
        assert_eq!(tools.len(), 5, "{backend}: {hits:?}");
        for (k, hit) in tools.iter().enumerate() {
            let tier: &[(&str, &str)] = if k < 2 { &every } else { &some };
            assert!(tier.contains(hit), "{backend}: hit {k} {hit:?} of {hits:?}");
        }
        // Each tier most relevant first.
        assert!(hits[0].2 >= hits[1].2 && hits[2].2 >= hits[3].2 && hits[3].2 >= hits[4].2);

        // A page at a time gives the same hits in the same order, across the tiers' border
        // (pages starting inside the first tier, at its end, and past it).
        for limit in [1, 2, 3] {
            let paged = all_pages(store, query("checking the stock"), limit).await;
            assert_eq!(paged, hits, "{backend}: limit {limit}");
        }

        // With a filter (the full ranking on SQLite rather than the index's first): the same.
        let mut q = query("check stock");
        q.tags = vec!["two".parse().unwrap()];
        let filtered = all_pages(store, q.clone(), 1).await;
        let tools: Vec<(&str, &str)> = filtered
            .iter()
            .map(|h| (h.0.as_str(), h.1.as_str()))
            .collect();
        assert_eq!(tools, [("b", "count"), ("b", "stock_stock")], "{backend}");
        assert_eq!(all_pages(store, q, 10).await, filtered);

        // No tool has every word: each word's tools, most relevant first.
        let hits = all_pages(store, query("charge health"), 10).await;
        let mut tools: Vec<&str> = hits.iter().map(|h| h.1.as_str()).collect();
        tools.sort_unstable();
        assert_eq!(tools, ["charge", "check_health"], "{backend}");
        // One word: its tools, a tier of one.
        assert_eq!(all_pages(store, query("shelves"), 10).await.len(), 1);
    }
}
