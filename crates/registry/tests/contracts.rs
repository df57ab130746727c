//! Contracts between versions on every backend, from catalogs the health worker listed off real
//! rmcp servers: `GET /services/{service}/diff`, a routing policy refused (`409`) when a version
//! given traffic breaks the stable version's contract, the override recorded with who and why,
//! and `/status` flagging the canary.

use std::sync::Arc;
use std::time::Duration;

use mcp_fleet_model::Scope;
use mcp_fleet_registry::{Config, HealthConfig};
use mcp_fleet_test_support::mcp_server::McpServer;
use mcp_fleet_test_support::{TestDb, all_backends, eventually};
use reqwest::Method;
use rmcp::model::Tool;
use serde_json::{Value, json};

use crate::auth::token;
use crate::common::{TestRegistry, start_checked_with};

/// How long a step may take before the test fails (never how long it waits).
const STEP: Duration = Duration::from_secs(15);

/// Probes often, so that a new entry is listed within a second of registering.
fn quick() -> HealthConfig {
    HealthConfig {
        interval: Duration::from_millis(250),
        timeout: Duration::from_secs(2),
        refresh: Duration::from_millis(100),
        rise: 1,
        fall: 1,
        ..HealthConfig::default()
    }
}

fn tool(name: &str, schema: Value) -> Tool {
    let Value::Object(schema) = schema else {
        panic!("a schema is an object")
    };
    Tool::new(
        name.to_owned(),
        format!("The {name} tool"),
        Arc::new(schema),
    )
}

/// `lookup` (an optional `sku`) and `stock`: the stable version.
fn v1() -> Vec<Tool> {
    vec![
        tool(
            "lookup",
            json!({"type": "object", "properties": {"sku": {"type": "string"}}}),
        ),
        tool("stock", json!({"type": "object"})),
    ]
}

/// v1 and `reserve`: compatible.
fn v1_1() -> Vec<Tool> {
    let mut tools = v1();
    tools.push(tool("reserve", json!({"type": "object"})));
    tools
}

/// `lookup` now requires `warehouse`, and `stock` is gone: breaking.
fn v2() -> Vec<Tool> {
    vec![tool(
        "lookup",
        json!({"type": "object",
            "properties": {"sku": {"type": "string"}, "warehouse": {"type": "string"}},
            "required": ["warehouse"]}),
    )]
}

/// A registry whose writes need a token, with instances of `inventory` at 1.0.0, 1.1.0 and
/// 2.0.0 (real servers, listed), and 3.0.0 (nothing listening: never listed). Returns the
/// registry, the servers (kept running), the token and its id.
async fn fleet(db: TestDb) -> (TestRegistry, Vec<McpServer>, String, String) {
    let (reg, _worker) = start_checked_with(db, Config::default(), quick()).await;
    let (bearer, token_id) =
        token(&reg, &[Scope::ServersWrite, Scope::RoutingWrite], "*", None).await;
    let mut servers = Vec::new();
    for (id, version, tools) in [
        ("inv-1", "1.0.0", v1()),
        ("inv-11", "1.1.0", v1_1()),
        ("inv-2", "2.0.0", v2()),
    ] {
        let server = McpServer::start_tools(id, tools).await;
        register(&reg, &bearer, id, &server.base_url, version).await;
        servers.push(server);
    }
    register(&reg, &bearer, "inv-3", "http://127.0.0.1:9", "3.0.0").await;
    for id in ["inv-1", "inv-11", "inv-2"] {
        eventually(STEP, &format!("{id} listed"), || async {
            let (status, body) = reg.get(&format!("/servers/{id}/tools")).await;
            assert_eq!(status, 200, "{body}");
            (!body["fetchedAt"].is_null()).then_some(())
        })
        .await;
    }
    (reg, servers, bearer, token_id)
}

async fn register(reg: &TestRegistry, bearer: &str, id: &str, url: &str, version: &str) {
    let body = json!({
        "id": id,
        "name": format!("Server {id}"),
        "url": url,
        "version": version,
        "service": "inventory",
    });
    let res = reg
        .send_as(Method::POST, "/servers", Some(bearer), Some(&body))
        .await;
    assert_eq!(res.status().as_u16(), 201, "{}: {id}", reg.backend);
}

