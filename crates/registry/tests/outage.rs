//! Database outages: PostgreSQL stopped mid-run (reads served stale, writes `503`, `/readyz`
//! `503`, recovery without a restart) and an SQLite file locked by another connection.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mcp_fleet_registry::{AppState, Config};
use mcp_fleet_test_support::{PgCluster, eventually};
use reqwest::Response;
use serde_json::Value;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::common::{fast_health, live_server, seed_body_at};

/// A registry (with its health worker) on 127.0.0.1:0 over `database_url`; returns its URL.
async fn start(database_url: &str, shutdown: &CancellationToken) -> String {
    let store = mcp_fleet_store::connect(database_url)
        .await
        .expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let state = AppState::new(store, Config::default());
    state
        .start_health_worker(fast_health(), shutdown.clone())
        .expect("start health worker");
    tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));
    url
}

fn is_stale(res: &Response) -> bool {
    res.headers()
        .get("x-registry-stale")
        .is_some_and(|v| v == "true")
}

fn ids(body: &Value) -> BTreeSet<String> {
    body["servers"]
        .as_array()
        .expect("servers array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Asserts `res` is a `503` `database-unavailable` problem with `Retry-After`.
async fn assert_unavailable(res: Response, what: &str) {
    assert_eq!(res.status(), 503, "{what}");
    assert!(
        res.headers().contains_key("retry-after"),
        "{what}: no Retry-After"
    );
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    let body: Value = res.json().await.expect("problem body");
    assert_eq!(body["code"], "database-unavailable", "{what}: {body}");
}

/// Every wait below has a deadline; the whole test takes about 15 s.
#[tokio::test]
async fn reads_stay_up_and_writes_fail_fast_while_postgres_is_down() {
    const DEADLINE: Duration = Duration::from_secs(30);
    let Some(cluster) = PgCluster::start().await else {
        return;
    };
    let began = Instant::now();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let live = live_server(shutdown.clone()).await;
    let url = start(&cluster.url(), &shutdown).await;
    let http = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .expect("client");
    let register = |id: String| {
        let (http, url, body) = (http.clone(), url.clone(), seed_body_at(&live, &id, &["o"]));
        async move {
            let res = http.post(format!("{url}/servers")).json(&body).send().await;
            res.expect("POST /servers")
        }
    };
    let mut acked = BTreeSet::new();
    for n in 0..5 {
        let id = format!("before-{n}");
        let res = register(id.clone()).await;
        assert!(res.status().is_success(), "{id}: {}", res.status());
        acked.insert(id);
    }
    // Read everything once, so that answers are known.
    let list = format!("{url}/servers?status=any");
    let res = http.get(&list).send().await.expect("list");
    assert_eq!(ids(&res.json().await.expect("list body")), acked);
    let status = http
        .get(format!("{url}/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(status.status(), 200);
    for id in &acked {
        let res = http.get(format!("{url}/servers/{id}")).send().await;
        assert_eq!(res.expect("get").status(), 200);
    }

    cluster.stop().await;
    let down_at = Instant::now();

    // Cached answers expire within the TTL (1 s); then the last good answers are served stale.
    let stale_list: Value = eventually(DEADLINE, "a stale listing", || async {
        let res = http.get(&list).send().await.ok()?;
        assert_eq!(res.status(), 200, "listing during the outage");
        is_stale(&res).then_some(())?;
        assert_eq!(res.headers()["warning"], "110 - \"Response is Stale\"");
        res.json().await.ok()
    })
    .await;
    assert_eq!(ids(&stale_list), acked);
    eventually(DEADLINE, "a stale /status", || async {
        let res = http.get(format!("{url}/status")).send().await.ok()?;
        assert_eq!(res.status(), 200, "/status during the outage");
        is_stale(&res).then_some(())
    })
    .await;
    for id in &acked {
        let res = http.get(format!("{url}/servers/{id}")).send().await;
        let res = res.expect("get during the outage");
        assert_eq!(res.status(), 200, "{id}");
        assert!(is_stale(&res), "{id} is not marked stale");
        let body: Value = res.json().await.expect("entry");
        assert_eq!(body["id"], id.as_str());
    }
    // A question never answered before has no last known answer.
    let res = http.get(format!("{url}/servers?tags=never")).send().await;
    assert_unavailable(res.expect("unknown listing"), "unknown listing").await;

    let write_at = Instant::now();
    let res = register("during".into()).await;
    let write_failed_in = write_at.elapsed();
    assert_unavailable(res, "write during the outage").await;
    assert!(
        write_failed_in < Duration::from_secs(5),
        "a write took {write_failed_in:?} to fail"
    );
    let res = http.get(format!("{url}/readyz")).send().await;
    assert_unavailable(res.expect("readyz"), "/readyz during the outage").await;

    cluster.resume().await.expect("restart PostgreSQL");
    let up_at = Instant::now();
    let outage = up_at - down_at;
    eventually(DEADLINE, "a write after the restart", || async {
        let res = register("after-0".into()).await;
        res.status().is_success().then_some(())
    })
    .await;
    let recovered_in = up_at.elapsed();
    acked.insert("after-0".into());
    for n in 1..5 {
        let id = format!("after-{n}");
        let res = register(id.clone()).await;
        assert!(res.status().is_success(), "{id}: {}", res.status());
        acked.insert(id);
    }
    let res = http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(res.status(), 200);
    let res = http.get(&list).send().await.expect("list after");
    assert_eq!(res.status(), 200);
    assert!(!is_stale(&res), "still stale after recovery");
    assert_eq!(ids(&res.json().await.expect("list body")), acked);
    // The health worker resumed too: it probes and records entries registered after the outage.
    eventually(DEADLINE, "after-4 probed healthy", || async {
        let res = http
            .get(format!("{url}/servers/after-4"))
            .send()
            .await
            .ok()?;
        let body: Value = res.json().await.ok()?;
        (body["status"] == "healthy").then_some(())
    })
    .await;
    eprintln!(
        "outage test: {:?} in all; a write failed in {write_failed_in:?} during the {outage:?} \
         outage; writes succeeded {recovered_in:?} after PostgreSQL was back",
        began.elapsed()
    );
}

/// Another connection holds SQLite's write lock: a registration answers `503` after the busy
/// timeout (5 s) rather than hanging, and the file is intact afterwards.
#[tokio::test]
async fn a_locked_sqlite_file_fails_writes_cleanly() {
    let db = mcp_fleet_test_support::sqlite();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let url = start(&db.url, &shutdown).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(50))
        .build()
        .expect("client");
    let body = |id: &str| seed_body_at("http://127.0.0.1:9", id, &["lock"]);
    for id in ["kept-1", "kept-2"] {
        let res = http
            .post(format!("{url}/servers"))
            .json(&body(id))
            .send()
            .await;
        assert_eq!(res.expect("register").status(), 201);
    }

    let mut locker = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("second connection");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .expect("lock");
    let at = Instant::now();
    let res = http
        .post(format!("{url}/servers"))
        .json(&body("blocked"))
        .send()
        .await
        .expect("register while locked");
    let failed_in = at.elapsed();
    assert_unavailable(res, "write while locked").await;
    assert!(
        failed_in < Duration::from_secs(30),
        "a locked write took {failed_in:?}"
    );
    eprintln!("locked SQLite: the write failed in {failed_in:?}");
    sqlx::query("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("unlock");

    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut locker)
        .await
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(locker);
    let res = http
        .post(format!("{url}/servers"))
        .json(&body("after"))
        .send()
        .await;
    assert_eq!(res.expect("register after unlock").status(), 201);
    let res = http.get(format!("{url}/servers?status=any")).send().await;
    let listed = ids(&res.expect("list").json().await.expect("body"));
    let want: BTreeSet<String> = ["kept-1", "kept-2", "after"].map(String::from).into();
    assert_eq!(listed, want);
}
