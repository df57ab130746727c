//! `mcp-fleet gateway` before its registry is up: it starts, serves an empty catalog, says so
//! once per attempt, and picks the fleet up when the registry comes; its start errors name
//! their cause once.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_fleet_sample_servers::Sample;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::common::{PROCESS_DEADLINE, binary, run_code, serve_command, spawn_command};

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Opens an MCP session with the gateway at `mcp` and returns its `tools/list` answer.
async fn list_tools(mcp: &str) -> Value {
    let http = reqwest::Client::new();
    let rpc = |id: u64, method: &str, params: Value| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let res = http
        .post(mcp)
        .header("accept", "application/json, text/event-stream")
        .json(&rpc(
            1,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "gateway-test", "version": "0"}}),
        ))
        .send()
        .await
        .expect("initialize");
    assert!(res.status().is_success(), "initialize: {}", res.status());
    let session = res
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session")
        .to_owned();
    let _ = res.text().await;
    let post = |body: Value| {
        http.post(mcp)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .send()
    };
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .expect("initialized");
    let text = post(rpc(2, "tools/list", json!({})))
        .await
        .expect("tools/list")
        .text()
        .await
        .expect("body");
    // A JSON body, or one SSE event holding it.
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|data| !data.is_empty())
        .unwrap_or(&text);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn tool_names(answer: &Value) -> Vec<String> {
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {answer}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_gateway_starts_before_its_registry_and_picks_up_the_fleet() {
    let port = free_port();
    let registry = format!("http://127.0.0.1:{port}");
    let mut cmd = binary();
    cmd.args([
        "gateway",
        "--registry",
        &registry,
        "--listen",
        "127.0.0.1:0",
    ])
    .env("RUST_LOG", "info,rmcp=off")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .stdin(Stdio::null());
    let mut gateway = cmd.spawn().expect("spawn the gateway");
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut stderr = BufReader::new(gateway.stderr.take().expect("stderr")).lines();
    let lines = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            lines.lock().expect("log").push(line);
        }
    });
    let mut stdout = BufReader::new(gateway.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(PROCESS_DEADLINE, async {
        while let Some(line) = stdout.next_line().await.expect("read stdout") {
            if let Some(rest) = line.strip_prefix("gateway listening on ") {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
        panic!(
            "the gateway exited before listening: {:?}",
            log.lock().expect("log")
        );
    })
    .await
    .expect("the gateway did not start in time");

    // No registry yet: an empty catalog, and a log line saying why and when it tries again.
    assert_eq!(tool_names(&list_tools(&url).await), Vec::<String>::new());
    let waiting = mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "the gateway to log that the registry is not reachable",
        || async {
            log.lock()
                .expect("log")
                .iter()
                .find(|l| {
                    l.contains(&format!(
                        "registry {registry} not reachable yet; retrying in"
                    ))
                })
                .cloned()
        },
    )
    .await;
    let cause = "Connection refused";
    assert_eq!(waiting.matches(cause).count(), 1, "{waiting}");

    // The registry comes up on that port with a server: its tools appear.
    let db = mcp_fleet_test_support::sqlite();
    let mut serve = binary();
    serve.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        &db.url,
        "--no-health-worker",
    ]);
    let server = spawn_command(serve).await;
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let catalog = mcp_fleet_sample_servers::start(Sample::Catalog, listener, shutdown.clone())
        .await
        .expect("catalog sample");
    let _announced = catalog.announce(&server.url).await.expect("register");
    mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "the catalog's tools through the gateway",
        || async {
            let names = tool_names(&list_tools(&url).await);
            names
                .iter()
                .any(|n| n == "catalog__search_products")
                .then_some(())
        },
    )
    .await;
    // The tools are served a moment before the line that says so is written.
    mcp_fleet_test_support::eventually(
        PROCESS_DEADLINE,
        "the log line that the registry is reachable",
        || async {
            log.lock()
                .expect("log")
                .iter()
                .any(|l| l.contains("reachable; following the fleet"))
                .then_some(())
        },
    )
    .await;

    let pid = gateway.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = tokio::time::timeout(PROCESS_DEADLINE, gateway.wait())
        .await
        .expect("the gateway did not stop")
        .expect("wait");
    assert!(exit.success(), "{exit}");
    shutdown.cancel();
    server.terminate().await;
}

