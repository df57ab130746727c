//! One behaviour suite, run against every backend (SQLite always, PostgreSQL when configured).
//!
//! Over 500 lines: the one suite every backend must pass, in one file so that a new backend is
//! checked by adding it to one list.

use chrono::{Duration, Utc};
use futures::TryStreamExt;
use mcp_fleet_model::{
    HealthStatus, Registration, Routing, RoutingPolicy, ServerId, StatusFilter, Tag, Version,
};
use mcp_fleet_store::{
    CapReached, CheckRecord, EntryCaps, EventKind, HealthRow, LEASE_SHARDS, ListQuery, StoreError,
    StoreOptions, Upserted, connect, connect_with,
};
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

/// A probe's whole error chain, kept beside its short cause.
const CHAIN: &str = "send initialize request: error sending request: client error (Connect): \
                     tcp connect error: Connection refused (os error 111)";

fn id(s: &str) -> ServerId {
    s.parse().expect("id")
}

fn tag(s: &str) -> Tag {
    s.parse().expect("tag")
}

/// A registration of `id` as an instance of `service` at `version`.
fn instance(id: &str, service: &str, version: &str) -> Registration {
    let mut r = reg(id, &[]);
    r.service = service.parse().expect("service");
    r.version = version.parse().expect("version");
    r
}

fn version(s: &str) -> Version {
    s.parse().expect("version")
}

fn policy(body: serde_json::Value) -> RoutingPolicy {
    RoutingPolicy::from_json(&body).expect("valid policy")
}

