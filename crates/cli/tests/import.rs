//! `import --from` and `register --server-json`: the official MCP Registry's records into
//! entries, against a recorded answer of the public registry and the schema's own examples.
//!
//! Over 500 lines: the recorded registry it imports from is served by the test file itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::{Running, run, run_code, spawn_command};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/official-registry")
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("read fixture");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A registry with its health worker off: the recorded servers' URLs are on the internet,
/// which a test must never probe.
async fn registry_without_worker() -> (Running, mcp_fleet_test_support::TestDb) {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = crate::common::serve_command(&db.url);
    cmd.arg("--no-health-worker");
    (spawn_command(cmd).await, db)
}

/// The recorded `GET /v0.1/servers` pages on loopback; keeps the query strings it was sent.
async fn recorded_public_registry(
    shutdown: &CancellationToken,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let pages = [
        fixture("servers-page-1.json"),
        fixture("servers-page-2.json"),
    ];
    let cursor = pages[0]["metadata"]["nextCursor"]
        .as_str()
        .expect("page 1 has a next cursor")
        .to_owned();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = (Arc::new(pages), cursor, seen.clone());
    type St = (Arc<[Value; 2]>, String, Arc<Mutex<Vec<String>>>);
    let app = axum::Router::new()
        .route(
            "/v0.1/servers",
            get(
                |State((pages, cursor, seen)): State<St>,
                 Query(q): Query<std::collections::BTreeMap<String, String>>| async move {
                    seen.lock().expect("lock").push(
                        q.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join("&"),
                    );
                    let page = match q.get("cursor") {
                        Some(c) if *c == cursor => 1,
                        _ => 0,
                    };
                    axum::Json(pages[page].clone())
                },
            ),
        )
        // A registry that wants a token of its own.
        .route(
            "/private/v0.1/servers",
            get(|| async { axum::http::StatusCode::UNAUTHORIZED }),
        )
        // One whose cursor leads back to the same page, forever.
        .route(
            "/loop/v0.1/servers",
            get(|| async {
                axum::Json(json!({"servers": [], "metadata": {"nextCursor": "again", "count": 0}}))
            }),
        )
        .with_state(state);
    let url = mcp_fleet_test_support::serve(app, shutdown.clone()).await;
    (url, seen)
}

async fn import_json(args: &[&str]) -> Value {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", "json"]);
    let (ok, out, err) = run(&all).await;
    assert!(ok, "import {args:?}: {err}");
    serde_json::from_str(&out).expect("import -o json prints JSON")
}

fn counts(report: &Value) -> [u64; 4] {
    ["created", "updated", "unchanged", "skipped"].map(|k| report[k].as_u64().expect(k))
}

async fn entry_count(reg: &str) -> usize {
    let (ok, out, err) = run(&["ls", "--registry", reg, "--json"]).await;
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).expect("ls --json");
    listed["servers"].as_array().expect("servers").len()
}

