//! How commands print: tables within `COLUMNS`, `--output json|yaml|table` (and `--json`),
//! colour only on a terminal without `NO_COLOR`.

use std::time::Duration;

use mcp_fleet_sample_servers::Sample;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::{
    PROCESS_DEADLINE, binary, run, run_code, run_command, serve_command, spawn_command,
};

/// Long enough to overflow any column of an 80-column table.
const LONG_ID: &str = "a-server-id-long-enough-to-overflow-every-column-of-a-table-0001";

/// Runs `mcp-fleet ARGS` with `COLUMNS` set: (success, stdout, stderr).
async fn run_in(columns: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = binary();
    cmd.env("COLUMNS", columns).args(args);
    let (code, out, err) = run_command(cmd).await;
    (code == Some(0), out, err)
}

/// What `shell_line` printed on a pseudo-terminal (script(1) makes one), with `env` set (`None`
/// removes a variable); line ends as `\n`.
async fn on_terminal(shell_line: &str, env: &[(&str, Option<&str>)]) -> String {
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qefc", shell_line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = tokio::time::timeout(PROCESS_DEADLINE, cmd.output())
        .await
        .expect("script timed out")
        .expect("run script(1)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

/// Every line of `out` fits in `width` columns.
fn assert_fits(out: &str, width: usize, what: &str) {
    for line in out.lines() {
        assert!(
            line.chars().count() <= width,
            "{what}: a line of {} columns:\n{out}",
            line.chars().count()
        );
    }
}

/// `ARGS --output yaml` reads back as the same document as `ARGS --output json` (and as
/// `ARGS --json`); asked again until two answers in a row agree, since health checks go on.
async fn assert_yaml_is_json(args: &[&str]) {
    mcp_fleet_test_support::eventually(
        Duration::from_secs(20),
        &format!("{args:?}: YAML and JSON to agree"),
        || async {
            // `status` exits 1 when the fleet is degraded.
            let printed = |flags: &'static [&'static str]| async move {
                let (code, out, err) = run_code(&[args, flags].concat()).await;
                assert!(matches!(code, Some(0 | 1)), "{args:?} {flags:?}: {err}");
                out
            };
            let json: Value = serde_json::from_str(&printed(&["--output", "json"]).await)
                .expect("--output json is JSON");
            let yaml: Value = serde_yaml_ng::from_str(&printed(&["--output", "yaml"]).await)
                .expect("--output yaml is YAML");
            let alias: Value =
                serde_json::from_str(&printed(&["--json"]).await).expect("--json is JSON");
            (json == yaml && json == alias).then_some(())
        },
    )
    .await;
}

/// Long ids, names, URLs, tags and errors: `ls`, `status`, `check`, `tools`, `get -o table`
/// and `token ls` stay within `COLUMNS=80` (cutting cells with `…`, wrapping errors whole); every
/// command that prints data takes `--output json|yaml` (the same document) and `--json`.
#[tokio::test]
async fn tables_fit_the_screen_and_every_format_says_the_same() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args([
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-fall",
        "1",
    ]);
    let server = spawn_command(cmd).await;
    let reg = server.url.as_str();

    // A real MCP server under a long id, and two entries nothing answers at.
    let token = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sample = mcp_fleet_sample_servers::start(Sample::Catalog, listener, token.clone())
        .await
        .expect("sample");
    let sample_url = sample.mcp_url().trim_end_matches("/mcp").to_owned();
    let closed_url = format!(
        "http://127.0.0.1:9/{}",
        "a-path-long-enough-to-overflow-the-url-column/".repeat(3)
    );
    for (id, url) in [
        (LONG_ID, sample_url.as_str()),
        (
            "closed-one-with-a-rather-long-id-as-well",
            closed_url.as_str(),
        ),
        ("closed-two", closed_url.as_str()),
    ] {
        let (ok, _, err) = run(&[
            "register",
            "--registry",
            reg,
            "--id",
            id,
            "--name",
            &format!("{id} with a name that is longer still"),
            "--url",
            url,
            "--server-version",
            "1.0.0-alpha.1+build.20261207",
            "--tags",
            "catalog,products,search,long-tag-one,long-tag-two,long-tag-three",
            "--health-check",
            "mcp",
        ])
        .await;
        assert!(ok, "{id}: {err}");
    }
    mcp_fleet_test_support::eventually(
        Duration::from_secs(20),
        "the sample healthy and both closed entries down",
        || async {
            let (_, out, _) = run(&["status", "--registry", reg, "--json"]).await;
            let doc: Value = serde_json::from_str(&out).ok()?;
            let s = &doc["summary"];
            (s["healthy"] == 1 && s["down"] == 2).then_some(())
        },
    )
    .await;

    let commands: [&[&str]; 5] = [
        &["ls", "--registry", reg],
        &["status", "--registry", reg],
        &[
            "check",
            "--registry",
            reg,
            "closed-one-with-a-rather-long-id-as-well",
        ],
        &["tools", "--registry", reg],
        &["get", "--registry", reg, LONG_ID, "--output", "table"],
    ];
    for args in commands {
        let (_, out, err) = run_in("80", args).await;
        assert!(!out.is_empty(), "{args:?}: {err}");
        assert_fits(&out, 80, &format!("{args:?}"));
        assert!(out.contains('…'), "{args:?} cut nothing:\n{out}\n{err}");
    }
    // Without COLUMNS, to a pipe, nothing is cut: the whole id and URL are there.
    let (ok, out, err) = run(&["ls", "--registry", reg]).await;
    assert!(ok, "{err}");
    assert!(out.contains(LONG_ID) && out.contains(&closed_url), "{out}");
    // The error column wraps rather than being cut: the cause's last words are there.
    let (_, out, _) = run_in("80", &["status", "--registry", reg]).await;
    assert!(out.to_lowercase().contains("refused"), "{out}");

    for args in [
        &["ls", "--registry", reg][..],
        &["status", "--registry", reg],
        &["get", "--registry", reg, LONG_ID],
        &["tools", "--registry", reg],
    ] {
        assert_yaml_is_json(args).await;
    }
    // `call` too: `table` is the result's text, JSON and YAML the whole result.
    let call = [
        "call",
        "--registry",
        reg,
        "search_products",
        "--args",
        r#"{"query": "laptop"}"#,
    ];
    let (ok, out, err) = run(&call).await;
    assert!(ok && out.to_lowercase().contains("laptop"), "{out}{err}");
    assert_yaml_is_json(&call).await;

    // A format and its alias together are one too many.
    let (ok, _, err) = run(&["ls", "--registry", reg, "--json", "--output", "yaml"]).await;
    assert!(!ok && err.contains("--output"), "{err}");

    // Routing and tokens take the same flag.
    let (ok, _, err) = run(&[
        "route",
        "set",
        "--registry",
        reg,
        LONG_ID,
        "1.0.0-alpha.1+build.20261207=100",
    ])
    .await;
    assert!(ok, "{err}");
    assert_yaml_is_json(&["route", "get", "--registry", reg, LONG_ID]).await;
    let (ok, _, err) = run(&[
        "token",
        "create",
        "--database-url",
        &db.url,
        "--scopes",
        "servers:write",
        "--ids",
        &format!("{LONG_ID},closed-*"),
        "--description",
        "a token for the deployment pipeline of the team that owns the long-named servers",
    ])
    .await;
    assert!(ok, "{err}");
    let (ok, out, err) = run_in("80", &["token", "ls", "--database-url", &db.url]).await;
    assert!(ok, "{err}");
    assert_fits(&out, 80, "token ls");
    assert!(out.contains('…'), "{out}");
    assert_yaml_is_json(&["token", "ls", "--database-url", &db.url]).await;

    token.cancel();
    server.terminate().await;
}

