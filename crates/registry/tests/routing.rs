//! `/services/{service}/routing`, its rollback and `/services/{service}/istio`, on every backend.
//!
//! Over 500 lines: seven tests of three routes that share their fixtures.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::common::{TestRegistry, seed_body, start_all, start_sqlite};

/// How long a step may take before the test fails (never how long it waits).
const STEP: Duration = Duration::from_secs(10);

/// Registers `id` as an instance of `service` at `version`.
async fn instance(reg: &TestRegistry, id: &str, service: &str, version: &str) {
    let mut body = seed_body(id, &[]);
    body["service"] = json!(service);
    body["version"] = json!(version);
    let (status, body) = reg.post(&body).await;
    assert_eq!(status, 201, "{}: {body}", reg.backend);
}

fn canary() -> Value {
    json!({
        "weights": {"2.0.0": 90, "2.1.0": 10},
        "rollback": {"maxErrorRateDelta": 0.05, "window": "60s", "minRequests": 50},
    })
}

#[tokio::test]
async fn a_policy_is_set_read_rolled_back_and_deleted() {
    for reg in start_all().await {
        let b = reg.backend;
        instance(&reg, "catalog-a", "catalog", "2.0.0").await;
        instance(&reg, "catalog-b", "catalog", "2.1.0").await;
        let (_, entry) = reg.get("/servers/catalog-a").await;
        assert_eq!(entry["service"], "catalog", "{b}");
        let (_, listed) = reg.get("/servers?service=catalog&status=any").await;
        assert_eq!(listed["servers"].as_array().map(Vec::len), Some(2), "{b}");

        let (status, doc) = reg.get("/services/catalog/routing").await;
        assert_eq!((status, &doc["code"]), (404, &json!("not-found")), "{b}");

        let (status, doc) = reg.put_routing("catalog", &canary()).await;
        assert_eq!(status, 201, "{b}: {doc}");
        assert_eq!(doc["service"], "catalog");
        assert_eq!(doc["weights"], canary()["weights"]);
        assert_eq!(doc["rollback"], canary()["rollback"]);
        assert_eq!(doc["rolledBack"], Value::Null);
        // Read your write: the answer is what GET returns.
        assert_eq!(reg.get("/services/catalog/routing").await, (200, doc));

        let (status, _) = reg.put_routing("catalog", &canary()).await;
        assert_eq!(status, 200, "{b}: a replace");

        let reason = "error rate 0.31 vs 0.00 over 60s (112 calls)";
        let body = json!({"version": "2.1.0", "reason": reason});
        let path = "/services/catalog/routing/rollback";
        let (status, doc) = reg.send(reqwest::Method::POST, path, Some(&body)).await;
        assert_eq!(status, 200, "{b}: {doc}");
        assert_eq!(doc["weights"], json!({"2.0.0": 100, "2.1.0": 0}));
        assert_eq!(doc["rolledBack"]["version"], "2.1.0");
        assert_eq!(doc["rolledBack"]["reason"], reason);
        assert_eq!(doc["rolledBack"]["previousWeights"], canary()["weights"]);
        assert_eq!(
            reg.get("/services/catalog/routing").await,
            (200, doc.clone())
        );
        // Already at 0: unchanged.
        let (status, again) = reg.send(reqwest::Method::POST, path, Some(&body)).await;
        assert_eq!((status, again), (200, doc), "{b}");

        let rows = [
            (json!({"version": "3.0.0", "reason": "x"}), 400, "version"),
            (json!({"version": "latest", "reason": "x"}), 400, "version"),
            (json!({"version": "2.1.0"}), 400, "reason"),
        ];
        for (body, want, field) in rows {
            let (status, problem) = reg.send(reqwest::Method::POST, path, Some(&body)).await;
            assert_eq!(status, want, "{b}: {body} -> {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{b}: {body}");
        }
        let (status, problem) = reg
            .send(
                reqwest::Method::POST,
                "/services/other/routing/rollback",
                Some(&json!({"version": "1.0.0", "reason": "x"})),
            )
            .await;
        assert_eq!(
            (status, &problem["code"]),
            (404, &json!("not-found")),
            "{b}"
        );

        let (status, _) = reg
            .send(reqwest::Method::DELETE, "/services/catalog/routing", None)
            .await;
        assert_eq!(status, 204, "{b}");
        let (status, _) = reg
            .send(reqwest::Method::DELETE, "/services/catalog/routing", None)
            .await;
        assert_eq!(status, 404, "{b}");
        assert_eq!(reg.get("/services/catalog/routing").await.0, 404, "{b}");
    }
}