#[tokio::test]
async fn imports_a_recorded_answer_of_the_public_registry() {
    let shutdown = CancellationToken::new();
    let (from, seen) = recorded_public_registry(&shutdown).await;
    let (server, _db) = registry_without_worker().await;
    let reg = server.url.as_str();
    let args = [
        "--registry",
        reg,
        "--from",
        &from,
        "--tags",
        "public,imported",
    ];

    // A dry run reports what an import would do and writes nothing.
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let report = import_json(&dry).await;
    assert_eq!(report["dryRun"], true);
    assert_eq!(counts(&report), [1, 0, 0, 4], "{report:#}");
    assert_eq!(entry_count(reg).await, 0, "a dry run wrote");
    // Both pages were read, following the cursor.
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            "limit=100".to_owned(),
            "cursor=io.github.domdomegg/time-mcp-nuget:1.0.8&limit=100".to_owned()
        ]
    );

    // `--search` is the API's own filter, passed on.
    seen.lock().expect("lock").clear();
    let mut searching = dry.clone();
    searching.extend_from_slice(&["--search", "cyphrex"]);
    import_json(&searching).await;
    assert_eq!(
        seen.lock().expect("lock")[0],
        "limit=100&search=cyphrex",
        "the first page's query"
    );

    let mut dry_table = vec!["import"];
    dry_table.extend_from_slice(&dry);
    let (ok, table, err) = run(&dry_table).await;
    assert!(ok, "{err}");
    assert!(
        table.contains("dry run, nothing written: 1 created, 0 updated, 0 unchanged, 4 skipped"),
        "{table}"
    );

    // For real: the same report, and the entry is there.
    let report = import_json(&args).await;
    assert_eq!(report["dryRun"], false);
    assert_eq!(counts(&report), [1, 0, 0, 4], "{report:#}");
    let why = |name: &str, version: &str| {
        report["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .find(|l| l["name"] == name && l["version"] == version)
            .map_or_else(
                || panic!("{name} {version} not reported: {report:#}"),
                |l| (l["action"].clone(), l["reason"].clone()),
            )
    };
    assert_eq!(
        why("io.github.getcyphrex/cyphrex-mcp", "0.1.0"),
        (json!("created"), Value::Null)
    );
    assert_eq!(
        why("io.github.domdomegg/airtable-mcp-server", "1.7.2"),
        (json!("skipped"), json!("not the latest version (1.7.3 is)"))
    );
    for (name, version) in [
        ("io.github.domdomegg/airtable-mcp-server", "1.7.3"),
        ("io.github.domdomegg/time-mcp-nuget", "1.0.8"),
        ("io.github.domdomegg/time-mcp-pypi", "1.0.6"),
    ] {
        assert_eq!(
            why(name, version),
            (json!("skipped"), json!("only stdio packages"))
        );
    }
    let (ok, out, err) = run(&["get", "--registry", reg, "io-github-getcyphrex-cyphrex-mcp"]).await;
    assert!(ok, "{err}");
    let entry: Value = serde_json::from_str(&out).expect("get prints JSON");
    assert_eq!(entry["service"], "io-github-getcyphrex-cyphrex-mcp");
    assert_eq!(entry["name"], "Cyphrex");
    assert_eq!(entry["url"], "https://mcp.cyphrex.io");
    assert_eq!(entry["version"], "0.1.0");
    assert_eq!(entry["tags"], json!(["public", "imported"]));
    assert_eq!(
        entry["metadata"]["officialName"],
        "io.github.getcyphrex/cyphrex-mcp"
    );
    assert_eq!(entry_count(reg).await, 1);

    // Idempotent: again, nothing changes; other tags update the entry.
    let report = import_json(&args).await;
    assert_eq!(counts(&report), [0, 0, 1, 4], "{report:#}");
    let report = import_json(&["--registry", reg, "--from", &from, "--tags", "public"]).await;
    assert_eq!(counts(&report), [0, 1, 0, 4], "{report:#}");
    assert_eq!(entry_count(reg).await, 1);

    // An entry of that id registered by someone else is left alone.
    let (ok, _, err) = run(&["rm", "--registry", reg, "io-github-getcyphrex-cyphrex-mcp"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        reg,
        "--id",
        "io-github-getcyphrex-cyphrex-mcp",
        "--name",
        "Ours",
        "--url",
        "https://ours.example",
        "--server-version",
        "9.0.0",
    ])
    .await;
    assert!(ok, "{err}");
    let report = import_json(&["--registry", reg, "--from", &from]).await;
    assert_eq!(counts(&report), [0, 0, 0, 5], "{report:#}");
    assert_eq!(
        why_in(&report, "io.github.getcyphrex/cyphrex-mcp"),
        format!(
            "id io-github-getcyphrex-cyphrex-mcp is taken by an entry not imported from {from}"
        )
    );

    // Bad input: a clear error, exit code 1.
    let (code, _, err) = run_code(&[
        "import",
        "--registry",
        reg,
        "--from",
        &from,
        "--tags",
        "Bad Tag",
    ])
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.starts_with("error: --tags: \"Bad Tag\""), "{err}");

    // A source that cannot be read: exit code 1, never 3 (that is this registry refusing).
    let refused = mcp_fleet_test_support::refused_url();
    let private = format!("{from}/private");
    for source in [refused.as_str(), private.as_str()] {
        let (code, _, err) = run_code(&["import", "--registry", reg, "--from", source]).await;
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.starts_with(&format!("error: cannot list the servers of {source}: ")),
            "{err}"
        );
    }

    let looping = format!("{from}/loop");
    let (code, _, err) = run_code(&["import", "--registry", reg, "--from", &looping]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("sent the cursor \"again\" twice"), "{err}");

    server.terminate().await;
    shutdown.cancel();
}

fn why_in(report: &Value, name: &str) -> String {
    report["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|l| l["name"] == name)
        .and_then(|l| l["reason"].as_str())
        .unwrap_or_else(|| panic!("{name} not skipped: {report:#}"))
        .to_owned()
}

/// A server.json file in `dir`.
fn write(dir: &tempfile::TempDir, name: &str, record: &Value) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, record.to_string()).expect("write server.json");
    path.to_str().expect("utf-8 path").to_owned()
}

