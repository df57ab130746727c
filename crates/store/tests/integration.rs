//! One behaviour suite, run against every backend (SQLite always, PostgreSQL when configured).

use chrono::{Duration, Utc};
use mcp_fleet_model::{HealthStatus, Registration, ServerId, StatusFilter, Tag};
use mcp_fleet_store::{CheckRecord, HealthRow, ListQuery, Upserted, connect};
use serde_json::json;

fn reg(id: &str, tags: &[&str]) -> Registration {
    Registration::from_json(
        &json!({
            "id": id,
            "name": format!("Server {id}"),
            "url": format!("http://127.0.0.1:9/{id}"),
            "version": "1.0.0",
            "tags": tags,
            "metadata": {"team": "t"},
        }),
        None,
    )
    .expect("valid registration")
}

fn id(s: &str) -> ServerId {
    s.parse().expect("id")
}

fn tag(s: &str) -> Tag {
    s.parse().expect("tag")
}

/// Every status: new entries are `unknown` until probed.
fn any() -> ListQuery {
    ListQuery {
        status: StatusFilter::Any,
        ..ListQuery::default()
    }
}

/// Runs `body` against every configured backend.
macro_rules! each_backend {
    ($name:ident, |$store:ident| $body:block) => {
        #[tokio::test]
        async fn $name() {
            for db in mcp_fleet_test_support::all_backends().await {
                let $store = connect(&db.url).await.expect("open store");
                eprintln!("{}: {}", stringify!($name), db.backend);
                $body
            }
        }
    };
}

each_backend!(
    upsert_creates_then_replaces_keeping_registered_at,
    |store| {
        let t0 = Utc::now();
        let first = store.upsert(reg("a", &["x"]), t0).await.expect("create");
        assert!(matches!(first, Upserted::Created(_)));
        let t1 = t0 + Duration::seconds(5);
        let mut r = reg("a", &["y"]);
        r.name = "Renamed".into();
        let second = store.upsert(r, t1).await.expect("replace");
        let Upserted::Replaced(e) = second else {
            panic!("expected Replaced")
        };
        assert_eq!(e.registered_at.timestamp_millis(), t0.timestamp_millis());
        let got = store.get(&id("a")).await.expect("get").expect("present");
        assert_eq!(got.name, "Renamed");
        assert_eq!(got.tags, vec![tag("y")]);
        assert_eq!(got.registered_at.timestamp_millis(), t0.timestamp_millis());
        assert_eq!(got.updated_at.timestamp_millis(), t1.timestamp_millis());
        assert_eq!(got.metadata["team"], "t");
        assert_eq!(got.status, HealthStatus::Unknown);
        assert!(got.last_seen.is_none());
        // The old tag no longer matches.
        let q = ListQuery {
            tags: vec![tag("x")],
            ..ListQuery::default()
        };
        assert!(store.list(&q).await.expect("list").entries.is_empty());
    }
);

each_backend!(get_and_delete, |store| {
    assert!(store.get(&id("nope")).await.expect("get").is_none());
    assert!(!store.delete(&id("nope")).await.expect("delete"));
    store
        .upsert(reg("b", &[]), Utc::now())
        .await
        .expect("create");
    assert!(store.delete(&id("b")).await.expect("delete"));
    assert!(store.get(&id("b")).await.expect("get").is_none());
});

each_backend!(list_filters_by_any_tag_in_id_order_with_pages, |store| {
    for i in 0..25 {
        let tags: &[&str] = match i % 3 {
            0 => &["red"],
            1 => &["blue", "green"],
            _ => &["green"],
        };
        store
            .upsert(reg(&format!("s{i:02}"), tags), Utc::now())
            .await
            .expect("create");
    }
    let q = ListQuery {
        tags: vec![tag("red"), tag("blue")],
        ..any()
    };
    let page = store.list(&q).await.expect("list");
    let ids: Vec<_> = page.entries.iter().map(|e| e.id.to_string()).collect();
    let want: Vec<_> = (0..25)
        .filter(|i| i % 3 != 2)
        .map(|i| format!("s{i:02}"))
        .collect();
    assert_eq!(ids, want);
    assert!(page.next_after.is_none());

    // Pages of 10 walk all 25 exactly once.
    let mut seen = Vec::new();
    let mut q = ListQuery { limit: 10, ..any() };
    loop {
        let page = store.list(&q).await.expect("page");
        seen.extend(page.entries.iter().map(|e| e.id.to_string()));
        match page.next_after {
            Some(after) => q.after = Some(after),
            None => break,
        }
    }
    let all: Vec<_> = (0..25).map(|i| format!("s{i:02}")).collect();
    assert_eq!(seen, all);
});