/// One row per bad request: (description, service, body, expected status, field named).
#[tokio::test]
async fn bad_policies_name_their_field_and_store_nothing() {
    let reg = start_sqlite().await;
    instance(&reg, "catalog-a", "catalog", "2.0.0").await;
    instance(&reg, "catalog-b", "catalog", "2.1.0").await;
    let with = |pointer: &str, value: Value| {
        let mut body = canary();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        body.pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .expect("parent object")
            .insert(key.to_owned(), value);
        body
    };
    let rows: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "sum over 100",
            "catalog",
            json!({"weights": {"2.0.0": 90, "2.1.0": 20}}),
            400,
            "weights",
        ),
        (
            "sum under 100",
            "catalog",
            json!({"weights": {"2.0.0": 50}}),
            400,
            "weights",
        ),
        (
            "no versions",
            "catalog",
            json!({"weights": {}}),
            400,
            "weights",
        ),
        ("weights missing", "catalog", json!({}), 400, "weights"),
        (
            "unknown version",
            "catalog",
            json!({"weights": {"2.0.0": 90, "3.0.0": 10}}),
            400,
            "weights.3.0.0",
        ),
        (
            "service without entries",
            "nothing",
            json!({"weights": {"2.0.0": 100}}),
            400,
            "weights.2.0.0",
        ),
        (
            "not semver",
            "catalog",
            json!({"weights": {"2.0.0": 90, "v2": 10}}),
            400,
            "weights.v2",
        ),
        (
            "fractional weight",
            "catalog",
            with("/weights/2.1.0", json!(9.5)),
            400,
            "weights.2.1.0",
        ),
        (
            "negative weight",
            "catalog",
            with("/weights/2.1.0", json!(-10)),
            400,
            "weights.2.1.0",
        ),
        (
            "delta 0",
            "catalog",
            with("/rollback/maxErrorRateDelta", json!(0)),
            400,
            "rollback.maxErrorRateDelta",
        ),
        (
            "delta over 1",
            "catalog",
            with("/rollback/maxErrorRateDelta", json!(1.01)),
            400,
            "rollback.maxErrorRateDelta",
        ),
        (
            "window too short",
            "catalog",
            with("/rollback/window", json!("500ms")),
            400,
            "rollback.window",
        ),
        (
            "window too long",
            "catalog",
            with("/rollback/window", json!("2h")),
            400,
            "rollback.window",
        ),
        (
            "window without unit",
            "catalog",
            with("/rollback/window", json!("60")),
            400,
            "rollback.window",
        ),
        (
            "minRequests 0",
            "catalog",
            with("/rollback/minRequests", json!(0)),
            400,
            "rollback.minRequests",
        ),
        (
            "minRequests too many",
            "catalog",
            with("/rollback/minRequests", json!(1_000_001)),
            400,
            "rollback.minRequests",
        ),
        (
            "unknown field",
            "catalog",
            with("/color", json!("blue")),
            400,
            "color",
        ),
        (
            "unknown rollback field",
            "catalog",
            with("/rollback/extra", json!(1)),
            400,
            "rollback.extra",
        ),
        ("bad service", "Catalog", canary(), 400, "service"),
    ];
    for (desc, service, body, want, field) in rows {
        let (status, problem) = reg.put_routing(service, &body).await;
        assert_eq!(status, want, "{desc}: {problem}");
        assert_eq!(problem["code"], "validation-failed", "{desc}");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(fields, [field], "{desc}: {problem}");
    }
    // Malformed JSON and a missing content type get the usual problems.
    let res = reg
        .http
        .put(format!("{}/services/catalog/routing", reg.url))
        .header("content-type", "application/json")
        .body("{\"weights\":")
        .send()
        .await
        .expect("PUT");
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.expect("problem");
    assert_eq!(problem["code"], "malformed-json");
    let res = reg
        .http
        .put(format!("{}/services/catalog/routing", reg.url))
        .body(canary().to_string())
        .send()
        .await
        .expect("PUT");
    assert_eq!(res.status(), 415);
    assert_eq!(
        reg.get("/services/catalog/routing").await.0,
        404,
        "nothing stored"
    );
}