/// `register --registry REG --server-json FILE FLAGS…`: (exit code, stdout, stderr).
async fn register_server_json(
    reg: &str,
    file: &str,
    flags: &[&str],
) -> (Option<i32>, String, String) {
    let mut args = vec!["register", "--registry", reg, "--server-json", file];
    args.extend_from_slice(flags);
    run_code(&args).await
}

#[tokio::test]
async fn registers_the_schemas_server_json_examples() {
    let (server, _db) = registry_without_worker().await;
    let reg = server.url.as_str();
    let example = |name: &str| {
        fixtures()
            .join("server-json")
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_owned()
    };

    // Its one streamable-http remote (a variable at its default) gives the url.
    let remote = example("with-remote.json");
    let (code, out, err) =
        register_server_json(reg, &remote, &["--tags", "weather,forecast"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "registered io-github-user-remote-weather");
    let (ok, out, err) = run(&["get", "--registry", reg, "io-github-user-remote-weather"]).await;
    assert!(ok, "{err}");
    let entry: Value = serde_json::from_str(&out).expect("get prints JSON");
    assert_eq!(entry["name"], "Remote Weather");
    assert_eq!(entry["url"], "https://api.example.com");
    assert_eq!(entry["version"], "2.1.0");
    assert_eq!(
        entry["description"],
        "Remote MCP server reachable over streamable HTTP."
    );
    assert_eq!(entry["tags"], json!(["weather", "forecast"]));
    assert_eq!(
        entry["auth"]["type"], "bearer",
        "it asks for an Authorization header"
    );
    assert_eq!(
        entry["metadata"]["officialName"],
        "io.github.user/remote-weather"
    );

    // Flags override the file; registering again replaces the entry.
    let (code, out, err) = register_server_json(reg, &remote, &["--server-version", "2.2.0"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("re-registered io-github-user-remote-weather"),
        "{out}"
    );

    // No streamable-http remote: a clear error, unless --url says where it is served.
    let package = example("with-package.json");
    let failures = [
        (
            package.clone(),
            "with-package.json: only stdio packages: mcp-fleet registers servers reached over \
             streamable HTTP",
        ),
        (
            example("minimal.json"),
            "minimal.json: no remotes and no packages",
        ),
    ];
    for (file, want) in &failures {
        let (code, _, err) = register_server_json(reg, file, &[]).await;
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(want), "{err}");
    }
    let (code, out, err) =
        register_server_json(reg, &package, &["--url", "https://weather.internal:8080"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "registered io-github-user-local-weather");

    // Several remotes (the error names them, --url picks), a remote mcp-fleet cannot hold, and
    // a file that is no server.json.
    let dir = tempfile::tempdir().expect("tempdir");
    let with_remotes = |remotes: Value| {
        let mut record = fixture("server-json/with-remote.json");
        record["remotes"] = remotes;
        record
    };
    let cases = [
        (
            with_remotes(json!([
                {"type": "streamable-http", "url": "https://eu.example.com/mcp"},
                {"type": "streamable-http", "url": "https://us.example.com/mcp"}])),
            "2 streamable-http remotes (https://eu.example.com/mcp, https://us.example.com/mcp): \
             an entry has one url: choose one with --url URL",
        ),
        (
            with_remotes(json!([{"type": "streamable-http", "url": "https://a.example/v1/rpc"}])),
            "invalid url https://a.example/v1/rpc: does not end in /mcp",
        ),
        (
            json!({"title": "no name"}),
            "not a server.json record: no \"name\"",
        ),
    ];
    for (i, (record, want)) in cases.iter().enumerate() {
        let file = write(&dir, &format!("case-{i}.json"), record);
        let (code, _, err) = register_server_json(reg, &file, &[]).await;
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(&format!("case-{i}.json: {want}")), "{err}");
    }
    let several = dir.path().join("case-0.json");
    let several = several.to_str().expect("utf-8 path");
    let (code, out, err) =
        register_server_json(reg, several, &["--url", "https://eu.example.com"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("re-registered io-github-user-remote-weather"),
        "{out}"
    );
    assert_eq!(entry_count(reg).await, 2);

    server.terminate().await;
}

/// `ls --json` of `reg`: each entry's id, service, url, version, tags and auth type.
async fn entries(reg: &str) -> Vec<Value> {
    let (ok, out, err) = run(&["ls", "--registry", reg, "--json"]).await;
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).expect("ls --json");
    listed["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|e| {
            json!({"id": e["id"], "service": e["service"], "name": e["name"], "url": e["url"],
                   "version": e["version"], "tags": e["tags"], "auth": e["auth"]["type"]})
        })
        .collect()
}

