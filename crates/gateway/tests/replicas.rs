//! Gateway replicas behind a load balancer: two gateways sharing a `--session-key` answer each
//! other's sessions from the id alone (pinned versions kept); ids altered, foreign, malformed,
//! expired or closed are refused with a JSON-RPC `404`; clients of the sessionless 2026-07-28
//! revision are served by either replica, their tool calls on the fast path, and headers that
//! disagree with the body get the spec's `HeaderMismatch`. Spoken over plain HTTP (a session
//! moving between replicas is what a load balancer does to a client) and with rmcp's client.
//!
//! Over 500 lines: five tests sharing the plain-HTTP MCP client they speak through.

use std::time::Duration;

use mcp_fleet_gateway::{GatewayConfig, SessionKey};
use reqwest::header::CONTENT_TYPE;
use rmcp::ServiceExt;
use rmcp::model::ProtocolVersion;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

use crate::common::{
    TestGateway, TestRegistry, Upstream, eventually, server_of, sse_message, tool,
};

const BOTH: &str = "application/json, text/event-stream";
const LEGACY: &str = "2025-06-18";
const STATELESS: &str = "2026-07-28";

fn key(byte: u8) -> SessionKey {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode([byte; 32])
        .parse()
        .expect("a key")
}

fn config(registry: &TestRegistry, key: Option<SessionKey>) -> GatewayConfig {
    GatewayConfig {
        session_key: key,
        rmcp_only: Some(false),
        ..TestGateway::config(registry)
    }
}

/// A POST to `url`'s `/mcp` with `headers`: status, content type and the JSON-RPC message
/// (from the JSON body, or the event stream's response).
async fn post(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, String, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{url}/mcp"))
        .header("accept", BOTH)
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.expect("the gateway answers");
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = answer.bytes().await.expect("a body");
    let message = if content_type.starts_with("text/event-stream") {
        serde_json::from_slice(&sse_message(&bytes)).expect("JSON-RPC in the stream")
    } else if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    (status, content_type, message)
}

/// Opens a session (protocol 2025-06-18) on the gateway at `url`: its id.
async fn open(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": {},
        "clientInfo": {"name": "moving-client", "version": "1.0.0"}}});
    let opened = reqwest::Client::new()
        .post(format!("{url}/mcp"))
        .header("accept", BOTH)
        .json(&init)
        .send()
        .await
        .expect("initialize");
    assert!(opened.status().is_success(), "{}", opened.status());
    let id = opened
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let (status, _, _) = post(
        url,
        &[("mcp-session-id", &id), ("mcp-protocol-version", LEGACY)],
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    id
}

/// A `tools/call` of `name` in session `id` at `url`: status, content type, message.
async fn call_in(url: &str, id: &str, name: &str) -> (u16, String, Value) {
    post(
        url,
        &[("mcp-session-id", id), ("mcp-protocol-version", LEGACY)],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": {}}}),
    )
    .await
}

/// Which upstream answered a call (a test upstream's structured result).
fn answered_by(message: &Value) -> String {
    message["result"]["structuredContent"]["server"]
        .as_str()
        .unwrap_or_else(|| panic!("a result: {message}"))
        .to_owned()
}

/// A registry with service `cat` at 1.0.0 (`cat-1`) and 2.0.0 (`cat-2`), 50/50.
async fn canary_fleet() -> (TestRegistry, Upstream, Upstream) {
    let registry = TestRegistry::start().await;
    let one = Upstream::start("cat-1", &["find"]).await;
    let two = Upstream::start("cat-2", &["find"]).await;
    registry
        .register("cat-1", "cat", "1.0.0", &one.base_url)
        .await;
    registry
        .register("cat-2", "cat", "2.0.0", &two.base_url)
        .await;
    registry
        .put_routing("cat", json!({"weights": {"1.0.0": 50, "2.0.0": 50}}))
        .await;
    (registry, one, two)
}

/// Starts a gateway and waits until it routes `cat` by its policy and offers `cat__find`.
async fn gateway(config: GatewayConfig) -> TestGateway {
    let gw = TestGateway::start(config).await;
    eventually("the gateway to offer cat__find", || async {
        gw.gateway
            .tools()
            .iter()
            .any(|t| t.name == "cat__find")
            .then_some(())
    })
    .await;
    gw
}