/// A start error prints each cause once: the registry's 401 is not repeated ("x: y: y"), as
/// it was when the gateway's error both showed and declared its source.
#[tokio::test]
async fn gateway_start_errors_name_their_cause_once() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--no-health-worker", "--auth", "token", "--auth-reads"]);
    let server = spawn_command(cmd).await;
    let (code, _, err) = tokio::time::timeout(
        PROCESS_DEADLINE + Duration::from_secs(5),
        run_code(&[
            "gateway",
            "--registry",
            &server.url,
            "--listen",
            "127.0.0.1:0",
        ]),
    )
    .await
    .expect("the gateway should stop at once on a 401");
    assert_eq!(code, Some(3), "{err}");
    let error = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {err}"));
    assert!(error.contains("cannot start the gateway"), "{error}");
    assert_eq!(error.matches("registry answered 401").count(), 1, "{error}");
    server.terminate().await;
}

/// Spawns `mcp-fleet gateway` (with `cmd`'s arguments) and waits for its URL (`…/mcp`).
pub(crate) async fn spawn_gateway(
    mut cmd: tokio::process::Command,
) -> (tokio::process::Child, String) {
    let mut gateway = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the gateway");
    let mut stdout = BufReader::new(gateway.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(PROCESS_DEADLINE, async {
        while let Some(line) = stdout.next_line().await.expect("read stdout") {
            if let Some(rest) = line.strip_prefix("gateway listening on ") {
                return rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
        panic!("the gateway exited before listening");
    })
    .await
    .expect("the gateway did not start in time");
    // Kept reading so that the gateway's prints never block.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    (gateway, url)
}

/// Opens a session (2025-06-18) on the gateway at `mcp`: its id.
pub(crate) async fn open_session(mcp: &str) -> String {
    let opened = reqwest::Client::new()
        .post(mcp)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "replica-test", "version": "0"}}}))
        .send()
        .await
        .expect("initialize");
    assert!(opened.status().is_success(), "{}", opened.status());
    opened
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned()
}

/// The status of a `tools/list` in session `id` at `mcp`.
async fn list_in(mcp: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .post(mcp)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", id)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .expect("tools/list")
        .status()
        .as_u16()
}

/// Two gateways given one key (`MCP_FLEET_SESSION_KEY`, `--session-key-file`) answer each
/// other's sessions; one without it does not; a key that is not 32 bytes of base64 is refused
/// at start with one line saying what a key is.
#[tokio::test]
async fn gateway_replicas_share_sessions_through_the_session_key() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.arg("--no-health-worker");
    let server = spawn_command(cmd).await;
    let key = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=";
    let gateway = |extra: &[&str]| {
        let mut cmd = binary();
        cmd.args([
            "gateway",
            "--registry",
            &server.url,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(extra);
        cmd
    };
    let mut with_env = gateway(&[]);
    with_env.env("MCP_FLEET_SESSION_KEY", key);
    let (mut a, a_url) = spawn_gateway(with_env).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("session-key");
    std::fs::write(&key_file, format!("{key}\n")).expect("write the key");
    let key_file = key_file.to_str().expect("UTF-8 path").to_owned();
    let (mut b, b_url) = spawn_gateway(gateway(&["--session-key-file", &key_file])).await;
    let (mut c, c_url) = spawn_gateway(gateway(&[])).await;

    let id = open_session(&a_url).await;
    assert_eq!(list_in(&a_url, &id).await, 200);
    assert_eq!(list_in(&b_url, &id).await, 200, "B shares A's key");
    assert_eq!(list_in(&c_url, &id).await, 404, "C has a key of its own");

    let (code, _, err) = run_code(&[
        "gateway",
        "--registry",
        &server.url,
        "--session-key",
        "c2hvcnQ=",
    ])
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("32 bytes, base64-encoded"), "{err}");

    for child in [&mut a, &mut b, &mut c] {
        child.start_kill().expect("kill");
        let _ = child.wait().await;
    }
    server.terminate().await;
}

/// A replica id reports could not carry is refused at start, naming the flag, rather than
/// every report being refused later.
#[tokio::test]
async fn a_bad_replica_id_is_refused_at_start() {
    let (code, _, err) = run_code(&[
        "gateway",
        "--registry",
        "http://127.0.0.1:9",
        "--listen",
        "127.0.0.1:0",
        "--replica-id",
        "gw a",
    ])
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--replica-id"), "{err}");
    assert!(err.contains("letters, digits"), "{err}");
}
