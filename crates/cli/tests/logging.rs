//! `--log-format json` (and `MCP_FLEET_LOG_FORMAT`): every log line is a JSON object, and each
//! answered request is logged inside its span with method, route pattern, status and latency.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::{run_code, serve_command, spawn_command};

#[tokio::test]
async fn json_logs_carry_the_request_span() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--no-health-worker"])
        .env("MCP_FLEET_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,mcp_fleet_registry=debug")
        .stderr(Stdio::piped());
    let mut running = spawn_command(cmd).await;
    let (child, url) = (&mut running.child, running.url.clone());

    let res = reqwest::get(format!("{url}/servers/nobody"))
        .await
        .expect("GET");
    assert_eq!(res.status(), 404);

    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = Vec::new();
        while let Some(line) = stderr.next_line().await.expect("stderr") {
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            assert!(
                v["level"].is_string() && v["timestamp"].is_string(),
                "{line}"
            );
            if v["fields"]["message"] == "answered" {
                return v;
            }
            seen.push(line);
        }
        panic!("no request was logged: {seen:#?}");
    })
    .await
    .expect("the request was logged in time");
    let span = &answered["span"];
    assert_eq!(span["name"], "request", "{answered}");
    assert_eq!(span["method"], "GET");
    assert_eq!(
        span["route"], "/servers/{id}",
        "the pattern, not the raw path"
    );
    assert_eq!(span["status"], 404);
    assert!(
        span["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{answered}"
    );
    let _ = child.start_kill();
}

#[tokio::test]
async fn an_unknown_log_format_is_one_clear_error() {
    let (code, _, err) = run_code(&["status", "--log-format", "xml"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--log-format") && err.contains("json"),
        "{err}"
    );
}

/// Text logs written to a pipe or a file (`demo 2> demo.err`) carry no ANSI colour codes.
#[tokio::test]
async fn text_logs_to_a_pipe_have_no_colour_codes() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--no-health-worker"])
        .env("MCP_FLEET_LOG_FORMAT", "text")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info,mcp_fleet_registry=debug")
        .stderr(Stdio::piped());
    let mut running = spawn_command(cmd).await;
    let (child, url) = (&mut running.child, running.url.clone());

    let res = reqwest::get(format!("{url}/servers/nobody"))
        .await
        .expect("GET");
    assert_eq!(res.status(), 404);

    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let lines = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = Vec::new();
        while let Some(line) = stderr.next_line().await.expect("stderr") {
            let done = line.contains("answered");
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("no request was logged: {seen:#?}");
    })
    .await
    .expect("the request was logged in time");
    for line in &lines {
        assert!(
            !line.contains('\u{1b}'),
            "colour codes in a piped log: {line:?}"
        );
    }
    let _ = child.start_kill();
}

/// The registry's log of `route set` and `route rollback` names versions as people write them
/// (`weights="2.0.0=90, 2.1.0=10"`), never in Rust Debug form (`Version(Version { major: 2, … })`).
#[tokio::test]
async fn routing_logs_show_versions_not_rust_debug_text() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--no-health-worker"])
        .env("MCP_FLEET_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    let mut running = spawn_command(cmd).await;
    let url = running.url.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    for (id, version) in [("catalog-a", "2.0.0"), ("catalog-b", "2.1.0")] {
        let file = dir.path().join(format!("{id}.json"));
        let entry = serde_json::json!({
            "id": id, "service": "catalog", "name": "Catalog",
            "url": "http://127.0.0.1:9", "version": version,
        });
        std::fs::write(&file, entry.to_string()).expect("write");
        let file = file.to_str().expect("utf-8 path");
        let (ok, _, err) =
            crate::common::run(&["register", "--registry", &url, "--file", file]).await;
        assert!(ok, "{err}");
    }
    let (ok, _, err) = crate::common::run(&[
        "route",
        "set",
        "--registry",
        &url,
        "catalog",
        "2.0.0=90",
        "2.1.0=10",
    ])
    .await;
    assert!(ok, "{err}");

    let mut stderr = BufReader::new(running.child.stderr.take().expect("stderr")).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = stderr.next_line().await.expect("stderr") {
            if line.contains("routing policy set") {
                return line;
            }
        }
        panic!("no routing log line");
    })
    .await
    .expect("the routing change was logged in time");
    assert!(line.contains("2.0.0=90, 2.1.0=10"), "{line}");
    assert!(!line.contains("Version("), "{line}");
    let _ = running.child.start_kill();
}