#[tokio::test]
async fn a_session_opened_on_one_replica_continues_on_another() {
    let (registry, _one, _two) = canary_fleet().await;
    let a = gateway(config(&registry, Some(key(1)))).await;
    let b = gateway(config(&registry, Some(key(1)))).await;
    // Both route to both versions before the test's sessions open.
    for gw in [&a, &b] {
        let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
        eventually("the gateway to route to both versions", || async {
            let id = open(&gw.url).await;
            let (_, _, answer) = call_in(&gw.url, &id, "cat__find").await;
            let mut seen = seen.lock().expect("lock");
            if let Some(server) = answer["result"]["structuredContent"]["server"].as_str() {
                seen.insert(server.to_owned());
            }
            (seen.len() == 2).then_some(())
        })
        .await;
    }

    // Sessions of either version, so that a replica drawing afresh would be caught out.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let id = open(&a.url).await;
        let (status, content_type, on_a) = call_in(&a.url, &id, "cat__find").await;
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        let version = answered_by(&on_a);
        seen.insert(version.clone());

        // The same id on the other replica: listed, and called on the pinned version.
        let (status, _, listed) = post(
            &b.url,
            &[("mcp-session-id", &id), ("mcp-protocol-version", LEGACY)],
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await;
        assert_eq!(status, 200, "{listed}");
        assert_eq!(
            listed["result"]["tools"][0]["name"], "cat__find",
            "{listed}"
        );
        for _ in 0..3 {
            let (status, content_type, on_b) = call_in(&b.url, &id, "cat__find").await;
            assert_eq!(status, 200, "{on_b}");
            // Taken up once, the session's calls take B's fast path too.
            assert_eq!(content_type, "application/json");
            assert_eq!(
                answered_by(&on_b),
                version,
                "the session moved off its version"
            );
        }
        // And back on A, still the same.
        let (_, _, again) = call_in(&a.url, &id, "cat__find").await;
        assert_eq!(answered_by(&again), version);
    }
    assert_eq!(
        seen.len(),
        2,
        "sessions were pinned to both versions: {seen:?}"
    );
    let metrics = b.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "mcp_fleet_gateway_sessions_taken_up_total 12"),
        "{metrics}"
    );
}

/// Waits until sessions opened on `gw` have been routed to both `cat` instances.
async fn routes_to_both(gw: &TestGateway) {
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    eventually("the gateway to route to both versions", || async {
        for _ in 0..10 {
            let id = open(&gw.url).await;
            let (_, _, answer) = call_in(&gw.url, &id, "cat__find").await;
            if let Some(server) = answer["result"]["structuredContent"]["server"].as_str() {
                seen.lock().expect("lock").insert(server.to_owned());
            }
        }
        (seen.lock().expect("lock").len() == 2).then_some(())
    })
    .await;
}

/// The versions drawn at `initialize` travel in the id: when the policy has changed since, the
/// replica taking a session up keeps the session's version rather than drawing by the new
/// weights (which the session's seed alone would do).
#[tokio::test]
async fn pinned_versions_travel_in_the_id() {
    let (registry, _one, _two) = canary_fleet().await;
    registry
        .put_routing("cat", json!({"weights": {"1.0.0": 10, "2.0.0": 90}}))
        .await;
    let a = gateway(config(&registry, Some(key(1)))).await;
    routes_to_both(&a).await;
    // Opened (not called) at 10/90: most are pinned to 2.0.0.
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(open(&a.url).await);
    }
    registry
        .put_routing("cat", json!({"weights": {"1.0.0": 90, "2.0.0": 10}}))
        .await;
    // B starts after the change, so it reads 90/10 (a gateway reads policies before it starts).
    let b = gateway(config(&registry, Some(key(1)))).await;
    routes_to_both(&b).await;
    let mut on_two = 0;
    for id in &ids {
        let (status, _, on_b) = call_in(&b.url, id, "cat__find").await;
        assert_eq!(status, 200, "{on_b}");
        if answered_by(&on_b) == "cat-2" {
            on_two += 1;
        }
    }
    // Pinned at 10/90, ~11 of 12 stay on 2.0.0; drawn at 90/10 ~1 would (P < 0.001 either way).
    assert!(on_two >= 7, "only {on_two} of 12 sessions kept 2.0.0");
}

