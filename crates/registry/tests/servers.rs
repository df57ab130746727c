//! `/servers`, `/status`, `/healthz`, `/readyz`: behaviour, on every backend.

use serde_json::{Value, json};

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::common::{
    TestRegistry, fast_health, live_server, seed_body, seed_body_at, start_all, start_checked,
    start_sqlite,
};

fn ids(body: &Value) -> Vec<String> {
    body["servers"]
        .as_array()
        .expect("servers array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

/// A client written for the seed's Express registry: POST with seed fields, GET by tags, /status.
/// The default listing shows healthy servers, so a live server appears once its first probe
/// passes (within about a second) and a dead one never does.
#[tokio::test]
async fn a_seed_client_works_unchanged() {
    let live = CancellationToken::new();
    let base = live_server(live.clone()).await;
    for db in mcp_fleet_test_support::all_backends().await {
        let reg = start_checked(db, fast_health()).await;
        let (status, body) = reg
            .post(&seed_body_at(&base, "product-catalog", &["products"]))
            .await;
        assert_eq!(status, 201, "{}", reg.backend);
        assert_eq!(body, json!({"id": "product-catalog"}));
        reg.post(&seed_body_at(&base, "analytics", &["analytics"]))
            .await;
        // Nothing listens on port 9: this one goes down and stays out of the default listing.
        reg.post(&seed_body_at("http://127.0.0.1:9", "dead", &["products"]))
            .await;

        let body = mcp_fleet_test_support::eventually(
            Duration::from_secs(10),
            "the live server to be listed as healthy",
            || async {
                let (_, body) = reg.get("/servers?tags=products,inventory").await;
                (!ids(&body).is_empty()).then_some(body)
            },
        )
        .await;
        assert_eq!(ids(&body), ["product-catalog"], "{}", reg.backend);
        let s = &body["servers"][0];
        for field in [
            "id",
            "name",
            "description",
            "url",
            "version",
            "tags",
            "auth",
            "healthUrl",
            "lastSeen",
            "status",
            "registeredAt",
        ] {
            assert!(
                s.get(field).is_some(),
                "{}: missing {field} in {s}",
                reg.backend
            );
        }
        assert_eq!(s["status"], "healthy");
        assert_eq!(s["tags"], json!(["products"]));
        assert_eq!(s["auth"], json!({"type": "none"}));
        // Exactly as registered, so `${url}/mcp` works.
        assert_eq!(s["url"], format!("{base}/product-catalog"));
        // ISO 8601 as JavaScript writes it.
        let seen = s["lastSeen"].as_str().expect("lastSeen");
        assert!(seen.ends_with('Z') && seen.len() == 24, "{seen}");
        assert!(body.get("nextCursor").is_none());

        let status = mcp_fleet_test_support::eventually(
            Duration::from_secs(10),
            "every entry to be checked",
            || async {
                let (_, body) = reg.get("/status").await;
                (body["summary"]["unknown"] == 0).then_some(body)
            },
        )
        .await;
        assert_eq!(status["status"], "degraded", "one server is down");
        assert_eq!(status["summary"]["total"], 3);
        assert_eq!(status["summary"]["healthy"], 2);
        assert_eq!(status["summary"]["degraded"], 0);
        assert_eq!(status["summary"]["down"], 1);
        let first = &status["servers"][0];
        assert_eq!(first["id"], "analytics");
        assert_eq!(first["name"], "Server analytics");
        assert_eq!(first["status"], "healthy");
        assert!(first["lastSeen"].is_string());
        let dead = &status["servers"][1];
        assert_eq!(dead["status"], "down");
        assert!(dead["lastSeen"].is_null());
        assert!(dead["lastError"].is_string(), "{dead}");
    }
    live.cancel();
}

#[tokio::test]
async fn re_registering_replaces_and_answers_200() {
    for reg in start_all().await {
        assert_eq!(reg.post(&seed_body("a", &["x"])).await.0, 201);
        let (_, before) = reg.get("/servers/a").await;
        let mut body = seed_body("a", &["y"]);
        body["version"] = json!("1.1.0");
        let (status, answer) = reg.post(&body).await;
        assert_eq!(status, 200, "{}", reg.backend);
        assert_eq!(answer, json!({"id": "a"}));
        let (_, after) = reg.get("/servers/a").await;
        assert_eq!(after["version"], "1.1.0");
        assert_eq!(after["registeredAt"], before["registeredAt"]);
        // Read-your-writes: the listing cache must not hide the change.
        let (_, by_old_tag) = reg.get("/servers?tags=x&status=any").await;
        assert!(ids(&by_old_tag).is_empty(), "{}", reg.backend);
        let (_, by_new_tag) = reg.get("/servers?tags=y&status=any").await;
        assert_eq!(ids(&by_new_tag), ["a"]);
    }
}

#[tokio::test]
async fn put_get_delete() {
    for reg in start_all().await {
        let url = format!("{}/servers/b", reg.url);
        let mut body = seed_body("b", &[]);
        body.as_object_mut().expect("object").remove("id");
        let res = reg.http.put(&url).json(&body).send().await.expect("PUT");
        assert_eq!(res.status(), 201, "{}", reg.backend);
        let res = reg.http.put(&url).json(&body).send().await.expect("PUT");
        assert_eq!(res.status(), 200);

        let (status, got) = reg.get("/servers/b").await;
        assert_eq!(status, 200);
        assert_eq!(got["id"], "b");
        assert_eq!(got["metadata"], json!({}));

        let res = reg.http.delete(&url).send().await.expect("DELETE");
        assert_eq!(res.status(), 204);
        let res = reg.http.delete(&url).send().await.expect("DELETE");
        assert_eq!(res.status(), 404);
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{}",
            reg.backend
        );
        let (status, _) = reg.get("/servers/b").await;
        assert_eq!(status, 404);
        let (_, listed) = reg.get("/servers?status=any").await;
        assert!(ids(&listed).is_empty());
    }
}

#[tokio::test]
async fn pages_follow_next_cursor_through_every_entry() {
    for reg in start_all().await {
        for i in 0..23 {
            let tags: &[&str] = if i % 2 == 0 { &["even"] } else { &["odd"] };
            assert_eq!(reg.post(&seed_body(&format!("s{i:02}"), tags)).await.0, 201);
        }
        let mut seen = Vec::new();
        let mut path = "/servers?tags=even,odd&limit=5&status=any".to_string();
        let mut pages = 0;
        loop {
            let (status, body) = reg.get(&path).await;
            assert_eq!(status, 200, "{}: {body}", reg.backend);
            seen.extend(ids(&body));
            pages += 1;
            match body["nextCursor"].as_str() {
                Some(c) => path = format!("/servers?tags=even,odd&limit=5&status=any&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(pages, 5);
        let want: Vec<_> = (0..23).map(|i| format!("s{i:02}")).collect();
        assert_eq!(seen, want, "{}", reg.backend);
        let (_, evens) = reg.get("/servers?tags=even&limit=1000&status=any").await;
        assert_eq!(ids(&evens).len(), 12);
    }
}

#[tokio::test]
async fn new_entries_are_unknown_and_hidden_from_the_default_listing() {
    let reg = start_sqlite().await;
    reg.post(&seed_body("h", &[])).await;
    let (_, healthy) = reg.get("/servers").await;
    assert!(ids(&healthy).is_empty(), "not probed yet: not healthy");
    let (_, any) = reg.get("/servers?status=any").await;
    assert_eq!(ids(&any), ["h"]);
    let (_, unknown) = reg.get("/servers?status=unknown").await;
    assert_eq!(ids(&unknown), ["h"]);
    let (_, entry) = reg.get("/servers/h").await;
    assert_eq!(entry["status"], "unknown");
    assert!(entry["lastSeen"].is_null());
    let (_, status) = reg.get("/status").await;
    assert_eq!(status["summary"]["unknown"], 1);
    assert_eq!(
        status["status"], "operational",
        "unknown entries do not degrade the fleet"
    );
}

#[tokio::test]
async fn probes_and_unknown_routes() {
    let reg: TestRegistry = start_sqlite().await;
    let (status, body) = reg.get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = reg.get("/readyz").await;
    assert_eq!((status, body["database"].as_str()), (200, Some("sqlite")));
    let res = reg
        .http
        .get(format!("{}/nope", reg.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = reg
        .http
        .patch(format!("{}/servers", reg.url))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 405);
    let problem: Value = res.json().await.expect("problem");
    assert_eq!(problem["status"], 405);
}

#[tokio::test]
async fn created_answer_has_a_location() {
    let reg = start_sqlite().await;
    let res = reg
        .http
        .post(format!("{}/servers", reg.url))
        .json(&seed_body("loc", &[]))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["location"], "/servers/loc");
}
