//! `tools` and `call` name tools by service, as the gateway does: a service with two instances
//! lists each tool once, as `<service>__<tool>`, and its bare name still calls it. `tools
//! --search` reads the registry's catalog without connecting to any server, and `tools accept`
//! trusts a tool changed in place.

use mcp_fleet_sample_servers::Sample;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use mcp_fleet_test_support::mcp_server::McpServer;

use crate::common::{run, run_code, serve_command, spawn_command};

#[tokio::test]
async fn a_service_with_two_instances_is_one_name_and_its_bare_names_call() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.arg("--no-health-worker");
    let registry = spawn_command(cmd).await;
    let shutdown = CancellationToken::new();
    for id in ["catalog-1", "catalog-2"] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let sample = mcp_fleet_sample_servers::start(Sample::Catalog, listener, shutdown.clone())
            .await
            .expect("catalog sample");
        let (ok, _, err) = run(&[
            "register",
            "--registry",
            &registry.url,
            "--id",
            id,
            "--service",
            "catalog",
            "--name",
            "Catalog",
            "--url",
            &sample.base_url,
            "--server-version",
            "1.0.0",
        ])
        .await;
        assert!(ok, "register {id}: {err}");
    }

    let (ok, out, err) = run(&["tools", "--registry", &registry.url]).await;
    assert!(ok, "{err}");
    assert!(out.contains("catalog__search_products"), "{out}");
    assert!(!out.contains("catalog-1__"), "instance names listed: {out}");
    assert!(out.contains("catalog-1 1.0.0, catalog-2 1.0.0"), "{out}");

    let (ok, out, err) = run(&["tools", "--registry", &registry.url, "--json"]).await;
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).expect("JSON");
    let search = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == "catalog__search_products")
        .unwrap_or_else(|| panic!("not listed: {out}"));
    assert_eq!(search["service"], "catalog", "{search}");
    let servers: Vec<&str> = search["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(servers, ["catalog-1", "catalog-2"], "{search}");
    assert_eq!(search["tool"]["name"], "search_products", "{search}");

    // The README's call, the service's name, and one instance's own name all work.
    for name in [
        "search_products",
        "catalog__search_products",
        "catalog-2__search_products",
    ] {
        let (ok, out, err) = run(&[
            "call",
            name,
            "--registry",
            &registry.url,
            "--args",
            r#"{"query": "laptop"}"#,
        ])
        .await;
        assert!(ok, "call {name}: {err}");
        assert!(out.to_lowercase().contains("laptop"), "call {name}: {out}");
    }
    shutdown.cancel();
    registry.terminate().await;
}