/// Statuses are coloured on a terminal (one made by script(1)), never with `NO_COLOR` or when
/// standard output is a pipe.
#[tokio::test]
async fn statuses_are_coloured_only_on_a_terminal_without_no_color() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--health-interval", "1s"]);
    let server = spawn_command(cmd).await;
    let reg = server.url.as_str();
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        reg,
        "--id",
        "ttl-one",
        "--name",
        "TTL",
        "--url",
        "http://127.0.0.1:9",
        "--server-version",
        "1.0.0",
        "--health-check",
        "ttl",
        "--ttl-seconds",
        "60",
    ])
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["heartbeat", "--registry", reg, "ttl-one"]).await;
    assert!(ok, "{err}");

    let out = mcp_fleet_test_support::eventually(
        Duration::from_secs(20),
        "the heartbeating entry to be healthy",
        || async {
            let (_, out, _) = run(&["ls", "--registry", reg]).await;
            out.contains("healthy").then_some(out)
        },
    )
    .await;
    assert!(!out.contains('\u{1b}'), "escape codes into a pipe: {out:?}");

    let ls = format!("{} ls --registry {reg}", env!("CARGO_BIN_EXE_mcp-fleet"));
    let coloured = on_terminal(&ls, &[("COLUMNS", Some("80")), ("NO_COLOR", None)]).await;
    assert!(coloured.contains("healthy"), "{coloured:?}");
    assert!(
        coloured.contains("\u{1b}["),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = on_terminal(&ls, &[("COLUMNS", Some("80")), ("NO_COLOR", Some("1"))]).await;
    assert!(plain.contains("healthy"), "{plain:?}");
    assert!(!plain.contains('\u{1b}'), "colour with NO_COLOR: {plain:?}");

    // Without COLUMNS, a table takes the terminal's width.
    let narrow = format!("stty cols 60 rows 20; {ls}");
    let out = on_terminal(&narrow, &[("COLUMNS", None), ("NO_COLOR", Some("1"))]).await;
    assert!(out.contains("STATUS") && out.contains('…'), "{out}");
    assert_fits(&out, 60, "ls on a 60-column terminal");

    server.terminate().await;
}