#[tokio::test]
async fn ids_altered_foreign_malformed_expired_or_closed_are_refused() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    let a = TestGateway::start(config(&registry, Some(key(1)))).await;
    let b = TestGateway::start(config(&registry, Some(key(1)))).await;
    let foreign = TestGateway::start(config(&registry, Some(key(2)))).await;
    let id = open(&a.url).await;
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let in_session = |id: &str| {
        [
            ("mcp-session-id", id.to_owned()),
            ("mcp-protocol-version", LEGACY.to_owned()),
        ]
    };
    let refused = |answer: (u16, String, Value), why: &str| {
        let (status, content_type, message) = answer;
        assert_eq!(status, 404, "{why}: {message}");
        assert_eq!(content_type, "application/json", "{why}");
        assert_eq!(message["jsonrpc"], "2.0", "{why}: {message}");
        assert_eq!(message["error"]["code"], -32001, "{why}: {message}");
        let text = message["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(why), "{text} should say {why}");
        // Never anything of a session.
        assert!(message.get("result").is_none(), "{message}");
    };
    let headers =
        |pairs: &[(&'static str, String); 2]| -> Vec<(&'static str, String)> { pairs.to_vec() };
    let send = |url: String, pairs: Vec<(&'static str, String)>| {
        let list = list.clone();
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            post(&url, &pairs, &list).await
        }
    };

    // A bit flipped at a few places (the id is base64url): never another session.
    let sealed = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&id)
            .expect("base64url")
    };
    for at in [0, sealed.len() / 2, sealed.len() - 1] {
        let mut bytes = sealed.clone();
        bytes[at] ^= 0x10;
        let altered = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
        };
        refused(
            send(b.url.clone(), headers(&in_session(&altered))).await,
            "not issued under this gateway's session key",
        );
    }
    refused(
        send(foreign.url.clone(), headers(&in_session(&id))).await,
        "not issued under this gateway's session key",
    );
    refused(
        send(b.url.clone(), headers(&in_session("not a session!"))).await,
        "malformed",
    );
    // The real id still works on both.
    for url in [&a.url, &b.url] {
        let (status, _, listed) = send(url.clone(), headers(&in_session(&id))).await;
        assert_eq!(status, 200, "{listed}");
    }

    // Closed by its client: refused from then on by the replica that closed it.
    let closed = reqwest::Client::new()
        .delete(format!("{}/mcp", a.url))
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", LEGACY)
        .send()
        .await
        .expect("DELETE");
    assert!(closed.status().is_success(), "{}", closed.status());
    eventually("the closed session to be refused", || async {
        let (status, _, _) = send(a.url.clone(), headers(&in_session(&id))).await;
        (status == 404).then_some(())
    })
    .await;
    refused(
        send(a.url.clone(), headers(&in_session(&id))).await,
        "closed",
    );

    // Expired: a replica whose sessions last 0 s refuses the id once a second has turned.
    let brief = TestGateway::start(GatewayConfig {
        session_ttl: Duration::ZERO,
        ..config(&registry, Some(key(1)))
    })
    .await;
    let fresh = open(&b.url).await;
    let answer = eventually("the id to expire", || async {
        let answer = send(brief.url.clone(), headers(&in_session(&fresh))).await;
        (answer.0 == 404).then_some(answer)
    })
    .await;
    refused(answer, "expired");
}

/// A sessionless (2026-07-28) request's headers for `method` (and `name`).
fn stateless_headers(
    method: &'static str,
    name: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![("mcp-protocol-version", STATELESS), ("mcp-method", method)];
    if let Some(name) = name {
        headers.push(("mcp-name", name));
    }
    headers
}

fn stateless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1.0.0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

fn stateless_call(name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": stateless_meta()}})
}

#[tokio::test]
async fn sessionless_clients_are_served_by_either_replica_on_the_fast_path() {
    let registry = TestRegistry::start().await;
    let alpha = Upstream::start("alpha", &["search", "lookup"]).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    // Without a shared key: sessionless clients need none.
    let a = TestGateway::start(config(&registry, None)).await;
    let b = TestGateway::start(config(&registry, None)).await;
    let slow = TestGateway::start(GatewayConfig {
        rmcp_only: Some(true),
        ..config(&registry, None)
    })
    .await;
    for gw in [&a, &b, &slow] {
        eventually("the gateway to offer alpha's tools", || async {
            (gw.gateway.tools().len() == 2).then_some(())
        })
        .await;
    }

    // rmcp's own client at 2026-07-28 lists and calls through either replica.
    for gw in [&a, &b] {
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("stateless-client", "1.0.0"),
        )
        .with_protocol_version(ProtocolVersion::LATEST);
        let transport = StreamableHttpClientTransport::from_uri(format!("{}/mcp", gw.url));
        let client = info.serve(transport).await.expect("a 2026-07-28 client");
        let names: Vec<String> = client
            .list_all_tools()
            .await
            .expect("tools/list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names, ["alpha__lookup", "alpha__search"]);
        let result = client
            .call_tool(CallToolRequestParams::new("alpha__search"))
            .await
            .expect("tools/call");
        assert_eq!(server_of(&result), "alpha");
        // Answered on the hot path.
        let metrics = gw.metrics().await;
        assert!(
            metrics
                .lines()
                .any(|l| l == "mcp_fleet_gateway_fast_calls_total 1"),
            "{metrics}"
        );
        client.cancel().await.expect("close");
    }
    let before = alpha.calls();

    // Over plain HTTP: the fast path answers one JSON message, with no session; with
    // --rmcp-only, rmcp's event stream does. A session id sent along is ignored.
    let call = stateless_call("alpha__search", json!({}));
    for (gw, expected) in [
        (&a, "application/json"),
        (&b, "application/json"),
        (&slow, "text/event-stream"),
    ] {
        let mut headers = stateless_headers("tools/call", Some("alpha__search"));
        headers.push(("mcp-session-id", "ignored"));
        let (status, content_type, answer) = post(&gw.url, &headers, &call).await;
        assert_eq!(status, 200, "{answer}");
        assert!(content_type.starts_with(expected), "{content_type}");
        assert_eq!(answer["id"], 9);
        assert_eq!(answered_by(&answer), "alpha");
    }
    assert_eq!(alpha.calls(), before + 3);

    // tools/list: the same order every time, with caching hints.
    for gw in [&a, &b] {
        let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list",
            "params": {"_meta": stateless_meta()}});
        let (status, _, listed) =
            post(&gw.url, &stateless_headers("tools/list", None), &list).await;
        assert_eq!(status, 200, "{listed}");
        let names: Vec<&str> = listed["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, ["alpha__lookup", "alpha__search"]);
        assert_eq!(listed["result"]["ttlMs"], 10_000, "{listed}");
        assert_eq!(listed["result"]["cacheScope"], "public", "{listed}");
    }
}

