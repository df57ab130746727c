//! `register`, `ls`, `get`, `rm`, `status` against a real registry process.

use std::time::Duration;

use crate::common::{run, run_code, serve, serve_command, spawn_command};

#[tokio::test]
async fn client_commands_round_trip() {
    let db = mcp_fleet_test_support::sqlite();
    let server = serve(&db.url).await;
    let reg = server.url.as_str();

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("entry.json");
    std::fs::write(
        &file,
        r#"{"id":"payments","name":"Payments","url":"http://127.0.0.1:9","version":"2.0.0","tags":["payments","billing"]}"#,
    )
    .expect("write");
    let file = file.to_str().expect("utf-8 path");

    let (ok, out, err) = run(&["register", "--registry", reg, "--file", file]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "registered payments");

    let (ok, out, err) = run(&[
        "register",
        "--registry",
        reg,
        "--id",
        "search",
        "--name",
        "Search",
        "--url",
        "http://127.0.0.1:10",
        "--server-version",
        "0.3.0",
        "--tags",
        "search,catalog",
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "registered search");

    // Re-registering from the file with a flag override replaces the entry.
    let (ok, out, _) = run(&[
        "register",
        "--registry",
        reg,
        "--file",
        file,
        "--server-version",
        "2.1.0",
    ])
    .await;
    assert!(ok);
    assert!(out.starts_with("re-registered payments"), "{out}");

    let (ok, out, _) = run(&["ls", "--registry", reg]).await;
    assert!(ok);
    assert!(out.contains("payments") && out.contains("2.1.0") && out.contains("search"));

    let (ok, out, _) = run(&["ls", "--registry", reg, "--tags", "catalog", "--json"]).await;
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(&out).expect("ls --json is JSON");
    assert_eq!(listed["servers"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["servers"][0]["id"], "search");

    let (ok, out, _) = run(&["get", "--registry", reg, "payments"]).await;
    assert!(ok);
    let entry: serde_json::Value = serde_json::from_str(&out).expect("get prints JSON");
    assert_eq!(entry["tags"], serde_json::json!(["payments", "billing"]));

    // Nothing listens at either URL: once probed, both are down and the fleet is degraded,
    // which `status` reports with exit code 1 and a table of the unwell servers.
    mcp_fleet_test_support::eventually(Duration::from_secs(15), "both probed twice", || async {
        let (_, out, _) = run(&["status", "--registry", reg]).await;
        out.contains("0 healthy, 0 degraded, 2 down").then_some(())
    })
    .await;
    let (code, out, _) = run_code(&["status", "--registry", reg]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("fleet degraded: 2 servers"), "{out}");
    assert!(
        out.contains("LAST ERROR") && out.to_lowercase().contains("refused"),
        "{out}"
    );

    let (ok, out, _) = run(&["rm", "--registry", reg, "payments"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "deleted payments");
    let (ok, _, err) = run(&["rm", "--registry", reg, "payments"]).await;
    assert!(!ok);
    assert!(err.contains("no server with id \"payments\""), "{err}");

    server.terminate().await;
}

#[tokio::test]
async fn errors_say_what_to_fix() {
    let db = mcp_fleet_test_support::sqlite();
    let server = serve(&db.url).await;
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        &server.url,
        "--id",
        "Bad_Id",
        "--name",
        "x",
        "--url",
        "ftp://x",
        "--server-version",
        "latest",
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("registry answered 400"), "{err}");
    for field in ["id:", "url:", "version:"] {
        assert!(err.contains(field), "{field} missing in {err}");
    }
    server.terminate().await;

    // Nothing listens on a port we bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let (code, _, _) =
        run_code(&["status", "--registry", &format!("http://127.0.0.1:{port}")]).await;
    assert_eq!(
        code,
        Some(2),
        "status exits 2 when the registry cannot be reached"
    );
    let (ok, _, err) = run(&["ls", "--registry", &format!("http://127.0.0.1:{port}")]).await;
    assert!(!ok);
    assert!(
        err.contains(&format!("cannot reach registry at http://127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");

    let (ok, _, err) = run(&[
        "serve",
        "--database-url",
        "mysql://x",
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("unsupported database URL"), "{err}");
}

/// A registry that refuses the request's credentials (401 without a token, or with a bad one)
/// is exit code 3, not 2 ("cannot be reached"), and the hint names the CLI's --token and
/// MCP_FLEET_TOKEN rather than an HTTP header.
#[tokio::test]
async fn refused_credentials_have_their_own_exit_code_and_hint() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--no-health-worker", "--auth", "token", "--auth-reads"]);
    let server = spawn_command(cmd).await;
    for token in [None, Some("mcpf_tok_000000000000.bad")] {
        let mut args = vec!["status", "--registry", server.url.as_str()];
        if let Some(t) = token {
            args.extend(["--token", t]);
        }
        let (code, _, err) = run_code(&args).await;
        assert_eq!(code, Some(3), "{args:?}: {err}");
        assert!(err.contains("401"), "{err}");
        assert!(
            err.contains("--token") && err.contains("MCP_FLEET_TOKEN"),
            "{err}"
        );
        let (code, _, err) = run_code(&["ls", "--registry", server.url.as_str()]).await;
        assert_eq!(code, Some(3), "ls: {err}");
        assert!(err.contains("--token"), "{err}");
    }
    server.terminate().await;
}

/// Everyday papercuts: `--registry host:port` without a scheme is http://; `--file -` names
/// standard input in its errors; `ls` sorts ids with their numbers as numbers.
#[tokio::test]
async fn registry_without_scheme_stdin_errors_and_natural_ls_order() {
    let db = mcp_fleet_test_support::sqlite();
    let server = serve(&db.url).await;
    let bare = server
        .url
        .strip_prefix("http://")
        .expect("an http:// URL")
        .to_owned();

    for id in ["bulk-10", "bulk-2", "bulk-1", "bulk-100"] {
        let (ok, _, err) = run(&[
            "register",
            "--registry",
            &bare,
            "--id",
            id,
            "--name",
            id,
            "--url",
            "http://127.0.0.1:9",
            "--server-version",
            "1.0.0",
        ])
        .await;
        assert!(ok, "--registry {bare}: {err}");
    }
    let (ok, out, err) = run(&["ls", "--registry", &bare]).await;
    assert!(ok, "{err}");
    let order: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("bulk-")))
        .collect();
    assert_eq!(order, ["bulk-1", "bulk-2", "bulk-10", "bulk-100"], "{out}");

    for (stdin, want) in [
        ("[]", "standard input (--file -) must hold a JSON object"),
        ("{", "standard input (--file -) is not JSON"),
    ] {
        let mut child = crate::common::binary()
            .args(["register", "--registry", &bare, "--file", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut input = child.stdin.take().expect("stdin");
        tokio::io::AsyncWriteExt::write_all(&mut input, stdin.as_bytes())
            .await
            .expect("write stdin");
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("register finished in time")
            .expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(want), "{stdin}: {err}");
    }
    server.terminate().await;
}

/// `--log-format` is shown once, in `mcp-fleet --help`, and still taken after any subcommand.
#[tokio::test]
async fn log_format_is_a_global_option_shown_once() {
    let (ok, out, err) = run(&["--help"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("--log-format"), "{out}");
    for sub in [
        &["ls", "--help"][..],
        &["token", "ls", "--help"],
        &["serve", "--help"],
    ] {
        let (ok, out, err) = run(sub).await;
        assert!(ok, "{sub:?}: {err}");
        assert!(!out.contains("--log-format"), "{sub:?}: {out}");
    }
    // Still accepted after a (nested) subcommand: the command runs and fails for its own reason.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("none.db").display());
    let (code, _, err) = run_code(&[
        "token",
        "ls",
        "--log-format",
        "json",
        "--database-url",
        &url,
    ])
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no database at"), "{err}");
}

/// Every field of an entry from flags; `heartbeat ID` and `check ID`; the registry's validation
/// problems shown naming the field.
#[tokio::test]
async fn register_takes_every_field_and_heartbeat_and_check_work() {
    let db = mcp_fleet_test_support::sqlite();
    let server = serve(&db.url).await;
    let reg = server.url.as_str();
    let base = [
        "register",
        "--registry",
        reg,
        "--id",
        "ticker",
        "--name",
        "Ticker",
        "--url",
        "http://127.0.0.1:9",
        "--server-version",
        "1.0.0",
    ];
    let (ok, out, err) = run(&[
        &base[..],
        &[
            "--service",
            "quotes",
            "--health-check",
            "ttl",
            "--ttl-seconds",
            "30",
            "--health-url",
            "http://127.0.0.1:9/health",
            "--metadata",
            "team=markets",
            "--metadata",
            "replicas=3",
            "--auth-type",
            "oauth2",
            "--auth-token-endpoint",
            "https://auth.example/token",
        ],
    ]
    .concat())
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "registered ticker");
    let (ok, out, err) = run(&["get", "--registry", reg, "ticker"]).await;
    assert!(ok, "{err}");
    let entry: serde_json::Value = serde_json::from_str(&out).expect("get prints JSON");
    assert_eq!(entry["service"], "quotes");
    assert_eq!(entry["healthCheck"], serde_json::json!({"mode": "ttl"}));
    assert_eq!(entry["ttlSeconds"], 30);
    assert_eq!(entry["healthUrl"], "http://127.0.0.1:9/health");
    assert_eq!(
        entry["metadata"],
        serde_json::json!({"team": "markets", "replicas": 3})
    );
    assert_eq!(
        entry["auth"],
        serde_json::json!({"type": "oauth2", "tokenEndpoint": "https://auth.example/token"})
    );

    let (ok, out, err) = run(&["heartbeat", "--registry", reg, "ticker"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "heartbeat recorded for ticker");
    let (ok, _, err) = run(&["heartbeat", "--registry", reg, "nope"]).await;
    assert!(!ok);
    assert!(err.contains("no server with id \"nope\""), "{err}");
    // A TTL entry is not probed: the registry's 409 comes back as it is.
    let (ok, _, err) = run(&["check", "--registry", reg, "ticker"]).await;
    assert!(!ok);
    assert!(err.contains("registry answered 409"), "{err}");

    // MCP-checked entries at a closed port: the check's outcome as a table and as JSON (two
    // entries, as the registry takes one check of an entry per second).
    for id in ["closed", "closed-json"] {
        let (ok, _, err) = run(&[
            "register",
            "--registry",
            reg,
            "--id",
            id,
            "--name",
            "Closed",
            "--url",
            "http://127.0.0.1:9",
            "--server-version",
            "1.0.0",
            "--health-check",
            "mcp",
        ])
        .await;
        assert!(ok, "{err}");
    }
    let (ok, out, err) = run(&["check", "--registry", reg, "closed"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("OUTCOME") && l.contains("STATUS")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("closed") && l.contains("down")),
        "{out}"
    );
    let (ok, out, err) = run(&["check", "--registry", reg, "closed-json", "--json"]).await;
    assert!(ok, "{err}");
    let outcome: serde_json::Value = serde_json::from_str(&out).expect("check --json is JSON");
    assert_eq!(outcome["id"], "closed-json");
    assert_eq!(outcome["status"], "down", "{outcome}");

    // The registry's validation problem names the field; bad flag values never reach it.
    let (ok, _, err) = run(&[&base[..], &["--ttl-seconds", "2"]].concat()).await;
    assert!(!ok);
    assert!(
        err.contains("registry answered 400") && err.contains("ttlSeconds"),
        "{err}"
    );
    let (ok, _, err) = run(&[&base[..], &["--health-check", "sometimes"]].concat()).await;
    assert!(!ok);
    assert!(err.contains("--health-check"), "{err}");
    let (ok, _, err) = run(&[&base[..], &["--metadata", "team"]].concat()).await;
    assert!(!ok);
    assert!(err.contains("\"team\" is not KEY=VALUE"), "{err}");

    server.terminate().await;
}
