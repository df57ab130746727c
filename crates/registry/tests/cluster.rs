//! Several registry replicas on one PostgreSQL (issue #23): a write acknowledged by one replica
//! reaches the change feed and the read cache of another at once, revisions mean the same on
//! every replica, and the limits that must be global (entry caps, tokens, revocation) are.
//!
//! The replicas' feeds poll the database only every minute here, so what arrives within a
//! test step was announced (PostgreSQL `LISTEN`/`NOTIFY`), not polled for.

use std::time::{Duration, Instant};

use chrono::Utc;
use mcp_fleet_model::{Scope, parse_id_patterns};
use mcp_fleet_registry::auth::tokens::issue;
use mcp_fleet_registry::limits::LimitsConfig;
use mcp_fleet_registry::{Config, FeedConfig};
use mcp_fleet_store::StoreOptions;
use serde_json::{Value, json};

use crate::common::seed_body;
use crate::feed::{Registry, Sse, header, start_configured};

/// How long any one step may take before the test fails (never how long it waits).
const STEP: Duration = Duration::from_secs(10);

/// Two replicas, `a` and `b`, with `config` on a fresh PostgreSQL database; `None` without a
/// test cluster (a failure under `CI=true`).
async fn replicas(config: Config) -> Option<(Registry, Registry)> {
    let db = mcp_fleet_test_support::postgres().await?;
    let feed = FeedConfig {
        poll: Duration::from_secs(60),
        ..FeedConfig::default()
    };
    let a = start_configured(
        db.shared(),
        config.clone(),
        feed.clone(),
        StoreOptions::default(),
    )
    .await;
    let b = start_configured(db, config, feed, StoreOptions::default()).await;
    Some((a, b))
}

async fn get(reg: &Registry, path: &str) -> reqwest::Response {
    reg.http
        .get(format!("{}{path}", reg.url))
        .send()
        .await
        .expect("GET")
}

fn ids(body: &Value) -> Vec<String> {
    body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_write_on_one_replica_reaches_streams_and_long_polls_on_another() {
    let Some((a, b)) = replicas(Config::default()).await else {
        return;
    };
    let mut sse = b.subscribe().await;
    let res = get(&b, "/servers?status=any").await;
    let rev = header(&res, "x-registry-revision").to_owned();
    let poll = tokio::spawn({
        let url = format!("{}/servers?status=any&wait={rev}", b.url);
        let http = b.http.clone();
        async move { http.get(url).send().await.expect("GET") }
    });
    let answer: Value = a
        .post(&seed_body("from-a", &[]))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["id"], "from-a");
    let e = sse.expect().await;
    assert_eq!(
        (e.event.as_str(), &e.json()["id"]),
        ("created", &json!("from-a"))
    );
    assert_eq!(e.id, Some(rev.parse::<i64>().expect("revision") + 1));
    let res = tokio::time::timeout(STEP, poll)
        .await
        .expect("the long poll on b never answered")
        .expect("poll");
    assert_eq!(
        header(&res, "x-registry-revision"),
        e.id.expect("id").to_string()
    );
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(ids(&body), ["from-a"]);
}

/// A consumer of one replica's stream reconnects to the other with `Last-Event-ID`: it gets
/// every event after the last it read, once each, in order, whichever replica took the writes.
#[tokio::test]
async fn resuming_on_another_replica_misses_and_repeats_nothing() {
    let Some((a, b)) = replicas(Config::default()).await else {
        return;
    };
    let mut sse = a.subscribe().await;
    let mut written = Vec::new();
    for i in 0..40 {
        let id = format!("s{i}");
        let replica = if i % 2 == 0 { &a } else { &b };
        replica.post(&seed_body(&id, &[])).await;
        written.push(id);
    }
    // Read half, then go away mid-stream (the replica is drained, say).
    let mut last = None;
    for id in &written[..20] {
        let e = sse.expect().await;
        assert_eq!(&e.json()["id"], id);
        last = e.id;
    }
    drop(sse);
    let last = last.expect("events have ids");
    for i in 40..60 {
        let id = format!("s{i}");
        let replica = if i % 3 == 0 { &a } else { &b };
        replica.post(&seed_body(&id, &[])).await;
        written.push(id);
    }
    let res = b.events("", Some(last)).await;
    assert_eq!(res.status(), 200);
    let mut sse = Sse::new(res);
    for (n, id) in written[20..].iter().enumerate() {
        let e = sse.expect().await;
        assert_eq!(
            e.id,
            Some(last + 1 + n as i64),
            "event {n} after the resume"
        );
        assert_eq!(&e.json()["id"], id, "event {n} after the resume");
    }
    // Nothing repeated: the next event is the next write, made on the first replica.
    a.post(&seed_body("after", &[])).await;
    let e = sse.expect().await;
    assert_eq!(e.id, Some(last + 41));
    assert_eq!(e.json()["id"], "after");
}

