//! `diff SERVICE FROM TO`, and `route set` refused for a version that breaks the stable
//! version's contract until `--allow-breaking REASON`, against a real registry process whose
//! health worker lists real rmcp servers with a different tool set per version.

use std::time::Duration;

use mcp_fleet_test_support::eventually;
use mcp_fleet_test_support::mcp_server::McpServer;
use serde_json::Value;

use crate::common::{run, run_code, serve};

#[tokio::test]
async fn diff_shows_breaking_changes_and_route_set_needs_allow_breaking_for_them() {
    let db = mcp_fleet_test_support::sqlite();
    let registry = serve(&db.url).await;
    let reg = registry.url.as_str();
    let mut servers = Vec::new();
    for (id, version, tools) in [
        ("inv-1", "1.0.0", &["lookup", "stock"][..]),
        ("inv-11", "1.1.0", &["lookup", "stock", "reserve"][..]),
        ("inv-2", "2.0.0", &["lookup"][..]),
    ] {
        let server = McpServer::start(id, tools).await;
        let (ok, _, err) = run(&[
            "register",
            "--registry",
            reg,
            "--id",
            id,
            "--service",
            "inventory",
            "--name",
            "Inventory",
            "--url",
            &server.base_url,
            "--server-version",
            version,
        ])
        .await;
        assert!(ok, "register {id}: {err}");
        servers.push(server);
    }
    // The health worker lists each instance once it has registered.
    for to in ["1.1.0", "2.0.0"] {
        eventually(Duration::from_secs(20), "both versions listed", || async {
            let (ok, _, _) = run(&["diff", "--registry", reg, "inventory", "1.0.0", to]).await;
            ok.then_some(())
        })
        .await;
    }

    let (code, out, err) =
        run_code(&["diff", "--registry", reg, "inventory", "1.0.0", "1.1.0"]).await;
    assert_eq!(code, Some(0), "{err}");
    let row = out
        .lines()
        .find(|l| l.contains("reserve"))
        .unwrap_or_else(|| panic!("no reserve row: {out}"));
    assert!(row.contains("added") && row.contains("no"), "{row}");
    assert_eq!(
        out.lines().last(),
        Some(
            "compatible: a client written for 1.0.0 works with 1.1.0 (1 tool added, 0 tools changed)"
        ),
        "{out}"
    );

    // Breaking: the exit code stays 0, the last line says so.
    let (code, out, err) =
        run_code(&["diff", "--registry", reg, "inventory", "1.0.0", "2.0.0"]).await;
    assert_eq!(code, Some(0), "{err}");
    let row = out
        .lines()
        .find(|l| l.contains("stock"))
        .unwrap_or_else(|| panic!("no stock row: {out}"));
    assert!(
        row.contains("removed") && row.contains("yes") && row.contains("Tool `stock` was removed."),
        "{row}"
    );
    assert_eq!(
        out.lines().last(),
        Some("BREAKING: a client written for 1.0.0 can break on 2.0.0 (1 tool removed)"),
        "{out}"
    );
    for format in ["json", "yaml"] {
        let (ok, out, err) = run(&[
            "diff",
            "--registry",
            reg,
            "inventory",
            "1.0.0",
            "2.0.0",
            "-o",
            format,
        ])
        .await;
        assert!(ok, "{err}");
        let doc: Value = if format == "json" {
            serde_json::from_str(&out).expect("JSON")
        } else {
            serde_yaml_ng::from_str(&out).expect("YAML")
        };
        assert_eq!(doc["breaking"], true, "{format}: {out}");
        assert_eq!(doc["removed"], serde_json::json!(["stock"]), "{format}");
        assert_eq!(
            (&doc["from"], &doc["to"]),
            (&"1.0.0".into(), &"2.0.0".into())
        );
    }

    // Mistakes: a version that is not one, an unknown service.
    let (code, _, err) = run_code(&["diff", "--registry", reg, "inventory", "1.0", "2.0.0"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("FROM \"1.0\": the version"), "{err}");
    let (code, _, err) = run_code(&["diff", "--registry", reg, "nothing", "1.0.0", "2.0.0"]).await;
    assert_eq!(code, Some(1));
    assert!(
        err.contains("registry answered 404") && err.contains("has no entries"),
        "{err}"
    );

    // A breaking canary is refused, saying what breaks and how to go ahead.
    let set = [
        "route",
        "set",
        "--registry",
        reg,
        "inventory",
        "1.0.0=90",
        "2.0.0=10",
    ];
    let (code, out, err) = run_code(&set).await;
    assert_eq!(code, Some(1), "{out}");
    for says in [
        "registry answered 409",
        "2.0.0 stock: Tool `stock` was removed.",
        "`mcp-fleet diff inventory 1.0.0 2.0.0`",
        "--allow-breaking REASON",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
    let (ok, _, _) = run(&["route", "get", "--registry", reg, "inventory"]).await;
    assert!(!ok, "nothing was set");

    let reason = "clients pinned to 2.x";
    let mut allowed = set.to_vec();
    allowed.extend(["--allow-breaking", reason]);
    let (ok, out, err) = run(&allowed).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "routing inventory: 1.0.0=90 2.0.0=10");
    assert!(
        err.contains("warning: 2.0.0 breaks the contract of the stable version 1.0.0"),
        "{err}"
    );
    let (ok, out, err) = run(&["route", "get", "--registry", reg, "inventory"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("contract: stable version 1.0.0"), "{out}");
    assert!(
        out.contains(&format!(
            "BREAKING: 2.0.0 breaks the contract of 1.0.0 (allowed: {reason})"
        )),
        "{out}"
    );
    let (_, out, err) = run_code(&["status", "--registry", reg]).await;
    assert!(
        out.contains(&format!(
            "BREAKING canary: inventory 2.0.0 (10%) breaks the contract of 1.0.0 (allowed: {reason})"
        )),
        "{out}{err}"
    );
    registry.terminate().await;
}
