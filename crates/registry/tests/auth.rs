//! Authenticated writes: no token → 401, a token without the scope → 403, namespace ownership
//! (a `payments-*` token cannot touch `catalog`, nor join its service), revoked and expired
//! tokens fail, reads can be protected, and the database holds no token in clear text.

use chrono::{Duration, Utc};
use mcp_fleet_model::{Scope, parse_id_patterns};
use mcp_fleet_registry::Config;
use mcp_fleet_registry::auth::AuthConfig;
use mcp_fleet_registry::auth::tokens::issue;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestRegistry, seed_body, start_with};

/// Issues a token into the registry's store; returns the token string and its id.
pub(crate) async fn token(
    reg: &TestRegistry,
    scopes: &[Scope],
    ids: &str,
    expires_in: Option<Duration>,
) -> (String, String) {
    let now = Utc::now();
    let (token, record) = issue(
        scopes.to_vec(),
        parse_id_patterns(ids).expect("patterns"),
        "test".into(),
        expires_in.map(|d| now + d),
        now,
    )
    .expect("issue");
    reg.store.create_token(&record).await.expect("store token");
    (token, record.id)
}

async fn problem(res: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert_eq!(content_type, "application/problem+json", "{status} {body}");
    }
    (status, challenge, body)
}

#[tokio::test]
async fn tokens_scopes_and_namespaces_guard_writes() {
    for db in mcp_fleet_test_support::all_backends().await {
        let reg = start_with(db, Config::default()).await;
        eprintln!("backend {}", reg.backend);
        // Open until the first token exists (and `serve` says so).
        let (status, _) = reg.post(&seed_body("early", &["t"])).await;
        assert_eq!(status, 201);

        let (admin, _) = token(&reg, &[Scope::Admin], "*", None).await;
        let (payments, payments_id) = token(&reg, &[Scope::ServersWrite], "payments-*", None).await;
        let (reader, _) = token(&reg, &[Scope::ServersRead], "*", None).await;
        let (expired, _) = token(
            &reg,
            &[Scope::ServersWrite],
            "*",
            Some(Duration::seconds(-1)),
        )
        .await;
        let (revoked, revoked_id) = token(&reg, &[Scope::ServersWrite], "*", None).await;
        assert!(
            reg.store
                .revoke_token(&revoked_id, Utc::now())
                .await
                .expect("revoke")
        );

        let body = seed_body("payments-api", &["pay"]);
        // No token: 401 with a challenge.
        let (status, challenge, p) = problem(
            reg.send_as(Method::POST, "/servers", None, Some(&body))
                .await,
        )
        .await;
        assert_eq!(
            (status, p["code"].as_str()),
            (401, Some("unauthorized")),
            "{p}"
        );
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="mcp-fleet""#));
        // A refused token: 401 saying invalid_token, never echoing the token.
        for (bad, why) in [
            ("mcpf_tok_000000000000.nope", "not known"),
            ("garbage", "not an mcp-fleet token"),
            (expired.as_str(), "expired"),
            (revoked.as_str(), "revoked"),
        ] {
            let (status, challenge, p) = problem(
                reg.send_as(Method::POST, "/servers", Some(bad), Some(&body))
                    .await,
            )
            .await;
            assert_eq!(status, 401, "{bad}: {p}");
            assert!(challenge.is_some_and(|c| c.contains("invalid_token")));
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(why), "{detail}");
            assert!(!detail.contains(bad) || bad == "garbage", "{detail}");
        }
        // A token without the scope: 403.
        let (status, _, p) = problem(
            reg.send_as(Method::POST, "/servers", Some(&reader), Some(&body))
                .await,
        )
        .await;
        assert_eq!(
            (status, p["code"].as_str()),
            (403, Some("forbidden")),
            "{p}"
        );
        assert!(
            p["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("servers:write")
        );

        // The payments token owns payments-*: it registers there, recorded as its writer...
        let res = reg
            .send_as(Method::POST, "/servers", Some(&payments), Some(&body))
            .await;
        assert_eq!(res.status(), 201);
        let (_, entry) = reg.get("/servers/payments-api").await;
        assert_eq!(entry["updatedBy"], payments_id.as_str());
        // ...but cannot touch catalog: not create, replace, delete, heartbeat or check it,
        let (status, _) = reg.post(&seed_body("catalog", &["c"])).await;
        assert_eq!(status, 401);
        let catalog = seed_body("catalog", &["c"]);
        assert_eq!(
            reg.send_as(Method::POST, "/servers", Some(&admin), Some(&catalog))
                .await
                .status(),
            201
        );
        for (method, path, body) in [
            (Method::POST, "/servers", Some(&catalog)),
            (Method::PUT, "/servers/catalog", Some(&catalog)),
            (Method::DELETE, "/servers/catalog", None),
            (Method::PUT, "/servers/catalog/heartbeat", None),
            (Method::POST, "/servers/catalog/check", None),
        ] {
            let (status, _, p) = problem(
                reg.send_as(method.clone(), path, Some(&payments), body)
                    .await,
            )
            .await;
            assert_eq!(status, 403, "{method} {path}: {p}");
            assert!(
                p["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("payments-*"),
                "{p}"
            );
        }
        // ...nor slip an instance of its own into catalog's service.
        let mut sneaky = seed_body("payments-shadow", &["c"]);
        sneaky["service"] = json!("catalog");
        let (status, _, p) = problem(
            reg.send_as(Method::POST, "/servers", Some(&payments), Some(&sneaky))
                .await,
        )
        .await;
        assert_eq!(status, 403, "{p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("\"catalog\""),
            "{p}"
        );
        // Routing needs routing:write.
        let (status, _, _) = problem(
            reg.send_as(
                Method::PUT,
                "/services/payments-api/routing",
                Some(&payments),
                Some(&json!({"weights": {"1.0.0": 100}})),
            )
            .await,
        )
        .await;
        assert_eq!(status, 403);
        // A routing token for catalog sets its policy, recorded as the policy's writer.
        let (router, router_id) = token(&reg, &[Scope::RoutingWrite], "catalog", None).await;
        let res = reg
            .send_as(
                Method::PUT,
                "/services/catalog/routing",
                Some(&router),
                Some(&json!({"weights": {"1.0.0": 100}})),
            )
            .await;
        assert_eq!(res.status(), 201);
        let (_, routing) = reg.get("/services/catalog/routing").await;
        assert_eq!(routing["updatedBy"], router_id.as_str(), "{routing}");
        // Its own entry: heartbeat and delete work.
        assert_eq!(
            reg.send_as(
                Method::PUT,
                "/servers/payments-api/heartbeat",
                Some(&payments),
                None
            )
            .await
            .status(),
            204
        );
        assert_eq!(
            reg.send_as(
                Method::DELETE,
                "/servers/payments-api",
                Some(&payments),
                None
            )
            .await
            .status(),
            204
        );
        // Nothing refused was stored; catalog is still the admin's.
        let (_, entry) = reg.get("/servers/catalog").await;
        assert!(
            entry["updatedBy"]
                .as_str()
                .is_some_and(|b| b.starts_with("tok_"))
        );
        assert_eq!(reg.get("/servers/payments-shadow").await.0, 404);
        // Reads stay open by default.
        assert_eq!(reg.get("/servers?status=any").await.0, 200);

        // No token in clear text: the records hold hashes, and (SQLite) the files hold no
        // secret.
        let secrets: Vec<&str> = [&admin, &payments, &reader, &expired, &revoked]
            .iter()
            .map(|t| t.split_once('.').expect("dot").1)
            .collect();
        for record in reg.store.tokens().await.expect("tokens") {
            assert_eq!(record.secret_sha256.len(), 64);
            assert!(secrets.iter().all(|s| !record.secret_sha256.contains(s)));
        }
        if let Some(path) = reg.db_url().strip_prefix("sqlite://") {
            for file in [path.to_owned(), format!("{path}-wal")] {
                let Ok(bytes) = std::fs::read(&file) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&bytes);
                for s in &secrets {
                    assert!(!text.contains(s), "a token secret is in {file}");
                }
            }
        }
    }
}