#[tokio::test]
async fn the_istio_export_has_the_weights_and_subsets() {
    let reg = start_sqlite().await;
    let res = reg
        .http
        .get(format!("{}/services/catalog/istio", reg.url))
        .send()
        .await
        .expect("GET istio");
    assert_eq!(res.status(), 404);
    let problem: Value = res.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("PUT /services/catalog/routing")),
        "{problem}"
    );

    instance(&reg, "catalog-a", "catalog", "2.0.0").await;
    instance(&reg, "catalog-b", "catalog", "2.1.0").await;
    assert_eq!(reg.put_routing("catalog", &canary()).await.0, 201);
    let res = reg
        .http
        .get(format!("{}/services/catalog/istio", reg.url))
        .send()
        .await
        .expect("GET istio");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/yaml")
    );
    let text = res.text().await.expect("body");
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("a YAML document"))
        .collect();
    assert_eq!(docs.len(), 2, "{text}");
    let (vs, dr) = (&docs[0], &docs[1]);
    assert_eq!(vs["kind"], "VirtualService");
    assert!(
        vs["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("networking.istio.io/"))
    );
    assert_eq!(vs["metadata"]["name"], "catalog");
    assert_eq!(vs["spec"]["hosts"], json!(["catalog"]));
    let routes = &vs["spec"]["http"][0]["route"];
    assert_eq!(
        routes,
        &json!([
            {"destination": {"host": "catalog", "subset": "v2-0-0"}, "weight": 90},
            {"destination": {"host": "catalog", "subset": "v2-1-0"}, "weight": 10},
        ])
    );
    assert_eq!(dr["kind"], "DestinationRule");
    assert_eq!(dr["spec"]["host"], "catalog");
    assert_eq!(
        dr["spec"]["subsets"],
        json!([
            {"name": "v2-0-0", "labels": {"version": "2.0.0"}},
            {"name": "v2-1-0", "labels": {"version": "2.1.0"}},
        ])
    );
}

