//! `tools` and `call` name tools by service, as the gateway does: a service with two instances
//! lists each tool once, as `<service>__<tool>`, and its bare name still calls it.

use mcp_fleet_sample_servers::Sample;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::{run, serve_command, spawn_command};

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
