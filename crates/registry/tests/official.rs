//! The official MCP Registry v0.1 read API (`/v0.1/servers`…): services as servers, their
//! instances' versions as versions, paging and filters, removed versions as `deleted`, CORS,
//! `--auth-reads`; every answer validated against the official OpenAPI document's schemas and
//! `server.schema.json` (copies in `tests/fixtures/official/`, their source in `SOURCE.md`).
//!
//! Over 500 lines: nine tests sharing the schema validators every answer goes through.

use std::sync::LazyLock;

use mcp_fleet_model::Scope;
use mcp_fleet_model::official::RegistryNamespace;
use mcp_fleet_registry::Config;
use mcp_fleet_registry::auth::AuthConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::token;
use crate::common::{TestRegistry, fast_health, seed_body_at, start_checked, start_with};

const OPENAPI: &str = include_str!("fixtures/official/openapi.yaml");
const SERVER_SCHEMA: &str = include_str!("fixtures/official/server.schema.json");

/// Validators of the official schemas: `ServerList` and `ServerResponse` of the OpenAPI
/// document, and `server.schema.json`.
struct Schemas {
    list: jsonschema::Validator,
    response: jsonschema::Validator,
    server: jsonschema::Validator,
    /// The `404` body of `GET /v0.1/servers/{serverName}/versions/{version}`.
    not_found: jsonschema::Validator,
}

/// The OpenAPI document as a JSON Schema whose root is `#/components/schemas/<name>`.
fn component(name: &str) -> jsonschema::Validator {
    let mut doc: Value = serde_yaml_ng::from_str(OPENAPI).expect("the OpenAPI fixture is YAML");
    doc["$ref"] = json!(format!("#/components/schemas/{name}"));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&doc)
        .unwrap_or_else(|e| panic!("schema {name}: {e}"))
}

/// The inline schema of the `404` answer of the version route.
fn not_found_schema() -> jsonschema::Validator {
    let doc: Value = serde_yaml_ng::from_str(OPENAPI).expect("the OpenAPI fixture is YAML");
    let schema = &doc["paths"]["/v0.1/servers/{serverName}/versions/{version}"]["get"]["responses"]
        ["404"]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "no 404 schema in the fixture");
    jsonschema::validator_for(schema).expect("404 schema")
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| Schemas {
    not_found: not_found_schema(),
    list: component("ServerList"),
    response: component("ServerResponse"),
    server: jsonschema::options()
        .should_validate_formats(true)
        .build(&serde_json::from_str(SERVER_SCHEMA).expect("schema JSON"))
        .expect("server.schema.json"),
});