/// Sets the policy `body` of `svc`, `by` a principal as of `now`: the stored document and
/// whether it was new.
async fn set_routing(
    store: &dyn mcp_fleet_store::Store,
    svc: &ServerId,
    body: serde_json::Value,
    by: Option<&str>,
    now: chrono::DateTime<Utc>,
) -> (Routing, bool) {
    let doc = Routing::new(svc.clone(), policy(body), by, now);
    let created = store.put_routing(&doc).await.expect("put");
    (doc, created)
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
        last_error_detail: (!seen).then(|| CHAIN.to_string()),
        latency_ms: seen.then_some(12),
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
    assert_eq!(
        written.iter().map(|w| w.changed_from).collect::<Vec<_>>(),
        [Some(HealthStatus::Unknown); 2],
        "both changed their entry's status: their writer learns it"
    );
    let got = store.get(&id("h")).await.expect("get").expect("h");
    assert_eq!(got.status, HealthStatus::Healthy);
    assert_eq!(
        got.last_seen.map(|t| t.timestamp_millis()),
        Some(t1.timestamp_millis())
    );
    assert_eq!(got.latency_ms, Some(12));
    let got = store.get(&id("d")).await.expect("get").expect("d");
    assert_eq!(got.last_error.as_deref(), Some("connection refused"));
    assert_eq!(got.last_error_detail.as_deref(), Some(CHAIN));
    assert_eq!(got.latency_ms, None, "never reached: no latency");
    assert!(got.last_seen.is_none());
    assert_eq!(listed(only(HealthStatus::Healthy)).await, 1);

    // Only what was registered after a revision comes back; a re-registration voids older
    // results. The two status changes moved the revision, but registered nothing.
    let (none, rev2) = store.health_rows(Some(rev)).await.expect("rows");
    assert!(none.is_empty() && rev2 == rev + 2, "{rev} -> {rev2}");
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
    let rows: Vec<_> = store.status_rows().try_collect().await.expect("status");
    assert_eq!(rows.len(), 2);
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
        last_error_detail: None,
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
async fn a_detached_store_reads_and_writes_the_same_database() {
    for db in mcp_fleet_test_support::all_backends().await {
        let store = connect(&db.url).await.expect("open");
        let detached = store.detached().await.expect("detach");
        // SQLite opens connections of its own; PostgreSQL has nothing to gain from it.
        assert_eq!(detached.is_some(), db.backend == "sqlite", "{}", db.backend);
        let Some(detached) = detached else { continue };
        store
            .upsert(reg("shared", &["t"]), Utc::now())
            .await
            .expect("create");
        let (rows, _) = detached.health_rows(None).await.expect("rows");
        let row = rows.iter().find(|r| r.id == id("shared")).expect("seen");
        let written = detached
            .record_checks(&[check(row, HealthStatus::Healthy, Utc::now())])
            .await
            .expect("record");
        let ids: Vec<_> = written.iter().map(|w| &w.id).collect();
        assert_eq!(ids, [&id("shared")]);
        let got = store.get(&id("shared")).await.expect("get").expect("entry");
        assert_eq!(got.status, HealthStatus::Healthy);
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

/// A check result for `row` at `at`.
fn check(row: &HealthRow, status: HealthStatus, at: chrono::DateTime<Utc>) -> CheckRecord {
    CheckRecord {
        id: row.id.clone(),
        reg_rev: row.reg_rev,
        status,
        successes: u32::from(status == HealthStatus::Healthy),
        failures: u32::from(status != HealthStatus::Healthy),
        checked_at: at,
        seen_at: None,
        last_error: (status == HealthStatus::Down).then(|| "refused".to_string()),
        last_error_detail: None,
        latency_ms: None,
    }
}

each_backend!(every_change_is_logged_under_the_next_revision, |store| {
    let start = store.current_revision().await.expect("revision");
    let t0 = Utc::now();
    store.upsert(reg("a", &[]), t0).await.expect("create");
    store.upsert(reg("b", &[]), t0).await.expect("create");
    let mut renamed = reg("a", &["x"]);
    renamed.name = "Renamed".into();
    store.upsert(renamed, t0).await.expect("replace");
    let (rows, registered) = store.health_rows(None).await.expect("rows");
    let row = |s: &str| rows.iter().find(|r| r.id == id(s)).expect("row").clone();
    let t1 = t0 + Duration::seconds(1);
    // A status change for `a` and none for `b` (still unknown): one event.
    store
        .record_checks(&[
            check(&row("a"), HealthStatus::Down, t1),
            check(&row("b"), HealthStatus::Unknown, t1),
        ])
        .await
        .expect("record");
    // Two changes of one entry in one batch: two events, each from the status before it.
    let t2 = t1 + Duration::seconds(1);
    store
        .record_checks(&[
            check(&row("b"), HealthStatus::Healthy, t2),
            check(&row("b"), HealthStatus::Degraded, t2),
        ])
        .await
        .expect("record");
    assert!(
        store.heartbeat(&id("b"), t2).await.expect("heartbeat"),
        "no event"
    );
    assert!(store.delete(&id("b")).await.expect("delete"));
    assert!(!store.delete(&id("b")).await.expect("delete"), "no event");
    assert!(
        store
            .deregister_if_down(&id("a"), t2)
            .await
            .expect("deregister")
    );

    let log = store.events_since(start, 100).await.expect("events");
    assert!(!log.gone);
    let got: Vec<_> = log
        .events
        .iter()
        .map(|e| (e.revision - start, e.kind, e.server_id.to_string()))
        .collect();
    let want = [
        (1, EventKind::Created, "a"),
        (2, EventKind::Created, "b"),
        (3, EventKind::Replaced, "a"),
        (4, EventKind::Status, "a"),
        (5, EventKind::Status, "b"),
        (6, EventKind::Status, "b"),
        (7, EventKind::Deleted, "b"),
        (8, EventKind::Deleted, "a"),
    ]
    .map(|(n, k, s)| (n, k, s.to_string()));
    assert_eq!(got, want);
    assert_eq!(log.current, start + 8);
    assert_eq!(store.current_revision().await.expect("revision"), start + 8);
    // `reg_rev` is still the revision of the last registration.
    assert_eq!(registered, start + 3);
    assert_eq!(row("a").reg_rev, start + 3);

    let data = |n: usize| -> serde_json::Value {
        serde_json::from_str(&log.events[n].data).expect("JSON data")
    };
    assert_eq!(data(2)["name"], "Renamed");
    assert_eq!(data(2)["tags"], json!(["x"]));
    assert_eq!(data(2)["status"], "unknown");
    let status = data(3);
    assert_eq!(
        (
            &status["id"],
            &status["from"],
            &status["to"],
            &status["lastError"]
        ),
        (
            &json!("a"),
            &json!("unknown"),
            &json!("down"),
            &json!("refused")
        )
    );
    assert_eq!(
        (&data(4)["from"], &data(4)["to"]),
        (&json!("unknown"), &json!("healthy"))
    );
    assert_eq!(
        (&data(5)["from"], &data(5)["to"]),
        (&json!("healthy"), &json!("degraded"))
    );
    assert_eq!(data(6), json!({"id": "b"}));

    // Reading on from any point gives the rest, a page at a time.
    let page = store.events_since(start + 2, 3).await.expect("events");
    let revisions: Vec<_> = page.events.iter().map(|e| e.revision - start).collect();
    assert_eq!(revisions, [3, 4, 5]);
    assert!(!page.gone);
    let caught_up = store.events_since(start + 8, 10).await.expect("events");
    assert!(caught_up.events.is_empty() && !caught_up.gone);
    // A revision this registry never reached: the reader must start over.
    assert!(
        store
            .events_since(start + 9, 10)
            .await
            .expect("events")
            .gone
    );
});

#[tokio::test]
async fn events_past_the_retention_are_pruned_and_reported_gone() {
    for db in mcp_fleet_test_support::all_backends().await {
        let options = StoreOptions {
            event_retention: 32,
        };
        let store = connect_with(&db.url, options).await.expect("open");
        for i in 0..100 {
            store
                .upsert(reg(&format!("s{i}"), &[]), Utc::now())
                .await
                .expect("create");
        }
        let log = store.events_since(0, 1000).await.expect("events");
        assert!(log.gone, "{}: revision 1 was pruned", db.backend);
        let oldest = log.oldest.expect("some events kept");
        // At least the retention, at most one pruning batch (32 / 16) more.
        assert!((100 - 33 - 2..=100 - 31).contains(&oldest), "{oldest}");
        assert!(
            store
                .events_since(oldest - 2, 10)
                .await
                .expect("events")
                .gone
        );
        let rest = store.events_since(oldest - 1, 1000).await.expect("events");
        assert!(!rest.gone);
        assert_eq!(rest.events.len() as i64, 100 - oldest + 1, "{}", db.backend);
    }
}

#[tokio::test]
async fn a_database_from_before_the_log_has_no_history_before_it() {
    let db = mcp_fleet_test_support::sqlite();
    {
        let store = connect(&db.url).await.expect("open");
        store
            .upsert(reg("a", &[]), Utc::now())
            .await
            .expect("create");
    }
    // As if the registry had been at revision 41 when the log was added.
    let url = db.url.clone();
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    sqlx::raw_sql("DELETE FROM events; UPDATE registry_meta SET value = 41")
        .execute(&mut conn)
        .await
        .expect("rewind");
    let store = connect(&db.url).await.expect("reopen");
    assert!(store.events_since(0, 10).await.expect("events").gone);
    let now = store.events_since(41, 10).await.expect("events");
    assert!(!now.gone && now.events.is_empty() && now.oldest.is_none());
    store
        .upsert(reg("b", &[]), Utc::now())
        .await
        .expect("create");
    let next = store.events_since(41, 10).await.expect("events");
    assert_eq!(
        next.events.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [42]
    );
}

/// Registrations, deletions and status batches from many tasks at once: every reader sees the
/// revisions without gaps, in order, while they are being written (on PostgreSQL, where writers
/// really run concurrently, this is what locking the counter row until commit buys), and no
/// writer deadlocks another.
#[tokio::test]
async fn concurrent_writers_commit_revisions_in_order() {
    const WRITERS: usize = 6;
    const WRITES: usize = 30;
    for db in mcp_fleet_test_support::all_backends().await {
        let store = connect(&db.url).await.expect("open");
        let start = store.current_revision().await.expect("revision");
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let store = store.clone();
            writers.spawn(async move {
                for i in 0..WRITES {
                    let s = format!("w{w}-{}", i % 5);
                    if i % 7 == 6 {
                        store.delete(&id(&s)).await.expect("delete");
                    } else {
                        store
                            .upsert(reg(&s, &[]), Utc::now())
                            .await
                            .expect("upsert");
                    }
                    if i % 3 == 0 {
                        let (rows, _) = store.health_rows(None).await.expect("rows");
                        let flip = |r: &HealthRow| match r.status {
                            HealthStatus::Healthy => HealthStatus::Down,
                            _ => HealthStatus::Healthy,
                        };
                        let batch: Vec<_> = rows
                            .iter()
                            .rev()
                            .map(|r| check(r, flip(r), Utc::now()))
                            .collect();
                        store.record_checks(&batch).await.expect("record");
                    }
                }
            });
        }
        let mut last = start;
        let mut reads = 0;
        while !writers.is_empty() || last < store.current_revision().await.expect("revision") {
            let log = store.events_since(last, 50).await.expect("events");
            assert!(!log.gone, "{}: lost history after {last}", db.backend);
            for e in &log.events {
                assert_eq!(e.revision, last + 1, "{}: a gap or reordering", db.backend);
                last = e.revision;
            }
            reads += 1;
            while let Some(done) = writers.try_join_next() {
                done.expect("writer");
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(last, store.current_revision().await.expect("revision"));
        assert!(last - start >= (WRITERS * WRITES) as i64);
        eprintln!("{}: {} revisions, {reads} reads", db.backend, last - start);
    }
}

each_backend!(entries_carry_their_service_and_list_by_it, |store| {
    let now = Utc::now();
    store.upsert(reg("solo", &[]), now).await.expect("create");
    for (i, v) in ["2.0.0", "2.1.0", "2.0.0"].iter().enumerate() {
        let r = instance(&format!("catalog-{i}"), "catalog", v);
        store.upsert(r, now).await.expect("create");
    }
    let solo = store.get(&id("solo")).await.expect("get").expect("present");
    assert_eq!(solo.service, id("solo"), "the service defaults to the id");
    let c = store
        .get(&id("catalog-1"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(c.service, id("catalog"));
    let q = ListQuery {
        service: Some(id("catalog")),
        ..any()
    };
    let listed: Vec<_> = store.list(&q).await.expect("list").entries;
    let ids: Vec<_> = listed.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["catalog-0", "catalog-1", "catalog-2"]);
    let rendered = store.list_rendered(&q).await.expect("list rendered");
    assert_eq!(rendered.entries.len(), 3);
    assert!(rendered.entries[0].contains(r#""service":"catalog""#));
    assert_eq!(
        store
            .service_versions(&id("catalog"))
            .await
            .expect("versions"),
        [version("2.0.0"), version("2.1.0")]
    );
    assert!(
        store
            .service_versions(&id("nope"))
            .await
            .expect("versions")
            .is_empty()
    );
});

each_backend!(routing_policies_are_set_rolled_back_and_deleted, |store| {
    let svc = id("catalog");
    let t0 = Utc::now();
    let start = store.current_revision().await.expect("revision");
    assert!(store.get_routing(&svc).await.expect("get").is_none());
    assert!(!store.delete_routing(&svc).await.expect("delete"));
    let none = store
        .record_rollback(&svc, &version("2.1.0"), "x", None, t0)
        .await
        .expect("rollback");
    assert!(none.is_none(), "no policy, no rollback");

    let body = json!({
        "weights": {"2.0.0": 90, "2.1.0": 10},
        "rollback": {"maxErrorRateDelta": 0.05, "window": "60s", "minRequests": 50},
    });
    let (doc, created) = set_routing(store.as_ref(), &svc, body.clone(), Some("tok_ops"), t0).await;
    assert!(created);
    assert_eq!(doc.updated_by.as_deref(), Some("tok_ops"));
    assert_eq!(doc.weights[&version("2.1.0")], 10);
    let got = store
        .get_routing(&svc)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, doc);
    assert_eq!(
        got.rollback.expect("rule").window,
        std::time::Duration::from_secs(60)
    );

    let t1 = t0 + Duration::seconds(1);
    let rolled = store
        .record_rollback(
            &svc,
            &version("2.1.0"),
            "error rate 0.31",
            Some("tok_gateway"),
            t1,
        )
        .await
        .expect("rollback")
        .expect("policy");
    assert_eq!(rolled.updated_by.as_deref(), Some("tok_gateway"));
    assert_eq!(rolled.weights[&version("2.0.0")], 100);
    assert_eq!(rolled.weights[&version("2.1.0")], 0);
    let record = rolled.rolled_back.clone().expect("recorded");
    assert_eq!(record.version, version("2.1.0"));
    assert_eq!(record.reason, "error rate 0.31");
    assert_eq!(record.previous_weights[&version("2.1.0")], 10);
    assert_eq!(
        store
            .get_routing(&svc)
            .await
            .expect("get")
            .expect("present"),
        rolled
    );
    // Already at 0: nothing written, no event.
    let again = store
        .record_rollback(&svc, &version("2.1.0"), "again", Some("tok_other"), t1)
        .await
        .expect("rollback")
        .expect("policy");
    assert_eq!(again, rolled);

    let t2 = t1 + Duration::seconds(1);
    let (replaced, created) = set_routing(
        store.as_ref(),
        &svc,
        json!({"weights": {"2.1.0": 100}}),
        None,
        t2,
    )
    .await;
    assert!(!created);
    assert_eq!(replaced.updated_by, None, "writes open: nobody to record");
    assert!(replaced.rolled_back.is_none() && replaced.rollback.is_none());
    // Every service's document, in service order, with its contract as set.
    let other = id("analytics");
    let check = mcp_fleet_model::ContractCheck {
        contract: mcp_fleet_model::RoutingContract {
            stable: version("1.0.0"),
            breaking: vec![version("2.0.0")],
            unknown: Vec::new(),
        },
        breaks: Vec::new(),
    };
    let allow = mcp_fleet_model::AllowBreaking {
        reason: "clients moved".into(),
    };
    let held = Routing::new(
        other.clone(),
        policy(json!({"weights": {"1.0.0": 90, "2.0.0": 10}})),
        Some("tok_ops"),
        t2,
    )
    .held_to(Some(check), Some(&allow))
    .expect("allowed");
    assert!(store.put_routing(&held).await.expect("put"));
    let all = store.routing_documents().await.expect("all");
    assert_eq!(all, vec![held.clone(), replaced.clone()]);
    assert_eq!(all[0].breaking_allowed[0].reason, "clients moved");
    assert!(store.delete_routing(&other).await.expect("delete"));
    assert!(store.delete_routing(&svc).await.expect("delete"));
    assert!(store.routing_documents().await.expect("all").is_empty());
    assert!(store.get_routing(&svc).await.expect("get").is_none());

    let log = store.events_since(start, 100).await.expect("events");
    let kinds: Vec<_> = log
        .events
        .iter()
        .map(|e| (e.kind, e.server_id.to_string()))
        .collect();
    let routed = |s: &str| (EventKind::Routing, s.to_owned());
    assert_eq!(
        kinds,
        vec![
            routed("catalog"),
            routed("catalog"),
            routed("catalog"),
            routed("analytics"),
            routed("analytics"),
            routed("catalog"),
        ]
    );
    let data = |n: usize| -> serde_json::Value {
        serde_json::from_str(&log.events[n].data).expect("JSON data")
    };
    assert_eq!(data(0)["weights"], body["weights"]);
    assert_eq!(data(0)["rollback"], body["rollback"]);
    assert_eq!(data(1)["rolledBack"]["version"], "2.1.0");
    assert_eq!(data(1)["updatedBy"], "tok_gateway");
    assert_eq!(data(2)["weights"], json!({"2.1.0": 100}));
    assert_eq!(data(3)["contract"]["breaking"], json!(["2.0.0"]));
    assert_eq!(data(5), json!({"service": "catalog"}));
});

/// A report of `replica`: `calls` and `errors` of each version in slot `slot` (slots of 1 s).
fn report(replica: &str, slot: u64, counts: &[(&str, u64, u64)]) -> mcp_fleet_model::Observations {
    let versions: serde_json::Map<String, serde_json::Value> = counts
        .iter()
        .map(|(v, calls, errors)| {
            (
                (*v).to_owned(),
                json!([{"slot": slot, "calls": calls, "errors": errors}]),
            )
        })
        .collect();
    mcp_fleet_model::Observations::from_json(
        &json!({"replica": replica, "slotMs": 1000, "versions": versions}),
        Utc::now(),
    )
    .expect("a valid report")
}

each_backend!(
    canary_counts_are_summed_across_replicas_and_pruned,
    |store| {
        let svc = id("catalog");
        let t0 = Utc::now();
        let slot = mcp_fleet_model::slot_of(t0, 1000);
        let none = store
            .record_observations(&svc, &report("gw-a", slot, &[("2.1.0", 1, 1)]), t0)
            .await
            .expect("report");
        assert!(none.is_none(), "no policy, nothing kept");
        let body = json!({
            "weights": {"2.0.0": 90, "2.1.0": 10, "3.0.0": 0},
            "rollback": {"maxErrorRateDelta": 0.05, "window": "60s", "minRequests": 50},
        });
        set_routing(store.as_ref(), &svc, body, None, t0).await;
        let start = store.current_revision().await.expect("revision");

        let a = report(
            "gw-a",
            slot,
            &[("2.0.0", 40, 0), ("2.1.0", 10, 4), ("3.0.0", 9, 9)],
        );
        let totals = store
            .record_observations(&svc, &a, t0)
            .await
            .expect("report")
            .expect("policy");
        assert_eq!(totals.replicas, 1);
        assert_eq!(totals.slot, slot);
        assert_eq!(totals.versions[&version("2.1.0")].calls, 10);
        assert!(
            !totals.versions.contains_key(&version("3.0.0")),
            "a version without weight is not counted"
        );
        // The same report again counts once; a later count of the slot replaces it.
        store
            .record_observations(&svc, &a, t0)
            .await
            .expect("again");
        let b = report("gw-b", slot - 1, &[("2.1.0", 12, 6)]);
        store.record_observations(&svc, &b, t0).await.expect("b");
        let a2 = report("gw-a", slot, &[("2.1.0", 11, 5)]);
        let totals = store
            .record_observations(&svc, &a2, t0)
            .await
            .expect("report")
            .expect("policy");
        assert_eq!(totals.replicas, 2);
        let canary = totals.versions[&version("2.1.0")];
        assert_eq!((canary.calls, canary.errors), (23, 11));
        assert_eq!(totals.versions[&version("2.0.0")].calls, 40);

        // 59 slots on, gw-b's slot has left the window; later still, everything has.
        let later = t0 + Duration::seconds(59);
        let empty = report("gw-c", slot + 59, &[]);
        let totals = store
            .record_observations(&svc, &empty, later)
            .await
            .expect("report")
            .expect("policy");
        assert_eq!(totals.versions[&version("2.1.0")].calls, 11);
        let totals = store
            .record_observations(&svc, &empty, later + Duration::seconds(5))
            .await
            .expect("report")
            .expect("policy");
        assert!(totals.versions.is_empty(), "{totals:?}");
        assert_eq!(totals.replicas, 0);

        // A rollback deletes the canary's counts.
        let c = report("gw-a", slot, &[("2.0.0", 5, 0), ("2.1.0", 5, 5)]);
        store.record_observations(&svc, &c, t0).await.expect("c");
        store
            .record_rollback(&svc, &version("2.1.0"), "errors", None, t0)
            .await
            .expect("rollback");
        let totals = store
            .record_observations(&svc, &report("gw-a", slot, &[]), t0)
            .await
            .expect("report")
            .expect("policy");
        assert_eq!(
            totals.versions.keys().collect::<Vec<_>>(),
            [&version("2.0.0")]
        );
        // Reports log no event; the rollback one.
        let log = store.events_since(start, 100).await.expect("events");
        assert_eq!(log.events.len(), 1);
    }
);

each_backend!(tokens_are_stored_listed_and_revoked, |store| {
    use mcp_fleet_model::{Scope, TokenRecord, parse_id_patterns};
    assert!(!store.has_tokens().await.expect("has"));
    let now = Utc::now();
    let now = now - Duration::nanoseconds(i64::from(now.timestamp_subsec_nanos() % 1000));
    let token = TokenRecord {
        id: "tok_0123456789ab".into(),
        secret_sha256: "ab".repeat(32),
        scopes: vec![Scope::ServersWrite, Scope::RoutingWrite],
        ids: parse_id_patterns("payments-*,billing").expect("patterns"),
        description: "payments CI".into(),
        created_at: now,
        expires_at: Some(now + Duration::days(90)),
        revoked_at: None,
    };
    store.create_token(&token).await.expect("create");
    assert!(store.has_tokens().await.expect("has"));
    assert_eq!(
        store.token(&token.id).await.expect("get"),
        Some(token.clone())
    );
    assert_eq!(store.token("tok_nope").await.expect("get"), None);
    assert_eq!(
        store.tokens().await.expect("list"),
        std::slice::from_ref(&token)
    );
    assert!(store.revoke_token(&token.id, now).await.expect("revoke"));
    assert!(
        !store.revoke_token(&token.id, now).await.expect("again"),
        "already revoked"
    );
    let revoked = store.token(&token.id).await.expect("get").expect("kept");
    assert_eq!(revoked.revoked_at, Some(now));
    assert!(!revoked.is_active(now));
    // Revoked tokens still count: revoking them all must not open writes.
    assert!(store.has_tokens().await.expect("has"));
});

each_backend!(writes_record_who_made_them, |store| {
    let mut r = reg("owned", &[]);
    r.updated_by = Some("tok_a".into());
    store.upsert(r, Utc::now()).await.expect("upsert");
    store
        .upsert(reg("open", &[]), Utc::now())
        .await
        .expect("upsert");
    let owned = store.get(&id("owned")).await.expect("get").expect("there");
    assert_eq!(owned.updated_by.as_deref(), Some("tok_a"));
    let listed = store.list(&any()).await.expect("list");
    assert_eq!(
        listed
            .entries
            .iter()
            .filter(|e| e.updated_by.is_some())
            .count(),
        1
    );
    assert_eq!(
        store.count_entries(Some("tok_a")).await.expect("count"),
        (2, 1)
    );
    assert_eq!(store.count_entries(None).await.expect("count"), (2, 0));

    let before = store.current_revision().await.expect("rev");
    assert!(
        store
            .delete_by(&id("owned"), Some("tok_a"))
            .await
            .expect("delete")
    );
    let log = store.events_since(before, 10).await.expect("events");
    let deleted = log.events.last().expect("an event");
    assert_eq!(deleted.kind, EventKind::Deleted);
    let data: serde_json::Value = serde_json::from_str(&deleted.data).expect("json");
    assert_eq!(data, json!({"id": "owned", "updatedBy": "tok_a"}));
});

/// The lease times of the tests below: short, as the tests wait for leases to lapse.
const TTL: std::time::Duration = std::time::Duration::from_millis(400);
const GRACE: std::time::Duration = std::time::Duration::from_millis(200);

each_backend!(replicas_share_the_shards_fairly_and_disjointly, |store| {
    let first = store
        .renew_leases("a", TTL, GRACE, &[])
        .await
        .expect("renew a");
    assert_eq!(
        (first.held.len(), first.replicas),
        (LEASE_SHARDS as usize, 1),
        "alone, a replica holds every shard"
    );
    assert!(first.taken_over.is_empty(), "fresh leases: {first:?}");
    let b = store
        .renew_leases("b", TTL, GRACE, &[])
        .await
        .expect("renew b");
    assert_eq!((b.held.len(), b.replicas), (0, 2), "nothing free yet");
    // The highest shards go past the share. Shard 63 has a probe in flight: all of them wait out
    // the grace, and go together.
    let a = store
        .renew_leases("a", TTL, GRACE, &[63])
        .await
        .expect("renew a");
    assert_eq!(a.held, (0..32).collect::<Vec<_>>(), "{a:?}");
    assert_eq!(a.released.len(), 32, "{a:?}");
    let b = store
        .renew_leases("b", TTL, GRACE, &[])
        .await
        .expect("renew b");
    assert!(b.held.is_empty(), "not before the grace: {b:?}");
    // The released shards are free once the grace has passed (renewing b meanwhile).
    let b = mcp_fleet_test_support::poll("b to take the released shards", || async {
        let b = store
            .renew_leases("b", TTL, GRACE, &[])
            .await
            .expect("renew b");
        store
            .renew_leases("a", TTL, GRACE, &[])
            .await
            .expect("renew a");
        (b.held.len() == 32).then_some(b)
    })
    .await;
    assert!(b.taken_over.is_empty(), "released, not expired: {b:?}");
    let a = store
        .renew_leases("a", TTL, GRACE, &[])
        .await
        .expect("renew a");
    let mut all: Vec<u32> = a.held.iter().chain(&b.held).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..LEASE_SHARDS).collect::<Vec<_>>(),
        "disjoint, covering"
    );
});

each_backend!(
    an_expired_lease_is_taken_over_and_a_released_one_at_once,
    |store| {
        store
            .renew_leases("a", TTL, GRACE, &[])
            .await
            .expect("renew a");
        // `a` stops renewing (it died): `b` takes everything once the lease lapses, and says whose.
        let b = mcp_fleet_test_support::poll("b to take over from a", || async {
            let b = store
                .renew_leases("b", TTL, GRACE, &[])
                .await
                .expect("renew b");
            (b.held.len() == LEASE_SHARDS as usize).then_some(b)
        })
        .await;
        assert_eq!(b.replicas, 1, "a's liveness expired with its leases");
        assert_eq!(b.taken_over.len(), LEASE_SHARDS as usize, "{b:?}");
        assert!(b.taken_over.iter().all(|(_, was)| was == "a"));
        // A replica shutting down hands its shards over with no wait.
        store.release_leases("b").await.expect("release");
        let c = store
            .renew_leases("c", TTL, GRACE, &[])
            .await
            .expect("renew c");
        assert_eq!(
            (c.held.len(), c.taken_over.len()),
            (LEASE_SHARDS as usize, 0)
        );
    }
);

each_backend!(only_the_write_that_changes_a_status_learns_of_it, |store| {
    store
        .upsert(reg("s", &[]), Utc::now())
        .await
        .expect("create");
    let (rows, _) = store.health_rows(None).await.expect("rows");
    let row = rows.iter().find(|r| r.id == id("s")).expect("row");
    assert!(row.last_checked_at.is_none());
    let at = Utc::now();
    let down = check(row, HealthStatus::Down, at);
    // Two replicas write the same finding: one change, one event, one writer told of it.
    let one = store
        .record_checks(std::slice::from_ref(&down))
        .await
        .expect("record");
    let two = store.record_checks(&[down]).await.expect("record");
    assert_eq!(one[0].changed_from, Some(HealthStatus::Unknown));
    assert_eq!(two[0].changed_from, None);
    let log = store.events_since(0, 100).await.expect("events");
    let statuses = log.events.iter().filter(|e| e.kind == EventKind::Status);
    assert_eq!(statuses.count(), 1);
    let (rows, _) = store.health_rows(None).await.expect("rows");
    assert_eq!(
        rows[0].last_checked_at.map(|t| t.timestamp_millis()),
        Some(at.timestamp_millis()),
        "a replica taking the entry over schedules from its last check"
    );
});
/// Every commit that takes a revision is announced to listeners on PostgreSQL, through any
/// connection (here another store on the same database), a rolled-back one never; SQLite has
/// no listener (its readers poll).
#[tokio::test]
async fn commits_are_announced_to_listeners() {
    for db in mcp_fleet_test_support::all_backends().await {
        let store = connect(&db.url).await.expect("open");
        let Some(mut commits) = store.listen().await.expect("listen") else {
            assert_eq!(db.backend, "sqlite", "only SQLite may lack a listener");
            continue;
        };
        let writer = connect(&db.url).await.expect("a second store");
        let next = async |commits: &mut Box<dyn mcp_fleet_store::Commits>| {
            tokio::time::timeout(std::time::Duration::from_secs(10), commits.next())
                .await
                .expect("no announcement in time")
                .expect("listen")
        };
        writer
            .upsert(reg("a", &[]), Utc::now())
            .await
            .expect("upsert");
        let rev = writer.current_revision().await.expect("revision");
        assert_eq!(next(&mut commits).await, Some(rev));
        // A refused (rolled back) registration is not announced: the next one is the delete.
        let caps = EntryCaps {
            max_entries: Some(1),
            ..EntryCaps::default()
        };
        let refused = writer.upsert_capped(reg("b", &[]), Utc::now(), &caps).await;
        assert!(
            matches!(refused, Err(StoreError::CapReached(_))),
            "{refused:?}"
        );
        writer.delete(&id("a")).await.expect("delete");
        assert_eq!(next(&mut commits).await, Some(rev + 1));
    }
}

/// The entry caps are counted inside the registration's transaction: writers racing through
/// separate stores (as replicas do) never pass them; a replacement at the cap is allowed.
#[tokio::test]
async fn entry_caps_hold_for_racing_writers() {
    const MAX: u64 = 5;
    for db in mcp_fleet_test_support::all_backends().await {
        let caps = EntryCaps {
            max_entries: Some(MAX),
            max_per_principal: Some(2),
        };
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..4 {
            let store = connect(&db.url).await.expect("open");
            let caps = caps.clone();
            writers.spawn(async move {
                let mut created = 0;
                for i in 0..6 {
                    let mut r = reg(&format!("w{w}-{i}"), &[]);
                    // Writer 3 writes as one principal, capped at 2.
                    r.updated_by = (w == 3).then(|| "tok_3".to_owned());
                    match store.upsert_capped(r, Utc::now(), &caps).await {
                        Ok(_) => created += 1,
                        Err(StoreError::CapReached(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                created
            });
        }
        let mut created = 0;
        while let Some(n) = writers.join_next().await {
            created += n.expect("writer");
        }
        let store = connect(&db.url).await.expect("open");
        let (all, by_3) = store.count_entries(Some("tok_3")).await.expect("count");
        assert_eq!((created, all), (MAX, MAX), "{}", db.backend);
        assert!(by_3 <= 2, "{}: {by_3}", db.backend);
        let existing = store.list(&any()).await.expect("list").entries[0]
            .id
            .clone();
        let replaced = store
            .upsert_capped(reg(existing.as_str(), &["new"]), Utc::now(), &caps)
            .await;
        assert!(
            matches!(replaced, Ok(Upserted::Replaced(_))),
            "{replaced:?}"
        );
        let refused = store
            .upsert_capped(reg("one-more", &[]), Utc::now(), &caps)
            .await;
        match refused {
            Err(StoreError::CapReached(cap)) => {
                assert_eq!(
                    cap,
                    CapReached::Entries {
                        held: MAX,
                        max: MAX
                    }
                );
            }
            other => panic!("{}: {other:?}", db.backend),
        }
    }
}