#[tokio::test]
async fn reads_and_operations_can_be_protected() {
    let config = Config {
        auth: AuthConfig {
            reads: true,
            ops: true,
            ..AuthConfig::default()
        },
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    let (reader, _) = token(&reg, &[Scope::ServersRead], "*", None).await;
    let (writer, _) = token(&reg, &[Scope::ServersWrite], "*", None).await;
    for path in [
        "/servers",
        "/servers/x",
        "/status",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        let (status, challenge, _) =
            problem(reg.send_as(Method::GET, path, None, None).await).await;
        assert_eq!(status, 401, "{path}");
        assert!(challenge.is_some(), "{path}");
    }
    assert_eq!(
        reg.send_as(Method::GET, "/servers", Some(&reader), None)
            .await
            .status(),
        200
    );
    assert_eq!(
        reg.send_as(Method::GET, "/status", Some(&reader), None)
            .await
            .status(),
        200
    );
    // A writer without servers:read may not list, but operations take any valid credential.
    assert_eq!(
        reg.send_as(Method::GET, "/servers", Some(&writer), None)
            .await
            .status(),
        403
    );
    assert_eq!(
        reg.send_as(Method::GET, "/healthz", Some(&writer), None)
            .await
            .status(),
        200
    );
    // The page and the API description stay open.
    assert_eq!(
        reg.send_as(Method::GET, "/", None, None).await.status(),
        200
    );
    assert_eq!(
        reg.send_as(Method::GET, "/openapi.json", None, None)
            .await
            .status(),
        200
    );
}

/// Issue #25: an entry is owned through its id *and* its service, for every per-entry write.
/// A `team-a-*` token may not delete, heartbeat or check `team-a-adm` when that entry is an
/// instance of `team-b-svc` (registered by someone owning both), as it may not register it.
#[tokio::test]
async fn per_entry_writes_need_the_entrys_service_too() {
    let reg = start_with(mcp_fleet_test_support::sqlite(), Config::default()).await;
    let (admin, _) = token(&reg, &[Scope::Admin], "*", None).await;
    let (team_a, _) = token(&reg, &[Scope::ServersWrite], "team-a-*", None).await;
    let mut foreign = seed_body("team-a-adm", &["t"]);
    foreign["service"] = json!("team-b-svc");
    foreign["healthCheck"] = json!({"mode": "ttl"});
    foreign["ttlSeconds"] = json!(60);
    let own = {
        let mut b = foreign.clone();
        b["id"] = json!("team-a-own");
        b["service"] = json!("team-a-svc");
        b
    };
    for body in [&foreign, &own] {
        let res = reg
            .send_as(Method::POST, "/servers", Some(&admin), Some(body))
            .await;
        assert_eq!(res.status(), 201);
    }
    for (method, path) in [
        (Method::DELETE, "/servers/team-a-adm"),
        (Method::PUT, "/servers/team-a-adm/heartbeat"),
        (Method::POST, "/servers/team-a-adm/check"),
    ] {
        let (status, _, p) =
            problem(reg.send_as(method.clone(), path, Some(&team_a), None).await).await;
        assert_eq!(
            (status, p["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}: {p}"
        );
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("team-b-svc") && detail.contains("team-a-*"),
            "{detail}"
        );
    }
    let (status, entry) = reg.get("/servers/team-a-adm").await;
    assert_eq!(status, 200, "not deleted");
    assert_eq!(entry["service"], "team-b-svc");
    // Its own entry in its own service: heartbeat and delete work; an owned id with no entry
    // is a 404, as before.
    for (method, path, want) in [
        (Method::PUT, "/servers/team-a-own/heartbeat", 204),
        (Method::DELETE, "/servers/team-a-own", 204),
        (Method::DELETE, "/servers/team-a-own", 404),
        (Method::PUT, "/servers/team-a-gone/heartbeat", 404),
    ] {
        let res = reg.send_as(method.clone(), path, Some(&team_a), None).await;
        assert_eq!(res.status(), want, "{method} {path}");
    }
    // The admin owns every service.
    let res = reg
        .send_as(Method::DELETE, "/servers/team-a-adm", Some(&admin), None)
        .await;
    assert_eq!(res.status(), 204);
}