each_backend!(status_filter_and_checks, |store| {
    let t0 = Utc::now();
    store.upsert(reg("h", &[]), t0).await.expect("create");
    store.upsert(reg("d", &[]), t0).await.expect("create");
    let only = |s| ListQuery {
        status: StatusFilter::Only(s),
        ..ListQuery::default()
    };
    let listed = |q: ListQuery| {
        let store = store.clone();
        async move { store.list(&q).await.expect("list").entries.len() }
    };
    assert_eq!(listed(only(HealthStatus::Healthy)).await, 0);
    assert_eq!(listed(only(HealthStatus::Unknown)).await, 2);

    let (rows, rev) = store.health_rows(None).await.expect("health rows");
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.reg_rev <= rev && r.status == HealthStatus::Unknown)
    );
    let t1 = t0 + Duration::seconds(1);
    let record = |row: &HealthRow, status, seen: bool| CheckRecord {
        id: row.id.clone(),
        reg_rev: row.reg_rev,
        status,
        successes: u32::from(seen),
        failures: u32::from(!seen),
        checked_at: t1,
        seen_at: seen.then_some(t1),
        last_error: (!seen).then(|| "connection refused".to_string()),
        latency_ms: Some(12),
    };
    let h = rows.iter().find(|r| r.id == id("h")).expect("h").clone();
    let d = rows.iter().find(|r| r.id == id("d")).expect("d").clone();
    let written = store
        .record_checks(&[
            record(&h, HealthStatus::Healthy, true),
            record(&d, HealthStatus::Down, false),
        ])
        .await
        .expect("record");
    assert_eq!(written.len(), 2);
    let got = store.get(&id("h")).await.expect("get").expect("h");
    assert_eq!(got.status, HealthStatus::Healthy);
    assert_eq!(
        got.last_seen.map(|t| t.timestamp_millis()),
        Some(t1.timestamp_millis())
    );
    assert_eq!(got.latency_ms, Some(12));
    let got = store.get(&id("d")).await.expect("get").expect("d");
    assert_eq!(got.last_error.as_deref(), Some("connection refused"));
    assert!(got.last_seen.is_none());
    assert_eq!(listed(only(HealthStatus::Healthy)).await, 1);

    // Only what changed after a revision comes back; a re-registration voids older results.
    let (none, rev2) = store.health_rows(Some(rev)).await.expect("rows");
    assert!(none.is_empty() && rev2 == rev);
    store.upsert(reg("h", &[]), t1).await.expect("re-register");
    let (changed, _) = store.health_rows(Some(rev)).await.expect("rows");
    let changed: Vec<_> = changed.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(changed, ["h"]);
    let stale = store
        .record_checks(&[record(&h, HealthStatus::Down, false)])
        .await
        .expect("record");
    assert!(
        stale.is_empty(),
        "a result for a superseded registration was written"
    );
    let got = store.get(&id("h")).await.expect("get").expect("h");
    assert_eq!(got.status, HealthStatus::Unknown);
    assert_eq!(store.status_rows().await.expect("status").len(), 2);
});

each_backend!(heartbeats_and_deregistration, |store| {
    let t0 = Utc::now();
    let mut r = reg("ttl", &[]);
    r.ttl_seconds = Some(30);
    store.upsert(r, t0).await.expect("create");
    store.upsert(reg("plain", &[]), t0).await.expect("create");
    let beats = store.heartbeats().await.expect("heartbeats");
    assert_eq!(beats.len(), 1, "only TTL entries");
    let millis = |t: Option<chrono::DateTime<Utc>>| t.map(|t| t.timestamp_millis());
    assert_eq!(millis(beats[0].heartbeat_at), Some(t0.timestamp_millis()));
    let t1 = t0 + Duration::seconds(10);
    assert!(store.heartbeat(&id("ttl"), t1).await.expect("heartbeat"));
    assert!(!store.heartbeat(&id("nope"), t1).await.expect("heartbeat"));
    let beats = store.heartbeats().await.expect("heartbeats");
    assert_eq!(millis(beats[0].heartbeat_at), Some(t1.timestamp_millis()));

    // Not down: never deregistered.
    assert!(
        !store
            .deregister_if_down(&id("plain"), t1)
            .await
            .expect("deregister")
    );
    let (rows, _) = store.health_rows(None).await.expect("rows");
    let plain = rows.iter().find(|r| r.id == id("plain")).expect("plain");
    let down = CheckRecord {
        id: plain.id.clone(),
        reg_rev: plain.reg_rev,
        status: HealthStatus::Down,
        successes: 0,
        failures: 2,
        checked_at: t1,
        seen_at: None,
        last_error: Some("refused".into()),
        latency_ms: None,
    };
    store.record_checks(&[down]).await.expect("record");
    // Down since t1: kept for a cut-off before t1, removed for one after it.
    assert!(
        !store
            .deregister_if_down(&id("plain"), t0)
            .await
            .expect("deregister")
    );
    let later = t1 + Duration::seconds(1);
    assert!(
        store
            .deregister_if_down(&id("plain"), later)
            .await
            .expect("deregister")
    );
    assert!(store.get(&id("plain")).await.expect("get").is_none());
});

each_backend!(ids_sort_bytewise_on_every_backend, |store| {
    for s in ["a-b", "a0", "ab", "a"] {
        store.upsert(reg(s, &[]), Utc::now()).await.expect("create");
    }
    let any = ListQuery { limit: 2, ..any() };
    let first = store.list(&any).await.expect("list");
    let ids: Vec<_> = first.entries.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["a", "a-b"]);
    let rest = store
        .list(&ListQuery {
            after: first.next_after,
            ..any
        })
        .await
        .expect("list");
    let ids: Vec<_> = rest.entries.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["a0", "ab"]);
});

#[tokio::test]
async fn entries_survive_reopening_the_database() {
    for db in mcp_fleet_test_support::all_backends().await {
        {
            let store = connect(&db.url).await.expect("open");
            store
                .upsert(reg("kept", &["t"]), Utc::now())
                .await
                .expect("create");
        }
        let store = connect(&db.url)
            .await
            .expect("reopen (migrations are idempotent)");
        let got = store.get(&id("kept")).await.expect("get");
        assert!(got.is_some(), "{}: entry lost on reopen", db.backend);
    }
}

#[tokio::test]
async fn unsupported_url_is_a_config_error() {
    let err = connect("mysql://x").await.err().expect("must fail");
    assert!(
        err.to_string().contains("unsupported database URL"),
        "{err}"
    );
}
