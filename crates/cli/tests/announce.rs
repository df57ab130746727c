//! `mcp-fleet announce` running real MCP servers written with the Python SDK (PyPI `mcp`) and the
//! TypeScript SDK (npm `@modelcontextprotocol/sdk`) against a real registry, with real signals.
//!
//! The SDKs come from `scripts/test`, which installs them under `target/` and names them in
//! `MCP_FLEET_TEST_PYTHON` (a Python that imports `mcp`) and `MCP_FLEET_TEST_NODE_PATH` (a
//! `node_modules` holding the SDK). Without them these tests skip, except under `CI=true`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mcp_fleet_discovery::RegistryClient;
use mcp_fleet_model::HealthStatus;
use mcp_fleet_test_support::eventually;
use serde_json::json;

use crate::common::{PROCESS_DEADLINE, Running, binary, run_code, serve_command, spawn_command};

/// How long an entry may take to show a change: a heartbeat goes out every third of the 5 s TTL,
/// and a Python server takes ~2.5 s to start on an idle machine, more on a busy CI one.
const CHANGE_DEADLINE: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/announce")
        .join(name)
}

/// The path in `var`; `None` (the test skips) when unset, except under `CI=true`.
fn sdk(var: &str, what: &str) -> Option<OsString> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!(
                "{var} is not set under CI=true: the {what} test must run (scripts/test installs the SDK and sets it)"
            )
        }
        _ => {
            eprintln!(
                "skipped: {var} is not set, so the {what} test does not run (scripts/test installs the SDK and sets it)"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `mcp-fleet serve` on `port` over a new SQLite file in `dir`, probing every second.
async fn registry(port: u16, dir: &Path, db: &str) -> Running {
    let mut cmd = binary();
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join(db).display()))
        .args(["--health-interval", "1s", "--read-cache-ttl", "0s"]);
    spawn_command(cmd).await
}

/// How the announced server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGTERM to announce, which forwards it.
    SigtermToAnnounce,
    /// SIGTERM to the child alone: it exits on its own, as far as announce can tell.
    ChildExits,
}

/// Runs `command` (serving MCP at 127.0.0.1:`port`/mcp) through `announce` and checks that its
/// entry appears and turns healthy, comes back after the registry restarts on a fresh database,
/// and goes when the child stops as `stop` says, with the child's exit code as announce's.
async fn announce_round_trip(
    id: &str,
    port: u16,
    command: Vec<OsString>,
    env: &[(&str, OsString)],
    stop: Stop,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry_port = free_port();
    let first = registry(registry_port, dir.path(), "first.db").await;
    let registry_url = first.url.clone();
    let entry = dir.path().join("entry.json");
    let body = json!({
        "id": id, "name": id, "url": format!("http://127.0.0.1:{port}"), "version": "1.0.0",
        "tags": ["announced"],
    });
    std::fs::write(&entry, body.to_string()).expect("write entry.json");
    let log = dir.path().join("announce.log");
    let mut cmd = binary();
    cmd.args([
        "announce",
        "--registry",
        &registry_url,
        "--ttl",
        "5s",
        "--file",
    ])
    .arg(&entry)
    .arg("--")
    .args(&command)
    .env("RUST_LOG", "info,rmcp=off")
    .env("EXIT_CODE_ON_TERM", "7")
    .envs(env.iter().map(|(k, v)| (k, v)))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).expect("log file"));
    let mut announce = cmd.spawn().expect("spawn announce");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();

    let client = RegistryClient::new(&registry_url).expect("client");
    let entry_now = || async {
        client
            .get(id)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", logged()))
    };
    let healthy = eventually(
        CHANGE_DEADLINE,
        "the announced entry to be healthy",
        || async {
            entry_now()
                .await
                .filter(|e| e.status == HealthStatus::Healthy)
        },
    )
    .await;
    assert_eq!(healthy.ttl_seconds, Some(5), "--ttl 5s");

    // A registry restarted on a fresh database does not know the entry until announce's next
    // heartbeat gets its 404 and registers it again.
    first.kill_hard().await;
    let second = registry(registry_port, dir.path(), "second.db").await;
    eventually(
        CHANGE_DEADLINE,
        "the entry to be registered again",
        || async { entry_now().await },
    )
    .await;

    let pid = match stop {
        Stop::SigtermToAnnounce => announce.id().expect("pid"),
        Stop::ChildExits => child_pid(&logged()),
    };
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = tokio::time::timeout(PROCESS_DEADLINE, announce.wait())
        .await
        .expect("announce did not stop after SIGTERM")
        .expect("wait");
    let logged = logged();
    assert_eq!(status.code(), Some(7), "the child's exit code\n{logged}");
    assert_eq!(
        logged.contains("forwarded SIGTERM"),
        stop == Stop::SigtermToAnnounce,
        "{logged}"
    );
    assert!(entry_now().await.is_none(), "deregistered\n{logged}");
    second.terminate().await;
}

/// The child's process id, from announce's "started" log line (`… pid=1234 …`).
fn child_pid(log: &str) -> u32 {
    log.lines()
        .find(|l| l.contains("started; registering once"))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pid=")))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no child pid logged:\n{log}"))
}

/// Python: stopped by a SIGTERM to announce.
#[tokio::test]
async fn a_python_mcp_server_is_announced_kept_and_deregistered() {
    let Some(python) = sdk("MCP_FLEET_TEST_PYTHON", "Python MCP server") else {
        return;
    };
    let port = free_port();
    let command = vec![python, fixture("server.py").into(), port.to_string().into()];
    announce_round_trip("py-echo", port, command, &[], Stop::SigtermToAnnounce).await;
}