#[tokio::test]
async fn round_trip_through_the_v01_api_of_another_registry() {
    // Registry A serves its entries as the official API; B imports them.
    let db_a = mcp_fleet_test_support::sqlite();
    let mut cmd = crate::common::serve_command(&db_a.url);
    cmd.args(["--no-health-worker", "--registry-namespace", "com.example"]);
    let a = spawn_command(cmd).await;
    let (b, _db_b) = registry_without_worker().await;
    let register = |args: Vec<&str>| {
        let mut all = vec!["register", "--registry", a.url.as_str()];
        all.extend(args);
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            let (ok, _, err) = run(&all).await;
            assert!(ok, "{all:?}: {err}");
        }
    };
    // An instance of service catalog; nothing listens at these URLs, and neither registry probes.
    let instance =
        |id: &'static str, path: &'static str, version: &'static str, tags: &'static str| {
            register(vec![
                "--id",
                id,
                "--service",
                "catalog",
                "--name",
                "Catalog",
                "--url",
                path,
                "--server-version",
                version,
                "--tags",
                tags,
            ])
        };
    instance(
        "catalog-1",
        "http://127.0.0.1:9/c1",
        "1.0.0",
        "products,catalog",
    )
    .await;
    instance("catalog-2", "http://127.0.0.1:9/c2", "1.1.0", "catalog").await;
    instance("catalog-3", "http://127.0.0.1:9/c3", "1.1.0", "eu,catalog").await;
    register(vec![
        "--id",
        "search",
        "--name",
        "Search",
        "--url",
        "http://127.0.0.1:10",
        "--server-version",
        "0.3.0",
        "--tags",
        "search",
        "--auth-type",
        "bearer",
    ])
    .await;

    let import = [
        "--registry",
        b.url.as_str(),
        "--from",
        a.url.as_str(),
        "--tags",
        "mirrored",
    ];
    let report = import_json(&import).await;
    assert_eq!(counts(&report), [4, 0, 0, 0], "{report:#}");
    let catalog = |id: &str, url: &str, version: &str, tags: Value| {
        json!({"id": id, "service": "catalog", "name": "Catalog", "url": url,
               "version": version, "tags": tags, "auth": "none"})
    };
    // Tags as mapped: `--tags`, then those of every instance of the version, sorted.
    assert_eq!(
        entries(&b.url).await,
        [
            catalog(
                "catalog-1",
                "http://127.0.0.1:9/c1",
                "1.0.0",
                json!(["mirrored", "catalog", "products"])
            ),
            catalog(
                "catalog-2",
                "http://127.0.0.1:9/c2",
                "1.1.0",
                json!(["mirrored", "catalog", "eu"])
            ),
            catalog(
                "catalog-3",
                "http://127.0.0.1:9/c3",
                "1.1.0",
                json!(["mirrored", "catalog", "eu"])
            ),
            json!({"id": "search", "service": "search", "name": "Search",
                   "url": "http://127.0.0.1:10", "version": "0.3.0",
                   "tags": ["mirrored", "search"], "auth": "bearer"}),
        ]
    );
    let names: Vec<&str> = report["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert!(
        names.iter().all(|n| n.starts_with("com.example/")),
        "{names:?}"
    );

    // Again: nothing to do.
    let report = import_json(&import).await;
    assert_eq!(counts(&report), [0, 0, 4, 0], "{report:#}");

    // A change in A is an update in B, and only that.
    instance(
        "catalog-2",
        "http://127.0.0.1:9/c2-moved",
        "1.1.0",
        "catalog",
    )
    .await;
    let report = import_json(&import).await;
    assert_eq!(counts(&report), [0, 1, 3, 0], "{report:#}");
    let updated: Vec<&Value> = report["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter(|l| l["action"] == "updated")
        .collect();
    assert_eq!(updated[0]["id"], "catalog-2");
    assert_eq!(updated[0]["url"], "http://127.0.0.1:9/c2-moved");
    let moved = entries(&b.url).await;
    assert_eq!(moved[1]["url"], "http://127.0.0.1:9/c2-moved");
    assert_eq!(moved[1]["tags"], json!(["mirrored", "catalog", "eu"]));

    a.terminate().await;
    b.terminate().await;
}