#[tokio::test]
async fn headers_that_disagree_with_the_body_are_a_header_mismatch() {
    let registry = TestRegistry::start().await;
    let mut region = tool("spanner");
    let schema = json!({"type": "object", "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"}, "query": {"type": "string"}}});
    let Value::Object(schema) = schema else {
        unreachable!("a literal object")
    };
    region.input_schema = std::sync::Arc::new(schema);
    let mut tools = vec![region];
    tools.push(tool("search"));
    let alpha = Upstream::start_tools("alpha", tools).await;
    registry
        .register("alpha", "alpha", "1.0.0", &alpha.base_url)
        .await;
    let gw = TestGateway::start(config(&registry, None)).await;
    eventually("the gateway to offer alpha's tools", || async {
        (gw.gateway.tools().len() == 2).then_some(())
    })
    .await;
    let search = stateless_call("alpha__search", json!({}));
    let mut older_meta = search.clone();
    older_meta["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2025-11-25");
    let spanner = stateless_call(
        "alpha__spanner",
        json!({"region": "us-west1", "query": "q"}),
    );
    let tools_call = |name: &'static str| stateless_headers("tools/call", Some(name));
    let with = |mut headers: Vec<(&'static str, &'static str)>,
                extra: (&'static str, &'static str)| {
        headers.push(extra);
        headers
    };
    type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a Value);
    let rows: Vec<Row> = vec![
        ("Mcp-Name differs", tools_call("alpha__other"), &search),
        (
            "Mcp-Method differs",
            stateless_headers("tools/list", Some("alpha__search")),
            &search,
        ),
        (
            "Mcp-Name missing",
            stateless_headers("tools/call", None),
            &search,
        ),
        (
            "Mcp-Name twice",
            with(tools_call("alpha__search"), ("mcp-name", "alpha__search")),
            &search,
        ),
        (
            "protocol version differs",
            tools_call("alpha__search"),
            &older_meta,
        ),
        (
            "Mcp-Param-Region missing",
            tools_call("alpha__spanner"),
            &spanner,
        ),
        (
            "Mcp-Param-Region differs",
            with(
                tools_call("alpha__spanner"),
                ("mcp-param-region", "eu-west1"),
            ),
            &spanner,
        ),
    ];
    for (why, headers, body) in rows {
        let (status, content_type, answer) = post(&gw.url, &headers, body).await;
        assert_eq!(status, 400, "{why}: {answer}");
        assert_eq!(content_type, "application/json", "{why}");
        assert_eq!(answer["error"]["code"], -32020, "{why}: {answer}");
        assert_eq!(answer["id"], 9, "{why}: {answer}");
    }
    assert_eq!(alpha.calls(), 0, "no mismatched call reached the upstream");

    // Base64-encoded names and matching parameter headers are accepted (rmcp answers those).
    let encoded = {
        use base64::Engine;
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("alpha__search")
        )
    };
    let headers = with(
        stateless_headers("tools/call", None),
        ("mcp-name", Box::leak(encoded.into_boxed_str())),
    );
    let (status, _, answer) = post(&gw.url, &headers, &search).await;
    assert_eq!((status, answered_by(&answer)), (200, "alpha".to_owned()));
    let headers = with(
        tools_call("alpha__spanner"),
        ("mcp-param-region", "us-west1"),
    );
    let (status, _, answer) = post(&gw.url, &headers, &spanner).await;
    assert_eq!((status, answered_by(&answer)), (200, "alpha".to_owned()));
    assert_eq!(alpha.calls(), 2);
}