fn errors(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Panics unless `server` is a valid server.json whose remotes are plain `http(s)://` URLs (the
/// 2025-12-11 release's pattern; the draft copy also allows a leading `{variable}`).
fn check_server(server: &Value) {
    let bad = errors(&SCHEMAS.server, server);
    assert!(bad.is_empty(), "server.json invalid: {bad:?}\n{server:#}");
    for remote in server["remotes"].as_array().into_iter().flatten() {
        let url = remote["url"].as_str().expect("url");
        assert!(
            url.starts_with("http://") || url.starts_with("https://"),
            "{url}"
        );
    }
}

/// Panics unless `body` is a valid `ServerList` whose servers are valid server.json.
fn check_list(body: &Value) {
    let bad = errors(&SCHEMAS.list, body);
    assert!(bad.is_empty(), "ServerList invalid: {bad:?}\n{body:#}");
    for item in body["servers"].as_array().expect("servers") {
        check_server(&item["server"]);
    }
    assert_eq!(
        body["metadata"]["count"].as_u64(),
        body["servers"].as_array().map(|s| s.len() as u64),
        "count is the page's size"
    );
}

/// Panics unless `body` is a valid `ServerResponse`.
fn check_response(body: &Value) {
    let bad = errors(&SCHEMAS.response, body);
    assert!(bad.is_empty(), "ServerResponse invalid: {bad:?}\n{body:#}");
    check_server(&body["server"]);
}

/// A 404 as the official API's clients read it: `{"error": "…"}` (inside a problem document).
fn check_not_found(status: u16, body: &Value) {
    assert_eq!(status, 404, "{body}");
    let bad = errors(&SCHEMAS.not_found, body);
    assert!(bad.is_empty(), "404 body invalid: {bad:?}\n{body:#}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(body["code"], "not-found", "{body}");
}

fn instance(base: &str, id: &str, service: &str, version: &str) -> Value {
    let mut body = seed_body_at(base, id, &["billing", id]);
    body["service"] = json!(service);
    body["version"] = json!(version);
    body
}

async fn get(reg: &TestRegistry, path: &str) -> (u16, Value) {
    reg.get(path).await
}

/// `(name, version)` of each item of a list body.
fn names(body: &Value) -> Vec<(String, String)> {
    body["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .map(|i| {
            (
                i["server"]["name"].as_str().expect("name").to_owned(),
                i["server"]["version"].as_str().expect("version").to_owned(),
            )
        })
        .collect()
}

fn pair(name: &str, version: &str) -> (String, String) {
    (name.to_owned(), version.to_owned())
}

#[tokio::test]
async fn services_are_servers_and_their_instances_versions_are_versions() {
    // Each backend with the read cache (and the catalog kept with it), and SQLite without.
    let mut registries = Vec::new();
    for db in mcp_fleet_test_support::all_backends().await {
        registries.push(start_with(db, Config::default()).await);
    }
    let uncached = Config {
        read_cache_ttl: std::time::Duration::ZERO,
        ..Config::default()
    };
    registries.push(start_with(mcp_fleet_test_support::sqlite(), uncached).await);
    for reg in registries {
        eprintln!("backend {}", reg.backend);
        let base = "http://127.0.0.1:3001";
        // Two instances of billing 1.0.0, one of 2.0.0; a bearer-protected one.
        reg.register(&instance(base, "billing-a", "billing", "1.0.0"))
            .await;
        let mut b = instance("http://127.0.0.1:3002", "billing-b", "billing", "1.0.0");
        b["auth"] = json!({"type": "bearer"});
        reg.register(&b).await;
        reg.register(&instance(base, "billing-c", "billing", "2.0.0"))
            .await;
        // A description over the schema's 100 characters, with multi-byte characters.
        let mut long = instance(base, "weather", "weather", "0.3.0");
        long["description"] = json!("Météo ".repeat(30));
        reg.register(&long).await;

        let (status, all) = get(&reg, "/v0.1/servers").await;
        assert_eq!(status, 200, "{all}");
        check_list(&all);
        assert_eq!(
            names(&all),
            [
                pair("local.mcp-fleet/billing", "2.0.0"),
                pair("local.mcp-fleet/billing", "1.0.0"),
                pair("local.mcp-fleet/weather", "0.3.0"),
            ],
            "by name, each name's newest version first"
        );
        assert!(all["metadata"].get("nextCursor").is_none(), "{all}");

        // One version of two instances: one item whose remotes list both, at <url>/mcp.
        let v1 = &all["servers"][1];
        let remotes = v1["server"]["remotes"].as_array().expect("remotes");
        let urls: Vec<&str> = remotes.iter().filter_map(|r| r["url"].as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:3001/billing-a/mcp",
                "http://127.0.0.1:3002/billing-b/mcp"
            ]
        );
        assert!(remotes.iter().all(|r| r["type"] == "streamable-http"));
        // The bearer instance's header is described, never given a value.
        assert_eq!(remotes[0].get("headers"), None, "{v1}");
        let header = &remotes[1]["headers"][0];
        assert_eq!(header["name"], "Authorization");
        assert_eq!(header["isSecret"], true);
        assert_eq!(header["isRequired"], true);
        assert!(header.get("value").is_none(), "{header}");
        let official = &v1["_meta"]["io.modelcontextprotocol.registry/official"];
        assert_eq!(official["status"], "active");
        assert_eq!(official["isLatest"], false);
        assert_eq!(
            all["servers"][0]["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"],
            true
        );
        let health = &v1["_meta"]["dev.mcp-fleet/health"];
        assert_eq!(health["status"], "unknown", "no health worker here");
        assert_eq!(health["instances"], json!(["billing-a", "billing-b"]));
        assert_eq!(health["tags"], json!(["billing", "billing-a", "billing-b"]));

        // The description is cut on a character boundary, within the limit.
        let description = all["servers"][2]["server"]["description"]
            .as_str()
            .expect("description");
        assert_eq!(description.chars().count(), 100, "{description}");
        assert!(description.ends_with('…'), "{description}");

        // Filters.
        let (_, latest) = get(&reg, "/v0.1/servers?version=latest").await;
        check_list(&latest);
        assert_eq!(
            names(&latest),
            [
                pair("local.mcp-fleet/billing", "2.0.0"),
                pair("local.mcp-fleet/weather", "0.3.0")
            ]
        );
        let (_, exact) = get(&reg, "/v0.1/servers?version=1.0.0").await;
        check_list(&exact);
        assert_eq!(names(&exact), [pair("local.mcp-fleet/billing", "1.0.0")]);
        let (_, search) = get(&reg, "/v0.1/servers?search=WEATH").await;
        check_list(&search);
        assert_eq!(names(&search), [pair("local.mcp-fleet/weather", "0.3.0")]);
        let (_, future) = get(&reg, "/v0.1/servers?updated_since=2999-01-01T00:00:00Z").await;
        check_list(&future);
        assert_eq!(future["servers"], json!([]));
        let (_, past) = get(&reg, "/v0.1/servers?updated_since=2000-01-01T00:00:00Z").await;
        assert_eq!(names(&past), names(&all));

        // Paging one item at a time gives the same items, in the same order.
        let mut paged = Vec::new();
        let mut path = "/v0.1/servers?limit=1".to_owned();
        for _ in 0..10 {
            let (status, page) = get(&reg, &path).await;
            assert_eq!(status, 200, "{page}");
            check_list(&page);
            paged.extend(names(&page));
            match page["metadata"]["nextCursor"].as_str() {
                Some(cursor) => path = format!("/v0.1/servers?limit=1&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(paged, names(&all));

        // One server's versions, newest first; one version; `latest`.
        let (status, versions) =
            get(&reg, "/v0.1/servers/local.mcp-fleet%2Fbilling/versions").await;
        assert_eq!(status, 200, "{versions}");
        check_list(&versions);
        assert_eq!(
            names(&versions),
            [
                pair("local.mcp-fleet/billing", "2.0.0"),
                pair("local.mcp-fleet/billing", "1.0.0")
            ]
        );
        let (status, one) = get(
            &reg,
            "/v0.1/servers/local.mcp-fleet%2Fbilling/versions/1.0.0",
        )
        .await;
        assert_eq!(status, 200, "{one}");
        check_response(&one);
        assert_eq!(one, all["servers"][1]);
        let (_, latest) = get(
            &reg,
            "/v0.1/servers/local.mcp-fleet%2Fbilling/versions/latest",
        )
        .await;
        check_response(&latest);
        assert_eq!(latest["server"]["version"], "2.0.0");

        // Not found, in the official shape.
        let (status, body) = get(&reg, "/v0.1/servers/local.mcp-fleet%2Fnope/versions").await;
        check_not_found(status, &body);
        let (status, body) = get(
            &reg,
            "/v0.1/servers/local.mcp-fleet%2Fbilling/versions/9.9.9",
        )
        .await;
        check_not_found(status, &body);
        let (status, body) = get(&reg, "/v0.1/servers/com.other%2Fbilling/versions/latest").await;
        check_not_found(status, &body);
    }
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let reg = TestRegistry::start().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("updated_since=yesterday", "updated_since"),
        ("include_deleted=maybe", "include_deleted"),
    ] {
        let (status, body) = get(&reg, &format!("/v0.1/servers?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
        assert!(body["error"].is_string(), "{query}: {body}");
    }
    let (status, body) = get(
        &reg,
        "/v0.1/servers/local.mcp-fleet%2Fx/versions?include_deleted=2",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["field"], "include_deleted");
}

#[tokio::test]
async fn removed_versions_are_listed_as_deleted_while_remembered() {
    for db in mcp_fleet_test_support::all_backends().await {
        let reg = start_with(db, Config::default()).await;
        eprintln!("backend {}", reg.backend);
        let base = "http://127.0.0.1:3001";
        reg.register(&instance(base, "pay-1", "pay", "1.0.0")).await;
        reg.register(&instance(base, "pay-2", "pay", "2.0.0")).await;
        reg.register(&instance(base, "gone", "gone", "0.1.0")).await;
        // A removed instance of a version that still has one stays an active version.
        reg.register(&instance(base, "pay-2b", "pay", "2.0.0"))
            .await;
        reg.deregister("pay-2b").await;
        reg.deregister("pay-1").await;
        reg.deregister("gone").await;

        let (_, active) = get(&reg, "/v0.1/servers").await;
        check_list(&active);
        assert_eq!(names(&active), [pair("local.mcp-fleet/pay", "2.0.0")]);
        let remotes = &active["servers"][0]["server"]["remotes"];
        assert_eq!(remotes.as_array().map(Vec::len), Some(1), "{remotes}");

        let (status, all) = get(&reg, "/v0.1/servers?include_deleted=true").await;
        assert_eq!(status, 200, "{all}");
        check_list(&all);
        assert_eq!(
            names(&all),
            [
                pair("local.mcp-fleet/gone", "0.1.0"),
                pair("local.mcp-fleet/pay", "2.0.0"),
                pair("local.mcp-fleet/pay", "1.0.0"),
            ]
        );
        let status_of = |i: usize| {
            all["servers"][i]["_meta"]["io.modelcontextprotocol.registry/official"]["status"]
                .clone()
        };
        assert_eq!(
            [status_of(0), status_of(1), status_of(2)],
            [json!("deleted"), json!("active"), json!("deleted")]
        );
        // A removed version is no longer the latest, and has no health.
        assert_eq!(
            all["servers"][2]["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"],
            false
        );
        assert!(
            all["servers"][2]["_meta"]
                .get("dev.mcp-fleet/health")
                .is_none()
        );

        // Looked up by version, a removed one says it is deleted.
        let (status, one) = get(&reg, "/v0.1/servers/local.mcp-fleet%2Fgone/versions/0.1.0").await;
        assert_eq!(status, 200, "{one}");
        check_response(&one);
        assert_eq!(
            one["_meta"]["io.modelcontextprotocol.registry/official"]["status"],
            "deleted"
        );
        let (status, body) = get(&reg, "/v0.1/servers/local.mcp-fleet%2Fgone/versions").await;
        check_not_found(status, &body);
        let (status, versions) = get(
            &reg,
            "/v0.1/servers/local.mcp-fleet%2Fpay/versions?include_deleted=true",
        )
        .await;
        assert_eq!(status, 200, "{versions}");
        check_list(&versions);
        assert_eq!(versions["servers"].as_array().map(Vec::len), Some(2));

        // Registered again, it is active again.
        reg.register(&instance(base, "gone", "gone", "0.1.0")).await;
        let (_, again) = get(&reg, "/v0.1/servers?include_deleted=true&search=gone").await;
        check_list(&again);
        assert_eq!(
            again["servers"][0]["_meta"]["io.modelcontextprotocol.registry/official"]["status"],
            "active"
        );
        assert_eq!(again["servers"].as_array().map(Vec::len), Some(1));
    }
}

#[tokio::test]
async fn servers_that_are_down_stay_listed() {
    let reg = start_checked(mcp_fleet_test_support::sqlite(), fast_health()).await;
    let dead = mcp_fleet_test_support::refused_url();
    reg.register(&instance(&dead, "dead", "dead", "1.0.0"))
        .await;
    let body = mcp_fleet_test_support::poll("the entry to be down", || async {
        let (_, body) = get(&reg, "/v0.1/servers").await;
        (body["servers"][0]["_meta"]["dev.mcp-fleet/health"]["status"] == "down").then_some(body)
    })
    .await;
    check_list(&body);
    assert_eq!(
        body["servers"][0]["_meta"]["io.modelcontextprotocol.registry/official"]["status"],
        "active"
    );
}

#[tokio::test]
async fn the_namespace_is_configurable() {
    let config = Config {
        registry_namespace: "com.example"
            .parse::<RegistryNamespace>()
            .expect("namespace"),
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    reg.register(&instance("http://127.0.0.1:3001", "svc", "svc", "1.0.0"))
        .await;
    let (_, body) = get(&reg, "/v0.1/servers").await;
    check_list(&body);
    assert_eq!(names(&body), [pair("com.example/svc", "1.0.0")]);
    let (status, one) = get(&reg, "/v0.1/servers/com.example%2Fsvc/versions/latest").await;
    assert_eq!(status, 200, "{one}");
    check_response(&one);
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

fn assert_cors(res: &reqwest::Response) {
    assert_eq!(header(res, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(res, "access-control-allow-methods"),
        Some("GET, OPTIONS")
    );
    assert_eq!(
        header(res, "access-control-allow-headers"),
        Some("Authorization, Content-Type")
    );
}

#[tokio::test]
async fn cors_as_github_asks_and_preflight_answered() {
    let reg = TestRegistry::start().await;
    let preflight = reg
        .http
        .request(Method::OPTIONS, format!("{}/v0.1/servers", reg.url))
        .header("origin", "https://github.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(preflight.status().as_u16(), 204);
    assert_cors(&preflight);
    for path in [
        "/v0.1/servers",
        "/v0.1/servers/local.mcp-fleet%2Fnope/versions",
    ] {
        let res = reg.send_as(Method::GET, path, None, None).await;
        assert_cors(&res);
    }
    // The native API is not opened to every origin.
    let native = reg.send_as(Method::GET, "/servers", None, None).await;
    assert_eq!(header(&native, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn with_auth_reads_a_bearer_token_works() {
    let config = Config {
        auth: AuthConfig {
            reads: true,
            ..AuthConfig::default()
        },
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    let (reader, _) = token(&reg, &[Scope::ServersRead], "*", None).await;
    let refused = reg.send_as(Method::GET, "/v0.1/servers", None, None).await;
    assert_eq!(refused.status().as_u16(), 401);
    assert_cors(&refused);
    let res = reg
        .send_as(Method::GET, "/v0.1/servers", Some(&reader), None)
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert_cors(&res);
    check_list(&res.json().await.expect("JSON"));
    // A preflight carries no credentials, so it is answered without them.
    let preflight = reg
        .send_as(Method::OPTIONS, "/v0.1/servers", None, None)
        .await;
    assert_eq!(preflight.status().as_u16(), 204);
}

#[test]
fn the_schema_checks_refuse_what_the_api_must_not_send() {
    let good = json!({
        "server": {
            "name": "com.example/x", "description": "x", "version": "1.0.0",
            "remotes": [{"type": "streamable-http", "url": "http://h/mcp"}]
        },
        "_meta": {"io.modelcontextprotocol.registry/official": {
            "status": "active", "publishedAt": "2026-01-02T03:04:05.678Z",
            "updatedAt": "2026-01-02T03:04:05.678Z", "isLatest": true}}
    });
    assert!(errors(&SCHEMAS.response, &good).is_empty());
    assert!(errors(&SCHEMAS.server, &good["server"]).is_empty());
    let official = "/_meta/io.modelcontextprotocol.registry~1official";
    for (pointer, value) in [
        ("/server/description", json!("d".repeat(101))),
        ("/server/name", json!("no-slash")),
        ("/server/remotes/0/type", json!("websocket")),
    ] {
        let mut bad = good.clone();
        *bad.pointer_mut(pointer).expect(pointer) = value;
        assert!(
            !errors(&SCHEMAS.server, &bad["server"]).is_empty(),
            "{pointer}"
        );
    }
    for (field, value) in [
        ("publishedAt", json!("yesterday")),
        ("status", json!("gone")),
        ("extra", json!(1)),
    ] {
        let mut bad = good.clone();
        bad.pointer_mut(official).expect("official")[field] = value;
        assert!(!errors(&SCHEMAS.response, &bad).is_empty(), "{field}");
    }
    let list = json!({"servers": [good], "metadata": {"count": "one"}});
    assert!(!errors(&SCHEMAS.list, &list).is_empty());
}

#[tokio::test]
async fn the_routes_are_in_the_openapi_document() {
    let reg = TestRegistry::start().await;
    let (status, doc) = get(&reg, "/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/v0.1/servers",
        "/v0.1/servers/{serverName}/versions",
        "/v0.1/servers/{serverName}/versions/{version}",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    let schemas = &doc["components"]["schemas"];
    // The official list and the native one keep their own names.
    assert!(schemas["OfficialServerList"]["properties"]["metadata"].is_object());
    assert!(schemas["ServerList"]["properties"]["nextCursor"].is_object());
    assert!(schemas["ServerResponse"]["properties"]["_meta"].is_object());
}
