//! Probe failures as people read them: `status` and `check` show a short cause ("connection
//! refused"), not a Rust error chain, and no latency ("—") for a server never reached; the
//! chain stays in the entry's `lastErrorDetail`.

use std::time::Duration;

use crate::common::{run, run_code, serve_command, spawn_command};

#[tokio::test]
async fn status_and_check_show_short_causes_and_no_latency_when_never_reached() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--health-interval", "1s", "--health-timeout", "1s"]);
    let server = spawn_command(cmd).await;
    let reg = server.url.as_str();
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        reg,
        "--id",
        "dead",
        "--name",
        "Dead",
        "--url",
        &url,
        "--server-version",
        "1.0.0",
        "--health-check",
        "mcp",
    ])
    .await;
    assert!(ok, "{err}");

    let out = mcp_fleet_test_support::eventually(
        Duration::from_secs(20),
        "status to list the dead server",
        || async {
            let (code, out, _) = run_code(&["status", "--registry", reg]).await;
            (code == Some(1) && out.contains("dead")).then_some(out)
        },
    )
    .await;
    let line = out.lines().find(|l| l.contains("dead")).unwrap_or_default();
    assert!(line.contains("connection refused"), "{out}");
    for chain in ["os error", "tcp connect", "send discover request"] {
        assert!(
            !out.contains(chain),
            "status shows the chain ({chain}): {out}"
        );
    }

    let (ok, out, err) = run(&["get", "--registry", reg, "dead"]).await;
    assert!(ok, "{err}");
    let entry: serde_json::Value = serde_json::from_str(&out).expect("get prints JSON");
    assert_eq!(entry["lastError"], "connection refused", "{entry}");
    assert!(entry["latencyMs"].is_null(), "never reached: {entry}");
    let detail = entry["lastErrorDetail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("send discover request: ") && detail.contains("Connection refused"),
        "{entry}"
    );

    let (ok, out, err) = run(&["check", "--registry", reg, "dead"]).await;
    assert!(ok, "{err}");
    let row = out.lines().find(|l| l.contains("dead")).unwrap_or_default();
    assert!(
        row.contains("connection refused") && row.contains('—') && !row.contains(" ms"),
        "check shows the cause and no latency: {out}"
    );
    server.terminate().await;
}