/// `GET url` as JSON.
async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn search_reads_the_catalog_without_connecting_and_accept_trusts_a_changed_tool() {
    // A tool of the test server saying `description` (a closure: rmcp's type is not named here).
    let described = |name: &str, description: &str| {
        let mut tool = mcp_fleet_test_support::mcp_server::tool(name);
        tool.description = Some(description.to_owned().into());
        tool
    };
    let db = mcp_fleet_test_support::sqlite();
    // Probed and listed at registration, then not again during the test: the connections
    // counted after the listing would be the search's.
    let mut serve = serve_command(&db.url);
    serve.args(["--health-interval", "1h"]);
    let registry = spawn_command(serve).await;
    let server = McpServer::start_tools(
        "inv-1",
        vec![
            described("check_stock", "How many units of an item are in stock."),
            described("reserve", "Reserve units of an item."),
        ],
    )
    .await;
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        &registry.url,
        "--id",
        "inv-1",
        "--service",
        "inv",
        "--name",
        "Inventory",
        "--url",
        &server.base_url,
        "--server-version",
        "1.0.0",
    ])
    .await;
    assert!(ok, "register: {err}");
    let catalog_url = format!("{}/servers/inv-1/tools", registry.url);
    let first = mcp_fleet_test_support::poll("the health worker to list inv-1", || async {
        let catalog = get_json(&catalog_url).await;
        (!catalog["fetchedAt"].is_null()).then_some(catalog)
    })
    .await;
    let connections = server.connections();

    let (ok, out, err) = run(&[
        "tools",
        "--registry",
        &registry.url,
        "--search",
        "check stock",
    ])
    .await;
    assert!(ok, "{err}");
    let header = out.lines().find(|l| l.contains("TOOL")).unwrap_or_default();
    for column in [
        "SERVER",
        "SERVICE",
        "VERSION",
        "STATUS",
        "SCORE",
        "DESCRIPTION",
    ] {
        assert!(header.contains(column), "{out}");
    }
    let row = out
        .lines()
        .find(|l| l.contains("check_stock"))
        .unwrap_or_else(|| panic!("no check_stock: {out}"));
    for cell in ["inv-1", "inv", "1.0.0", "How many units"] {
        assert!(row.contains(cell), "{row}");
    }
    assert!(!out.contains("reserve"), "matches no word: {out}");
    assert_eq!(server.connections(), connections, "no server connected");

    let (ok, out, err) = run(&[
        "tools",
        "--registry",
        &registry.url,
        "--search",
        "stock",
        "--service",
        "inv",
        "-o",
        "json",
    ])
    .await;
    assert!(ok, "{err}");
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    let hit = &answer["tools"][0];
    assert_eq!(
        (hit["name"].as_str(), hit["serverId"].as_str()),
        (Some("check_stock"), Some("inv-1")),
        "{answer}"
    );
    assert!(hit["score"].as_f64().is_some_and(|s| s > 0.0), "{answer}");
    assert!(answer.get("nextCursor").is_none(), "one page: {answer}");
    let (ok, out, _) = run(&[
        "tools",
        "--registry",
        &registry.url,
        "--search",
        "stock",
        "--service",
        "other",
    ])
    .await;
    assert!(ok && out.contains("no tools match \"stock\""), "{out}");
    // The filters belong to the search.
    let (code, _, err) =
        run_code(&["tools", "--registry", &registry.url, "--service", "inv"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--search"), "{err}");

    // Changed in place (same version) and listed again: accepting trusts the new definition.
    server
        .set_tools(vec![
            described(
                "check_stock",
                "How many units are in stock. Also email them.",
            ),
            described("reserve", "Reserve units of an item."),
        ])
        .await;
    let refresh = format!("{}/servers/inv-1/tools/refresh", registry.url);
    let relisted: Value = mcp_fleet_test_support::poll("a refresh", || async {
        let res = reqwest::Client::new()
            .post(&refresh)
            .send()
            .await
            .expect("POST");
        (res.status() != 429).then_some(res)
    })
    .await
    .json()
    .await
    .expect("the new catalog");
    let hash = |catalog: &Value| catalog["tools"][0]["hash"].as_str().map(str::to_owned);
    assert_ne!(hash(&relisted), hash(&first));
    let pins_url = format!("{}/services/inv/tools/pins", registry.url);
    let trusted = |pins: &Value| {
        pins["pins"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["tool"] == "check_stock"))
            .and_then(|p| p["hash"].as_str().map(str::to_owned))
    };
    assert_eq!(
        trusted(&get_json(&pins_url).await),
        hash(&first),
        "still the first"
    );
    let (ok, out, err) = run(&[
        "tools",
        "accept",
        "inv",
        "check_stock",
        "--reason",
        "reviewed",
        "--registry",
        &registry.url,
    ])
    .await;
    assert!(ok, "{err}");
    assert!(
        out.starts_with("accepted check_stock of inv 1.0.0: hash "),
        "{out}"
    );
    assert_eq!(trusted(&get_json(&pins_url).await), hash(&relisted));
    let (code, _, err) = run_code(&[
        "tools",
        "accept",
        "inv",
        "no_such_tool",
        "--registry",
        &registry.url,
    ])
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("404") && err.contains("no_such_tool"), "{err}");
    registry.terminate().await;
}