/// The `data` of the first `routing` event after revision `since`, read off `GET /events`.
async fn routing_event(reg: &TestRegistry, since: i64) -> Value {
    let mut res = reg
        .http
        .get(format!("{}/events?since={since}", reg.url))
        .send()
        .await
        .expect("GET /events");
    assert_eq!(res.status(), 200);
    let deadline = tokio::time::Instant::now() + STEP;
    let mut buf = String::new();
    loop {
        if let Some(start) = buf.find("event: routing\n")
            && let Some(end) = buf[start..].find("\n\n")
        {
            let block = &buf[start..start + end];
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .expect("data line");
            return serde_json::from_str(data).expect("JSON data");
        }
        let chunk = tokio::time::timeout_at(deadline, res.chunk())
            .await
            .expect("no routing event in time")
            .expect("read")
            .expect("the stream ended");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn routing_changes_are_change_feed_events() {
    for reg in start_all().await {
        instance(&reg, "catalog-a", "catalog", "2.0.0").await;
        instance(&reg, "catalog-b", "catalog", "2.1.0").await;
        let since = reg.store.current_revision().await.expect("revision");
        assert_eq!(reg.put_routing("catalog", &canary()).await.0, 201);
        let data = routing_event(&reg, since).await;
        assert_eq!(data["service"], "catalog", "{}", reg.backend);
        assert_eq!(data["weights"], canary()["weights"], "{}", reg.backend);

        let since = reg.store.current_revision().await.expect("revision");
        let (status, _) = reg
            .send(reqwest::Method::DELETE, "/services/catalog/routing", None)
            .await;
        assert_eq!(status, 204);
        let data = routing_event(&reg, since).await;
        assert_eq!(data, json!({"service": "catalog"}), "{}", reg.backend);
    }
}

/// Rolling back the stable version when the canary was rolled back already would send all
/// traffic to the canary: a `409` naming the canary, unless `force=true`.
#[tokio::test]
async fn a_rollback_onto_a_rolled_back_version_needs_force() {
    let reg = start_sqlite().await;
    instance(&reg, "catalog-a", "catalog", "2.0.0").await;
    instance(&reg, "catalog-b", "catalog", "2.1.0").await;
    let (status, _) = reg.put_routing("catalog", &canary()).await;
    assert_eq!(status, 201);
    let path = "/services/catalog/routing/rollback";
    let canary_back = json!({"version": "2.1.0", "reason": "canary errors"});
    let (status, doc) = reg
        .send(reqwest::Method::POST, path, Some(&canary_back))
        .await;
    assert_eq!(status, 200, "{doc}");

    let stable_back = json!({"version": "2.0.0", "reason": "by hand"});
    let (status, problem) = reg
        .send(reqwest::Method::POST, path, Some(&stable_back))
        .await;
    assert_eq!(
        (status, &problem["code"]),
        (409, &json!("conflict")),
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("2.1.0 was itself rolled back") && detail.contains("force"),
        "{detail}"
    );
    let (_, unchanged) = reg.get("/services/catalog/routing").await;
    assert_eq!(unchanged["weights"], json!({"2.0.0": 100, "2.1.0": 0}));

    let (status, problem) = reg
        .send(
            reqwest::Method::POST,
            &format!("{path}?force=maybe"),
            Some(&stable_back),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "force", "{problem}");

    let (status, doc) = reg
        .send(
            reqwest::Method::POST,
            &format!("{path}?force=true"),
            Some(&stable_back),
        )
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["weights"], json!({"2.0.0": 0, "2.1.0": 100}));
}

/// A report of `replica` with `calls` and `errors` of `version` in the current 1 s slot.
fn report(replica: &str, version: &str, calls: u64, errors: u64) -> Value {
    let slot = mcp_fleet_model::slot_of(chrono::Utc::now(), 1000);
    json!({"replica": replica, "slotMs": 1000,
           "versions": {version: [{"slot": slot, "calls": calls, "errors": errors}]}})
}

#[tokio::test]
async fn canary_reports_are_summed_across_replicas_and_bad_ones_name_their_field() {
    for reg in start_all().await {
        let b = reg.backend;
        let path = "/services/catalog/routing/observations";
        let post = |body: Value| {
            let reg = &reg;
            async move { reg.send(reqwest::Method::POST, path, Some(&body)).await }
        };
        let (status, problem) = post(report("gw-a", "2.1.0", 1, 0)).await;
        assert_eq!(
            (status, &problem["code"]),
            (404, &json!("not-found")),
            "{b}"
        );
        instance(&reg, "catalog-a", "catalog", "2.0.0").await;
        instance(&reg, "catalog-b", "catalog", "2.1.0").await;
        let (status, _) = reg.put_routing("catalog", &canary()).await;
        assert_eq!(status, 201, "{b}");

        let (status, totals) = post(report("gw-a", "2.1.0", 30, 9)).await;
        assert_eq!(status, 200, "{b}: {totals}");
        assert_eq!(totals["replicas"], 1);
        let (status, totals) = post(report("gw-b", "2.1.0", 25, 8)).await;
        assert_eq!(status, 200, "{b}: {totals}");
        assert_eq!(totals["service"], "catalog");
        assert_eq!(totals["slotMs"], 1000);
        assert_eq!(totals["replicas"], 2);
        assert_eq!(
            totals["versions"]["2.1.0"],
            json!({"calls": 55, "errors": 17, "toolErrors": 0}),
            "{b}"
        );
        // Reports change no document: no event, the policy as it was.
        let (_, doc) = reg.get("/services/catalog/routing").await;
        assert_eq!(doc["weights"], canary()["weights"], "{b}");

        let slot = mcp_fleet_model::slot_of(chrono::Utc::now(), 1000);
        let rows = [
            (json!({"slotMs": 1000, "versions": {}}), "replica"),
            (
                json!({"replica": "a b", "slotMs": 1000, "versions": {}}),
                "replica",
            ),
            (
                json!({"replica": "a", "slotMs": 0, "versions": {}}),
                "slotMs",
            ),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": []}),
                "versions",
            ),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": {"latest": []}}),
                "versions.latest",
            ),
            (
                json!({"replica": "a", "slotMs": 1000,
                       "versions": {"2.1.0": [{"slot": slot, "calls": 1, "errors": 2}]}}),
                "versions.2.1.0[0].calls",
            ),
            (
                json!({"replica": "a", "slotMs": 1000,
                       "versions": {"2.1.0": [{"slot": slot + 1000, "calls": 1}]}}),
                "versions.2.1.0[0].slot",
            ),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": {}, "window": "60s"}),
                "window",
            ),
            (json!("counts"), "body"),
        ];
        for (body, field) in rows {
            let (status, problem) = post(body.clone()).await;
            assert_eq!(status, 400, "{b}: {body} -> {problem}");
            assert_eq!(
                problem["code"], "validation-failed",
                "{b}: {body} -> {problem}"
            );
            assert_eq!(problem["errors"][0]["field"], field, "{b}: {body}");
        }
        let res = reg
            .http
            .post(format!("{}{path}", reg.url))
            .body("replica=a")
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status().as_u16(), 415, "{b}");
        let (_, totals) = post(report("gw-a", "2.0.0", 0, 0)).await;
        assert_eq!(
            totals["versions"]["2.1.0"]["calls"], 55,
            "{b}: bad reports kept nothing"
        );
    }
}

/// Reports are writes: a replica flooding them is rate limited like any writer.
#[tokio::test]
async fn a_flood_of_canary_reports_is_rate_limited() {
    let config = mcp_fleet_registry::Config {
        limits: mcp_fleet_registry::limits::LimitsConfig {
            write_rate: 1,
            write_burst: 5,
            ..Default::default()
        },
        ..Default::default()
    };
    let reg = crate::common::start_with(mcp_fleet_test_support::sqlite(), config).await;
    instance(&reg, "catalog-a", "catalog", "2.0.0").await;
    instance(&reg, "catalog-b", "catalog", "2.1.0").await;
    reg.put_routing("catalog", &canary()).await;
    let path = "/services/catalog/routing/observations";
    let mut limited = 0;
    for i in 0..20 {
        let (status, body) = reg
            .send(
                reqwest::Method::POST,
                path,
                Some(&report("gw-a", "2.1.0", i, 0)),
            )
            .await;
        match status {
            200 => {}
            429 => {
                assert_eq!(body["code"], "rate-limited");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(limited >= 10, "only {limited} of 20 reports limited");
}
