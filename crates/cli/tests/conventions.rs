//! What a Consul user expects of the command: `watch`, `completions`, `man`, `version`, a
//! config file below flags and the environment, an access-log line per request, a LICENSE.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::Command;

use crate::common::{PROCESS_DEADLINE, binary, run, run_code, serve_command, spawn_command};

/// Runs `cmd` to completion: (exit code, stdout, stderr).
async fn output(mut cmd: Command) -> (Option<i32>, String, String) {
    let out = tokio::time::timeout(PROCESS_DEADLINE, cmd.output())
        .await
        .expect("command timed out")
        .expect("run mcp-fleet");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

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

/// An entry file for `register --file`.
fn entry(dir: &Path, id: &str, tags: &[&str]) -> String {
    let file = dir.join(format!("{id}.json"));
    let entry = serde_json::json!({
        "id": id, "name": id, "url": "http://127.0.0.1:9", "version": "1.0.0", "tags": tags,
    });
    std::fs::write(&file, entry.to_string()).expect("write");
    file.to_str().expect("utf-8 path").to_owned()
}

/// `version` names the version, the git commit it was built from, the build date and the
/// features; `--version` still prints the version alone.
#[tokio::test]
async fn version_names_commit_date_and_features() {
    let (ok, out, err) = run(&["version"]).await;
    assert!(ok, "{err}");
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key}: line in {out}"))
            .trim()
            .to_owned()
    };
    assert!(
        out.starts_with(&format!("mcp-fleet {}\n", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    let commit = field("commit");
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match git {
        Some(head) => assert_eq!(commit, head, "{out}"),
        None => assert_eq!(commit, "unknown", "{out}"),
    }
    let built = field("built");
    assert!(
        built.len() == 10 && chrono::NaiveDate::parse_from_str(&built, "%Y-%m-%d").is_ok(),
        "{out}"
    );
    assert!(!field("features").is_empty(), "{out}");
    assert!(field("databases").contains("sqlite"), "{out}");

    let (ok, out, _) = run(&["--version"]).await;
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("mcp-fleet {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `completions bash|zsh|fish` print scripts that know every subcommand; bash's is loaded by a
/// real bash and completes `wat` to `watch`.
#[tokio::test]
async fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _mcp__fleet"),
        ("zsh", "#compdef mcp-fleet"),
        ("fish", "complete -c mcp-fleet"),
    ] {
        let (ok, out, err) = run(&["completions", shell]).await;
        assert!(ok, "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: {out}");
        for sub in ["serve", "watch", "gateway", "completions", "version"] {
            assert!(out.contains(sub), "{shell} script lacks {sub}");
        }
    }
    let (code, _, err) = run_code(&["completions", "tcsh"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("bash") && err.contains("fish"), "{err}");

    let (_, script, _) = run(&["completions", "bash"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mcp-fleet.bash");
    std::fs::write(&file, script).expect("write");
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(
            "source \"$1\"; COMP_WORDS=(mcp-fleet wat); COMP_CWORD=1; \
             _mcp__fleet mcp-fleet wat mcp-fleet; echo \"${COMPREPLY[*]}\"",
        )
        .arg("bash")
        .arg(&file)
        .output()
        .await
        .expect("run bash");
    let words = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        words.trim(),
        "watch",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `man` prints a roff page generated from the command line; `man --dir` writes one per
/// subcommand, with its options.
#[tokio::test]
async fn man_pages_are_generated_from_the_command_line() {
    let (ok, out, err) = run(&["man"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(".TH mcp-fleet 1"), "{out}");
    for sub in ["serve", "watch", "completions", "version"] {
        assert!(out.contains(sub), "the page lacks {sub}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pages = dir.path().join("man1");
    let (ok, _, err) = run(&["man", "--dir", pages.to_str().expect("utf-8")]).await;
    assert!(ok, "{err}");
    let watch = std::fs::read_to_string(pages.join("mcp-fleet-watch.1")).expect("watch page");
    assert!(watch.contains(".TH mcp-fleet-watch 1"), "{watch}");
    assert!(watch.contains("\\-\\-tags"), "{watch}");
    assert!(pages.join("mcp-fleet.1").is_file());
    assert!(pages.join("mcp-fleet-token-create.1").is_file());
}

/// The repository's LICENSE is the license Cargo.toml names.
#[test]
fn the_license_file_matches_cargo_toml() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("TOML");
    let license = manifest["workspace"]["package"]["license"]
        .as_str()
        .expect("workspace.package.license");
    assert_eq!(license, env!("CARGO_PKG_LICENSE"));
    let text = std::fs::read_to_string(root.join("LICENSE")).expect("LICENSE at the root");
    assert_eq!(
        license, "Apache-2.0",
        "LICENSE holds the Apache License 2.0 text"
    );
    assert!(text.contains("Apache License") && text.contains("Version 2.0, January 2004"));
    assert!(text.contains("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION"));
}

/// The config file's values yield to environment variables, which yield to flags: for the
/// listen address and database of `serve`, the database of `token`, and the registry URL and
/// token of client commands; it is found in the working directory, in
/// `$XDG_CONFIG_HOME/mcp-fleet/config.toml`, or where `--config`/`MCP_FLEET_CONFIG` say.
#[tokio::test]
async fn config_file_below_environment_below_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let db = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    std::fs::write(
        work.join("mcp-fleet.toml"),
        format!(
            "database-url = \"{}\"\n[serve]\nlisten = \"127.0.0.2:0\"\nno-health-worker = true\n",
            db("file.db")
        ),
    )
    .expect("write");
    let serve = |envs: &[(&str, String)], args: &[&str]| {
        let mut cmd = binary();
        cmd.current_dir(&work).arg("serve").args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd
    };

    // File over defaults.
    let from_file = spawn_command(serve(&[], &[])).await;
    assert!(
        from_file.url.starts_with("http://127.0.0.2:"),
        "{}",
        from_file.url
    );
    assert!(dir.path().join("file.db").is_file());
    // Environment over the file.
    let env = [
        ("MCP_FLEET_LISTEN", "127.0.0.3:0".to_owned()),
        ("MCP_FLEET_DATABASE_URL", db("env.db")),
    ];
    let from_env = spawn_command(serve(&env, &[])).await;
    assert!(
        from_env.url.starts_with("http://127.0.0.3:"),
        "{}",
        from_env.url
    );
    assert!(dir.path().join("env.db").is_file());
    from_env.terminate().await;
    // Flags over the environment.
    let flag_db = db("flag.db");
    let from_flags = spawn_command(serve(
        &env,
        &["--listen", "127.0.0.4:0", "--database-url", &flag_db],
    ))
    .await;
    assert!(
        from_flags.url.starts_with("http://127.0.0.4:"),
        "{}",
        from_flags.url
    );
    assert!(dir.path().join("flag.db").is_file());
    from_flags.terminate().await;

    // `token create` finds the database in the same file; writes then need a token.
    let mut cmd = binary();
    cmd.current_dir(&work)
        .args(["token", "create", "--scopes", "servers:write", "--ids", "*"]);
    let (code, token, err) = output(cmd).await;
    assert_eq!(code, Some(0), "{err}");
    let token = token.trim().to_owned();

    // Client commands: registry and token from $XDG_CONFIG_HOME/mcp-fleet/config.toml.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("mcp-fleet")).expect("mkdir");
    std::fs::write(
        xdg.join("mcp-fleet/config.toml"),
        format!("registry = \"{}\"\ntoken = \"{token}\"\n", from_file.url),
    )
    .expect("write");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let file = entry(dir.path(), "payments", &["billing"]);
    let client = |envs: &[(&str, &str)], args: &[&str]| {
        let mut cmd = binary();
        cmd.current_dir(&elsewhere)
            .env("XDG_CONFIG_HOME", &xdg)
            .env_remove("MCP_FLEET_TOKEN")
            .args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        output(cmd)
    };
    let (code, _, err) = client(&[], &["register", "--file", &file]).await;
    assert_eq!(code, Some(0), "file's registry and token: {err}");
    let (code, _, err) = client(
        &[("MCP_FLEET_TOKEN", "mcpf_tok_bad.bad")],
        &["register", "--file", &file],
    )
    .await;
    assert_eq!(
        code,
        Some(3),
        "the environment's token wins over the file's: {err}"
    );
    let (code, _, err) = client(
        &[("MCP_FLEET_TOKEN", "mcpf_tok_bad.bad")],
        &["register", "--file", &file, "--token", &token],
    )
    .await;
    assert_eq!(code, Some(0), "the flag's token wins: {err}");

    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let (code, _, err) = client(&[("MCP_FLEET_REGISTRY", dead.as_str())], &["ls"]).await;
    assert_ne!(code, Some(0));
    assert!(
        err.contains(&dead),
        "the environment's registry wins: {err}"
    );
    let (code, out, err) = client(
        &[("MCP_FLEET_REGISTRY", dead.as_str())],
        &["ls", "--registry", &from_file.url],
    )
    .await;
    assert_eq!(code, Some(0), "the flag's registry wins: {err}");
    assert!(out.contains("payments"), "{out}");

    // Named files: --config over MCP_FLEET_CONFIG; errors name the file and the key.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[serve]\nlisten = \"127.0.0.1:0\"\nregisty = \"x\"\n").expect("write");
    let bad = bad.to_str().expect("utf-8").to_owned();
    let (code, _, err) = client(&[], &["ls", "--config", &bad]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&bad) && err.contains("unknown key `registy` in [serve]"),
        "{err}"
    );
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().expect("utf-8");
    let (code, _, err) = client(&[("MCP_FLEET_CONFIG", missing)], &["ls"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(missing), "{err}");
    let (code, _, err) = client(&[("MCP_FLEET_CONFIG", missing)], &["ls", "--config", &bad]).await;
    assert!(
        code == Some(1) && err.contains("registy"),
        "--config wins: {err}"
    );
    from_file.terminate().await;

    // --config is global, listed once: in `mcp-fleet --help`.
    let (_, top, _) = run(&["--help"]).await;
    assert!(
        top.contains("--config <FILE>") && top.contains("MCP_FLEET_CONFIG"),
        "{top}"
    );
    let (_, ls, _) = run(&["ls", "--help"]).await;
    assert!(!ls.contains("--config"), "{ls}");
}

/// `watch` prints each change as it commits, only those of servers with the tags asked for,
/// and after its registry restarts it resumes after the last change it printed
/// (`Last-Event-ID`): a change made meanwhile (through another registry process on the same
/// database, which one SQLite file allows once the first has stopped) is printed, not lost.
#[tokio::test]
async fn watch_follows_filters_and_resumes_after_a_restart() {
    let db = mcp_fleet_test_support::sqlite();
    let serve = |listen: &str| {
        let mut cmd = binary();
        cmd.args(["serve", "--no-health-worker", "--listen", listen])
            .args(["--database-url", &db.url]);
        cmd
    };
    let watched = spawn_command(serve("127.0.0.1:0")).await;
    let a = watched.url.clone();
    let dir = tempfile::tempdir().expect("tempdir");

    let mut watch = binary()
        .args(["watch", "--registry", &a, "--tags", "products"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn watch");
    let mut out = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let mut err = BufReader::new(watch.stderr.take().expect("stderr")).lines();
    line_where(&mut err, "the watching line", PROCESS_DEADLINE, |l| {
        l.starts_with("watching ")
    })
    .await;

    let register = |registry: &str, id: &str, tags: &[&str]| {
        let file = entry(dir.path(), id, tags);
        let registry = registry.to_owned();
        async move {
            let (ok, _, e) = run(&["register", "--registry", &registry, "--file", &file]).await;
            assert!(ok, "{e}");
        }
    };
    register(&a, "noise", &["other"]).await;
    register(&a, "catalog", &["products", "search"]).await;
    let first = line_where(&mut out, "a change", PROCESS_DEADLINE, |_| true).await;
    assert!(
        first.contains("created")
            && first.contains("catalog")
            && first.contains("[products,search]"),
        "only servers with the tag: {first}"
    );

    // The watched registry goes away; a change is made through the other one meanwhile.
    let listen = a.trim_start_matches("http://").to_owned();
    watched.terminate().await;
    line_where(&mut err, "a reconnecting line", PROCESS_DEADLINE, |l| {
        l.contains("reconnecting in")
    })
    .await;
    let other = spawn_command(serve("127.0.0.1:0")).await;
    register(&other.url, "catalog-2", &["products"]).await;
    register(&other.url, "noise-2", &["other"]).await;
    other.terminate().await;
    let restarted = spawn_command(serve(&listen)).await;
    let next = line_where(
        &mut out,
        "the change made while down",
        PROCESS_DEADLINE,
        |_| true,
    )
    .await;
    assert!(
        next.contains("created") && next.contains("catalog-2"),
        "resumed after the last change seen: {next}"
    );
    let (ok, _, e) = run(&["rm", "--registry", &restarted.url, "catalog"]).await;
    assert!(ok, "{e}");
    let (ok, _, e) = run(&["rm", "--registry", &restarted.url, "noise"]).await;
    assert!(ok, "{e}");
    let deleted = line_where(&mut out, "the deletion", PROCESS_DEADLINE, |_| true).await;
    assert!(
        deleted.contains("deleted") && deleted.contains("catalog"),
        "{deleted}"
    );
    let _ = watch.start_kill();

    // --since replays the log, --json as one object per line.
    let mut replay = binary()
        .args([
            "watch",
            "--registry",
            &restarted.url,
            "--since",
            "0",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn watch");
    let mut out = BufReader::new(replay.stdout.take().expect("stdout")).lines();
    let first = line_where(&mut out, "a replayed change", PROCESS_DEADLINE, |_| true).await;
    let first: serde_json::Value = serde_json::from_str(&first).expect("JSON line");
    assert_eq!(first["event"], "created", "{first}");
    assert_eq!(first["data"]["id"], "noise", "{first}");
    assert!(first["revision"].as_i64().is_some_and(|r| r > 0), "{first}");
    let _ = replay.start_kill();
    restarted.terminate().await;
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