/// Node.js: the server exits by itself.
#[tokio::test]
async fn a_node_mcp_server_is_announced_kept_and_deregistered() {
    let Some(node_path) = sdk("MCP_FLEET_TEST_NODE_PATH", "Node.js MCP server") else {
        return;
    };
    let port = free_port();
    let command = vec![
        "node".into(),
        fixture("server.cjs").into(),
        port.to_string().into(),
    ];
    let env = [("NODE_PATH", node_path)];
    announce_round_trip("node-echo", port, command, &env, Stop::ChildExits).await;
}

/// A registry that refuses the credentials: the server is stopped and announce exits 3 with the
/// hint naming `--token`, as the other client commands do.
#[tokio::test]
async fn a_refused_token_stops_the_server_with_exit_code_3() {
    let Some(python) = sdk("MCP_FLEET_TEST_PYTHON", "Python MCP server") else {
        return;
    };
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--no-health-worker", "--auth", "token"]);
    let registry = spawn_command(cmd).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = dir.path().join("entry.json");
    let port = free_port();
    let body = json!({"id": "py-echo", "name": "x", "url": format!("http://127.0.0.1:{port}"), "version": "1.0.0"});
    std::fs::write(&entry, body.to_string()).expect("write");
    let server = fixture("server.py");
    let port = port.to_string();
    let args = [
        "announce",
        "--registry",
        &registry.url,
        "--file",
        &entry.display().to_string(),
        "--",
        &python.to_string_lossy(),
        &server.display().to_string(),
        &port,
    ];
    let (code, _, err) = run_code(&args).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("registry answered 401"), "{err}");
    assert!(err.contains("--token"), "{err}");
    registry.terminate().await;
}

/// No SDK needed: an entry the registry would refuse, a command that is not there, a child that
/// exits before it serves, a child that never serves.
#[tokio::test]
async fn announce_reports_bad_entries_missing_commands_and_servers_that_never_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = dir.path().join("entry.json");
    let marker = dir.path().join("started");
    let port = free_port();
    let args = |entry: &Path, command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "announce",
            "--registry",
            "127.0.0.1:9",
            "--ready-timeout",
            "1s",
            "--file",
        ]
        .map(String::from)
        .into();
        args.push(entry.display().to_string());
        args.push("--".into());
        args.extend(command.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_code(&args).await
    };

    // Refused before the child starts: exit 1, the field named.
    std::fs::write(
        &entry,
        r#"{"id": "Not A Slug", "name": "x", "url": "http://127.0.0.1:9", "version": "1"}"#,
    )
    .expect("write");
    let touch = format!("touch {}", marker.display());
    let (code, _, err) = run(args(&entry, &["sh", "-c", &touch])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("entry.json: the registration is invalid: id: "),
        "{err}"
    );
    assert!(err.contains("version: "), "every field named: {err}");
    assert!(!marker.exists(), "the child was started");

    let good = json!({"id": "never", "name": "x", "url": format!("http://127.0.0.1:{port}"), "version": "1.0.0"});
    std::fs::write(&entry, good.to_string()).expect("write");

    // No such command: 127, as a shell says.
    let (code, _, err) = run(args(&entry, &["/nonexistent/server"])).await;
    assert_eq!(code, Some(127), "{err}");
    assert!(err.contains("cannot run /nonexistent/server"), "{err}");

    // The child exits before its MCP endpoint answers: its exit code, nothing registered.
    let (code, _, err) = run(args(&entry, &["sh", "-c", "exit 5"])).await;
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("before its MCP endpoint answered"), "{err}");

    // The child never serves: stopped after --ready-timeout, exit 1, saying what was tried.
    let started = std::time::Instant::now();
    let (code, _, err) = run(args(&entry, &["sleep", "60"])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "MCP endpoint http://127.0.0.1:{port}/mcp did not answer within 1 s"
        )),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the child was stopped"
    );
}

/// No SDK needed: a SIGINT (Ctrl-C) while the child starts reaches the child, and announce exits
/// as the child did: 130, 128 + SIGINT, as a shell reports it.
#[tokio::test]
async fn sigint_is_forwarded_and_the_childs_signal_becomes_the_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entry = dir.path().join("entry.json");
    let port = free_port();
    let body = json!({"id": "sleeper", "name": "x", "url": format!("http://127.0.0.1:{port}"), "version": "1.0.0"});
    std::fs::write(&entry, body.to_string()).expect("write");
    let log = dir.path().join("announce.log");
    let mut announce = binary()
        .args(["announce", "--registry", "127.0.0.1:9", "--file"])
        .arg(&entry)
        .args(["--", "sleep", "60"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn announce");
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    // Logged once the child runs; announce listens for signals before it starts the child.
    eventually(PROCESS_DEADLINE, "the child to start", || async {
        logged().contains("started; registering once").then_some(())
    })
    .await;
    let pid = announce.id().expect("pid");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let status = tokio::time::timeout(PROCESS_DEADLINE, announce.wait())
        .await
        .expect("announce did not stop after SIGINT")
        .expect("wait");
    let logged = logged();
    assert_eq!(status.code(), Some(130), "{logged}");
    assert!(logged.contains("forwarded SIGINT"), "{logged}");
}