/// Acceptance (issue #23, item 4): after a write is acknowledged by one replica, a read on the
/// other reflects it within 100 ms, although that replica's cached answers may be kept a
/// minute: the commit's announcement voids them. The median is held to the bound; every write
/// to a second, so that a machine busy with other builds cannot fail it while a cache kept past
/// an announcement (a minute) still would. Both figures are printed.
#[tokio::test]
async fn a_read_on_another_replica_reflects_a_write_within_100_ms() {
    const WRITES: usize = 20;
    const BOUND: Duration = Duration::from_millis(100);
    let config = Config {
        read_cache_ttl: Duration::from_secs(60),
        ..Config::default()
    };
    let Some((a, b)) = replicas(config).await else {
        return;
    };
    let mut took = Vec::new();
    for i in 0..WRITES {
        let id = format!("r{i:02}");
        // b has the answer without this entry cached.
        let before: Value = get(&b, "/servers?status=any&limit=1000")
            .await
            .json()
            .await
            .expect("JSON");
        assert!(!ids(&before).contains(&id));
        a.post(&seed_body(&id, &[])).await;
        let acknowledged = Instant::now();
        loop {
            let body: Value = get(&b, "/servers?status=any&limit=1000")
                .await
                .json()
                .await
                .expect("JSON");
            if ids(&body).contains(&id) {
                break;
            }
            assert!(
                acknowledged.elapsed() < STEP,
                "b never showed {id} (its cache lives a minute)"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.push(acknowledged.elapsed());
    }
    took.sort();
    let (median, max) = (took[WRITES / 2], took[WRITES - 1]);
    eprintln!("write on a to read on b: median {median:?}, max {max:?} over {WRITES} writes");
    assert!(
        max < BOUND,
        "slowest of {WRITES}: {max:?} (median {median:?})"
    );
}

/// `--max-entries` holds for the cluster: registrations racing on two replicas never take it
/// past the cap, and replacing an entry at the cap still works.
#[tokio::test]
async fn max_entries_holds_across_replicas() {
    const MAX: u64 = 10;
    let config = Config {
        limits: LimitsConfig {
            max_entries: Some(MAX),
            ..LimitsConfig::default()
        },
        ..Config::default()
    };
    let Some((a, b)) = replicas(config).await else {
        return;
    };
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (http, url) = if i % 2 == 0 {
            (a.http.clone(), a.url.clone())
        } else {
            (b.http.clone(), b.url.clone())
        };
        racing.spawn(async move {
            let res = http
                .post(format!("{url}/servers"))
                .json(&seed_body(&format!("cap{i}"), &[]))
                .send()
                .await
                .expect("POST");
            let status = res.status().as_u16();
            let body: Value = res.json().await.expect("JSON");
            (status, body)
        });
    }
    let mut created = 0;
    while let Some(outcome) = racing.join_next().await {
        let (status, body) = outcome.expect("task");
        match status {
            201 => created += 1,
            507 => assert_eq!(body["code"], "limit-reached", "{body}"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, MAX);
    let listed: Value = get(&b, "/servers?status=any&limit=1000")
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(ids(&listed).len() as u64, MAX);
    // A replacement does not grow the registry: allowed at the cap, on either replica.
    let existing = ids(&listed)[0].clone();
    let mut body = seed_body(&existing, &[]);
    body["version"] = json!("2.0.0");
    assert_eq!(b.post(&body).await.status(), 200);
}

/// A token issued through one replica's database works on the other, and revoking it is
/// honoured by both on their next request.
#[tokio::test]
async fn tokens_and_revocation_are_global() {
    let Some((a, b)) = replicas(Config::default()).await else {
        return;
    };
    let store = mcp_fleet_store::connect(&a.db_url).await.expect("store");
    let now = Utc::now();
    let (token, record) = issue(
        vec![Scope::ServersWrite],
        parse_id_patterns("*").expect("patterns"),
        "test".into(),
        None,
        now,
    )
    .expect("issue");
    store.create_token(&record).await.expect("store token");
    let post = |reg: &Registry, id: &str, token: Option<&str>| {
        let mut req = reg
            .http
            .post(format!("{}/servers", reg.url))
            .json(&seed_body(id, &[]));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.expect("POST").status().as_u16() }
    };
    // Both replicas now need a token, and both take this one.
    assert_eq!(post(&a, "t-none", None).await, 401);
    assert_eq!(post(&b, "t-none", None).await, 401);
    assert_eq!(post(&a, "t-a", Some(&token)).await, 201);
    assert_eq!(post(&b, "t-b", Some(&token)).await, 201);
    assert!(
        store
            .revoke_token(&record.id, Utc::now())
            .await
            .expect("revoke")
    );
    assert_eq!(post(&a, "t-a2", Some(&token)).await, 401);
    assert_eq!(post(&b, "t-b2", Some(&token)).await, 401);
}

/// A replica whose listening session is cut (here by `pg_terminate_backend`, as a failover or
/// a connection reaper would) reconnects and reads the log by revision: a write made meanwhile
/// still reaches its streams, once, without waiting for the (minute-long) poll.
#[tokio::test]
async fn a_lost_listening_session_misses_nothing() {
    let Some((a, b)) = replicas(Config::default()).await else {
        return;
    };
    let mut sse = b.subscribe().await;
    a.post(&seed_body("before", &[])).await;
    let first = sse.expect().await;
    assert_eq!(first.json()["id"], "before");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&a.db_url)
        .await
        .expect("connect");
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("terminate the listening sessions");
    assert_eq!(cut, [true, true], "each replica listens on one session");
    for id in ["during-1", "during-2"] {
        a.post(&seed_body(id, &[])).await;
    }
    for (n, id) in ["during-1", "during-2"].iter().enumerate() {
        let e = sse.expect().await;
        assert_eq!(e.id, first.id.map(|f| f + 1 + n as i64));
        assert_eq!(&e.json()["id"], id);
    }
    // Listening again: the next write arrives as before.
    b.post(&seed_body("after", &[])).await;
    let e = sse.expect().await;
    assert_eq!(
        (e.id, &e.json()["id"]),
        (first.id.map(|f| f + 3), &json!("after"))
    );
}
