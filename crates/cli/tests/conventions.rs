//! What a Consul user expects of the command: `watch`, `completions`, `man`, `version`, a
//! config file below flags and the environment, an access-log line per request, a LICENSE.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};

use crate::common::{PROCESS_DEADLINE, binary, serve_command, spawn_command};

/// The next line of `lines` for which `want` holds, within `within`; panics naming `what`
/// and the lines passed over.
async fn line_where<R: AsyncRead + Unpin>(
    lines: &mut Lines<BufReader<R>>,
    what: &str,
    within: Duration,
    want: impl Fn(&str) -> bool,
) -> String {
    let mut passed = Vec::new();
    let found = tokio::time::timeout(within, async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if want(&line) {
                return Some(line);
            }
            passed.push(line);
        }
        None
    })
    .await;
    match found {
        Ok(Some(line)) => line,
        Ok(None) => panic!("ended before {what}; passed over: {passed:#?}"),
        Err(_) => panic!("no {what} in time; passed over: {passed:#?}"),
    }
}

/// With the default log filter, the registry and the gateway log one line per request at
/// `info`, naming its method, route, status and latency.
#[tokio::test]
async fn one_access_log_line_per_request_at_info() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.arg("--no-health-worker")
        .env_remove("RUST_LOG")
        .env("MCP_FLEET_LOG_FORMAT", "text")
        .stderr(Stdio::piped());
    let mut registry = spawn_command(cmd).await;
    let url = registry.url.clone();
    let mut log = BufReader::new(registry.child.stderr.take().expect("stderr")).lines();
    let access = |l: &str| l.contains("mcp_fleet::access");

    let http = reqwest::Client::new();
    for path in ["/servers", "/servers/nobody", "/healthz"] {
        http.get(format!("{url}{path}")).send().await.expect("GET");
    }
    for (route, status) in [("/servers", 200), ("/servers/{id}", 404), ("/healthz", 200)] {
        let line = line_where(&mut log, "an access line", PROCESS_DEADLINE, access).await;
        assert!(
            line.contains(" INFO ")
                && line.contains("method=GET")
                && line.contains(&format!("route=\"{route}\""))
                && line.contains(&format!("status={status}"))
                && line.contains("latency_ms="),
            "{line}"
        );
    }
    // One line each: the next one is the next request's.
    http.get(format!("{url}/readyz")).send().await.expect("GET");
    let line = line_where(&mut log, "an access line", PROCESS_DEADLINE, access).await;
    assert!(line.contains("route=\"/readyz\""), "{line}");

    let mut gateway = binary()
        .args(["gateway", "--registry", &url, "--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .env("MCP_FLEET_LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn gateway");
    let mut stdout = BufReader::new(gateway.stdout.take().expect("stdout")).lines();
    let listening = line_where(
        &mut stdout,
        "the gateway's address",
        PROCESS_DEADLINE,
        |l| l.starts_with("gateway listening on "),
    )
    .await;
    let mcp = listening
        .trim_start_matches("gateway listening on ")
        .split_whitespace()
        .next()
        .expect("URL")
        .to_owned();
    let base = mcp.trim_end_matches("/mcp").to_owned();
    let mut log = BufReader::new(gateway.stderr.take().expect("stderr")).lines();
    http.get(format!("{base}/healthz"))
        .send()
        .await
        .expect("GET");
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET");
    http.post(&mcp)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("POST");
    for (method, route) in [("GET", "/healthz"), ("GET", "/metrics"), ("POST", "/mcp")] {
        let line = line_where(&mut log, "a gateway access line", PROCESS_DEADLINE, access).await;
        assert!(
            line.contains(" INFO ")
                && line.contains(&format!("method={method}"))
                && line.contains(&format!("route=\"{route}\""))
                && line.contains("status=")
                && line.contains("latency_ms="),
            "{line}"
        );
    }
    let _ = gateway.start_kill();
    registry.terminate().await;
}