/// `PUT /services/inventory/routing` with `body` as the token's holder.
async fn route(reg: &TestRegistry, bearer: &str, body: Value) -> (u16, Value, String) {
    let res = reg
        .send_as(
            Method::PUT,
            "/services/inventory/routing",
            Some(bearer),
            Some(&body),
        )
        .await;
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, res.json().await.expect("JSON"), content_type)
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("array")
        .iter()
        .filter_map(|n| n.as_str().or_else(|| n["name"].as_str()))
        .collect()
}

#[tokio::test]
async fn versions_are_diffed_and_breaking_ones_get_traffic_only_when_allowed() {
    for db in all_backends().await {
        let (reg, _servers, bearer, token_id) = fleet(db).await;
        let b = reg.backend;

        // Compatible: a tool added, nothing else.
        let (status, diff) = reg
            .get("/services/inventory/diff?from=1.0.0&to=1.1.0")
            .await;
        assert_eq!(status, 200, "{b}: {diff}");
        assert_eq!(
            (&diff["service"], &diff["from"], &diff["to"]),
            (&json!("inventory"), &json!("1.0.0"), &json!("1.1.0"))
        );
        assert_eq!(diff["breaking"], false, "{b}: {diff}");
        assert_eq!(names(&diff["added"]), ["reserve"]);
        assert!(names(&diff["removed"]).is_empty() && names(&diff["changed"]).is_empty());

        // Breaking: `stock` removed, `warehouse` required.
        let (status, diff) = reg
            .get("/services/inventory/diff?from=1.0.0&to=2.0.0")
            .await;
        assert_eq!(status, 200, "{b}: {diff}");
        assert_eq!(diff["breaking"], true, "{b}: {diff}");
        assert_eq!(names(&diff["removed"]), ["stock"]);
        assert_eq!(names(&diff["changed"]), ["lookup"]);
        let required = diff["changed"][0]["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .find(|c| c["kind"] == "requiredAdded")
            .expect("requiredAdded");
        assert_eq!(required["path"], "/properties/warehouse");
        assert_eq!(required["breaking"], true);

        // Bad input names its field; unknown or unlisted versions are 404s that say why.
        let rows = [
            ("/services/inventory/diff?to=2.0.0", 400, "from"),
            ("/services/inventory/diff?from=1.0.0", 400, "to"),
            ("/services/inventory/diff?from=1.0&to=2.0.0", 400, "from"),
            ("/services/inventory/diff?from=1.0.0&to=2.0.0&x=1", 400, "x"),
            (
                "/services/Inventory!/diff?from=1.0.0&to=2.0.0",
                400,
                "service",
            ),
            (
                "/services/nothing/diff?from=1.0.0&to=2.0.0",
                404,
                "has no entries",
            ),
            (
                "/services/inventory/diff?from=1.0.0&to=3.0.0",
                404,
                "3.0.0 has been listed yet",
            ),
            (
                "/services/inventory/diff?from=9.0.0&to=1.0.0",
                404,
                "9.0.0 has been listed yet",
            ),
        ];
        for (path, want, says) in rows {
            let (status, problem) = reg.get(path).await;
            assert_eq!(status, want, "{b}: {path}: {problem}");
            if want == 400 {
                assert_eq!(problem["errors"][0]["field"], says, "{b}: {path}");
            } else {
                let detail = problem["detail"].as_str().expect("detail");
                assert!(detail.contains(says), "{b}: {path}: {detail}");
            }
        }

        // A compatible canary and an unlisted one are set; the contract says which is which.
        let (status, doc, _) = route(
            &reg,
            &bearer,
            json!({"weights": {"1.0.0": 80, "1.1.0": 10, "3.0.0": 10}}),
        )
        .await;
        assert_eq!(status, 201, "{b}: {doc}");
        assert_eq!(
            doc["contract"],
            json!({"stable": "1.0.0", "breaking": [], "unknown": ["3.0.0"]})
        );
        assert!(doc.get("breakingAllowed").is_none(), "{doc}");

        // A breaking canary is refused, with every breaking change, and nothing is stored.
        let canary = json!({"weights": {"1.0.0": 90, "2.0.0": 10}});
        let (status, problem, content_type) = route(&reg, &bearer, canary.clone()).await;
        assert_eq!(status, 409, "{b}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["code"], "breaking-contract");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains("version 2.0.0") && detail.contains("allowBreaking"),
            "{detail}"
        );
        let breaks: Vec<(&str, &str, &str)> = problem["breaking"]
            .as_array()
            .expect("breaking")
            .iter()
            .map(|c| {
                assert_eq!(
                    (&c["version"], &c["stable"]),
                    (&json!("2.0.0"), &json!("1.0.0"))
                );
                (
                    c["tool"].as_str().expect("tool"),
                    c["path"].as_str().expect("path"),
                    c["message"].as_str().expect("message"),
                )
            })
            .collect();
        assert_eq!(
            breaks,
            [
                ("stock", "", "Tool `stock` was removed."),
                (
                    "lookup",
                    "/properties/warehouse",
                    "Property `warehouse` of the input schema is now required."
                ),
            ],
            "{b}"
        );
        let (_, stored) = reg.get("/services/inventory/routing").await;
        assert_eq!(
            stored["weights"]["1.1.0"], 10,
            "{b}: the refused policy was not stored"
        );

        // The stable version may go anywhere: 2.0.0 at 90 is the contract, 1.0.0 is held to it.
        let (status, problem, _) = route(
            &reg,
            &bearer,
            json!({"weights": {"1.0.0": 10, "2.0.0": 90}}),
        )
        .await;
        assert_eq!(status, 409, "{b}: {problem}");
        assert_eq!(problem["breaking"][0]["stable"], "2.0.0");
        assert_eq!(problem["breaking"][0]["version"], "1.0.0");
        // At weight 0 a breaking version gets no traffic: nothing to refuse.
        let (status, doc, _) = route(
            &reg,
            &bearer,
            json!({"weights": {"1.0.0": 100, "2.0.0": 0}}),
        )
        .await;
        assert_eq!(status, 200, "{b}: {doc}");

        // A reason that is no reason is a 400 naming the field.
        let mut bad = canary.clone();
        bad["allowBreaking"] = json!({"reason": " "});
        let (status, problem, _) = route(&reg, &bearer, bad).await;
        assert_eq!(status, 400, "{b}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "allowBreaking.reason");

        // Allowed: recorded with who and why.
        let reason = "every client pinned to lookup v2 (CHG-1234)";
        let mut allowed = canary.clone();
        allowed["allowBreaking"] = json!({ "reason": reason });
        let (status, doc, _) = route(&reg, &bearer, allowed).await;
        assert_eq!(status, 200, "{b}: {doc}");
        assert_eq!(
            doc["contract"],
            json!({"stable": "1.0.0", "breaking": ["2.0.0"], "unknown": []})
        );
        let record = &doc["breakingAllowed"][0];
        assert_eq!(
            (&record["version"], &record["by"], &record["reason"]),
            (&json!("2.0.0"), &json!(token_id), &json!(reason)),
            "{b}: {doc}"
        );
        assert_eq!(record["at"], doc["updatedAt"]);
        assert_eq!(reg.get("/services/inventory/routing").await, (200, doc));

        // /status flags the canary until it is rolled back.
        let (status, fleet) = reg.get("/status").await;
        assert_eq!(status, 200);
        assert_eq!(
            fleet["breakingCanaries"],
            json!([{"service": "inventory", "version": "2.0.0", "weight": 10,
                    "stable": "1.0.0", "allowedBy": token_id, "reason": reason}]),
            "{b}"
        );
        let res = reg
            .send_as(
                Method::POST,
                "/services/inventory/routing/rollback",
                Some(&bearer),
                Some(&json!({"version": "2.0.0", "reason": "errors"})),
            )
            .await;
        assert_eq!(res.status().as_u16(), 200, "{b}");
        let fleet = eventually(STEP, "the flag cleared", || async {
            let (_, fleet) = reg.get("/status").await;
            (fleet["breakingCanaries"] == json!([])).then_some(fleet)
        })
        .await;
        assert_eq!(
            fleet["summary"]["total"], 4,
            "{b}: the seed's fields are still there"
        );
    }
}
