//! One behaviour suite, run against every backend (SQLite always, PostgreSQL when configured).

use chrono::{Duration, Utc};
use mcp_fleet_model::{HealthStatus, Registration, ServerId, StatusFilter, Tag};
use mcp_fleet_store::{ListQuery, Upserted, connect};
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
        assert_eq!(got.status, HealthStatus::Healthy);
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
        ..ListQuery::default()
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
    let mut q = ListQuery {
        limit: 10,
        ..ListQuery::default()
    };
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

each_backend!(status_filter, |store| {
    store
        .upsert(reg("h", &[]), Utc::now())
        .await
        .expect("create");
    let down = ListQuery {
        status: StatusFilter::Only(HealthStatus::Down),
        ..ListQuery::default()
    };
    assert!(store.list(&down).await.expect("list").entries.is_empty());
    let any = ListQuery {
        status: StatusFilter::Any,
        ..ListQuery::default()
    };
    assert_eq!(store.list(&any).await.expect("list").entries.len(), 1);
    let rows = store.status_rows().await.expect("status");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, HealthStatus::Healthy);
    assert!(rows[0].last_seen.is_some());
});

each_backend!(ids_sort_bytewise_on_every_backend, |store| {
    for s in ["a-b", "a0", "ab", "a"] {
        store.upsert(reg(s, &[]), Utc::now()).await.expect("create");
    }
    let any = ListQuery {
        status: StatusFilter::Any,
        limit: 2,
        ..ListQuery::default()
    };
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
