//! Graceful shutdown of `mcp-fleet serve`: on SIGTERM a request in flight is answered, not
//! reset, the health worker stops, and the process exits 0 promptly.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::common::{PROCESS_DEADLINE, metric, serve_command, spawn_command};

#[tokio::test]
async fn sigterm_answers_the_request_in_flight_and_stops_the_health_worker() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.env("RUST_LOG", "warn,mcp_fleet_registry::health=info")
        .stderr(Stdio::piped());
    let mut running = spawn_command(cmd).await;
    let (child, url) = (&mut running.child, running.url.clone());
    // Read stderr all along, so the child never blocks on a full pipe.
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out).await;
        out
    });

    let http = reqwest::Client::builder()
        .timeout(PROCESS_DEADLINE)
        .build()
        .expect("client");
    let res = http
        .post(format!("{url}/servers"))
        .json(&json!({
            "id": "inflight",
            "name": "In flight",
            "url": "http://127.0.0.1:9",
            "version": "1.0.0",
        }))
        .send()
        .await
        .expect("register");
    assert_eq!(res.status(), 201);
    let res = http
        .get(format!("{url}/servers?status=any"))
        .send()
        .await
        .expect("list");
    let revision = res.headers()["x-registry-revision"]
        .to_str()
        .expect("revision")
        .to_owned();

    // A blocking listing that would wait 5 s for a change that never comes.
    let poll = tokio::spawn({
        let (http, url) = (http.clone(), url.clone());
        async move {
            let res = http
                .get(format!(
                    "{url}/servers?status=any&wait={revision}&timeout=5s"
                ))
                .send()
                .await
                .expect("long-poll answered, not reset");
            let status = res.status().as_u16();
            let body: Value = res.json().await.expect("long-poll body read to the end");
            (status, body, Instant::now())
        }
    });
    // In flight: the long-poll and this scrape.
    mcp_fleet_test_support::eventually(PROCESS_DEADLINE, "the long-poll in flight", || async {
        (metric(&url, "mcp_fleet_http_requests_in_flight").await? >= 2).then_some(())
    })
    .await;

    let pid = child.id().expect("pid");
    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());

    let (status, body, answered) = tokio::time::timeout(PROCESS_DEADLINE, poll)
        .await
        .expect("long-poll answered in time")
        .expect("long-poll task");
    assert_eq!(status, 200);
    assert_eq!(body["servers"][0]["id"], "inflight");
    let answered_in = answered - signalled;
    // Shutdown ends long-polls at once rather than letting them run out their 5 s.
    assert!(
        answered_in < Duration::from_secs(4),
        "long-poll answered {answered_in:?} after SIGTERM"
    );
    let exit = tokio::time::timeout(PROCESS_DEADLINE, child.wait())
        .await
        .expect("did not exit after SIGTERM")
        .expect("wait");
    let exited_in = signalled.elapsed();
    assert!(exit.success(), "exit after SIGTERM: {exit}");
    let logs = tokio::time::timeout(PROCESS_DEADLINE, logs)
        .await
        .expect("stderr closed")
        .expect("stderr task");
    assert!(
        logs.contains("health worker stopped"),
        "the health worker did not stop cleanly: {logs}"
    );
    eprintln!(
        "shutdown: the in-flight long-poll answered {answered_in:?} and the process exited 0 \
         {exited_in:?} after SIGTERM"
    );
}

/// `mcp-fleet serve 2>&1 | head -1`: once the reader of standard error is gone, log lines fail
/// to write. That must not take the process down with it, nor leave it deaf to SIGTERM (the
/// log writer used to panic in the task that turns signals into shutdown).
#[tokio::test]
async fn sigterm_stops_serve_after_the_log_reader_is_gone() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.env("RUST_LOG", "info").stderr(Stdio::piped());
    let mut running = spawn_command(cmd).await;
    // The reader of the logs goes away, as `head` does.
    drop(running.child.stderr.take().expect("stderr"));
    // A request logs a line, which now fails to write; the registry keeps answering.
    let status = reqwest::get(format!("{}/healthz", running.url))
        .await
        .expect("registry answers after its log reader left")
        .status();
    assert_eq!(status, 200);
    running.terminate().await;
}
