//! End-to-end tests: each sample on 127.0.0.1:0, driven by a real rmcp Streamable HTTP client.
//!
//! Over 500 lines: eleven tests, one per sample behaviour, over one client helper.

use std::time::Duration;

use mcp_fleet_sample_servers::{RunningSample, Sample, start};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ClientConfig},
    service::RunningService,
    transport::StreamableHttpClientTransport,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Bound on waiting for a server to stop; a hang fails the test instead of stalling CI.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running sample plus an MCP client session connected to it.
struct Fixture {
    running: RunningSample,
    shutdown: CancellationToken,
    client: RunningService<RoleClient, ClientConfig>,
}

impl Fixture {
    async fn start(sample: Sample) -> TestResult<Self> {
        let shutdown = CancellationToken::new();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let running = start(sample, listener, shutdown.clone()).await?;
        let transport = StreamableHttpClientTransport::from_uri(running.mcp_url());
        let client = ClientConfig::default().serve(transport).await?;
        Ok(Self {
            running,
            shutdown,
            client,
        })
    }

    async fn call(&self, tool: &str, arguments: Value) -> TestResult<CallToolResult> {
        let Value::Object(arguments) = arguments else {
            return Err("tool arguments must be a JSON object".into());
        };
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        Ok(self.client.call_tool(params).await?)
    }

    /// Calls `tool` and returns its structured content, failing on a tool error.
    async fn call_ok(&self, tool: &str, arguments: Value) -> TestResult<Value> {
        let result = self.call(tool, arguments).await?;
        if result.is_error == Some(true) {
            return Err(format!("{tool} failed: {}", text_of(&result)).into());
        }
        result
            .structured_content
            .ok_or_else(|| format!("{tool} returned no structured content").into())
    }

    /// Calls `tool`, expects a tool error (isError), and returns its message.
    async fn call_err(&self, tool: &str, arguments: Value) -> TestResult<String> {
        let result = self.call(tool, arguments).await?;
        if result.is_error != Some(true) {
            return Err(format!("{tool} unexpectedly succeeded: {}", text_of(&result)).into());
        }
        Ok(text_of(&result))
    }

    async fn stop(self) -> TestResult {
        self.client.cancel().await?;
        self.shutdown.cancel();
        tokio::time::timeout(STOP_TIMEOUT, self.running.join()).await??;
        Ok(())
    }
}

fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn each_sample_lists_its_tools() -> TestResult {
    let expected: [(Sample, &[&str]); 3] = [
        (Sample::Catalog, &["get_product", "search_products"]),
        (
            Sample::Inventory,
            &["check_stock", "list_low_stock", "reserve_stock"],
        ),
        (
            Sample::Analytics,
            &["record_event", "summary", "top_events"],
        ),
    ];
    for (sample, want) in expected {
        let fx = Fixture::start(sample).await?;
        let mut names: Vec<String> = fx
            .client
            .list_all_tools()
            .await?
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        names.sort();
        assert_eq!(names, want, "{sample}");

        let mut advertised = sample.tool_names().to_vec();
        advertised.sort_unstable();
        assert_eq!(advertised, want, "Sample::tool_names for {sample}");

        let info = fx
            .client
            .peer_info()
            .and_then(|i| i.server_info.clone())
            .ok_or("no server info")?;
        assert_eq!(info.name, sample.id());
        assert_eq!(info.version, "1.0.0");
        fx.stop().await?;
    }
    Ok(())
}

/// Every `format` in `schema` (at any depth) that JSON Schema does not define, with its path.
fn non_standard_formats(schema: &Value, path: &str, found: &mut Vec<String>) {
    match schema {
        Value::Object(obj) => {
            for (key, value) in obj {
                let here = format!("{path}/{key}");
                if key == "format"
                    && let Some(f) = value.as_str()
                    && !mcp_fleet_sample_servers::schema::STANDARD_FORMATS.contains(&f)
                {
                    found.push(format!("{here} = {f}"));
                }
                non_standard_formats(value, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                non_standard_formats(item, &format!("{path}/{i}"), found);
            }
        }
        _ => {}
    }
}

/// The samples' tool schemas are standard JSON Schema: no `format: uint32`/`uint64` (schemars'
/// own, which the TypeScript SDK warns about), integers bounded by `minimum`/`maximum` instead.
#[tokio::test]
async fn tool_schemas_use_only_standard_formats() -> TestResult {
    let mut found = Vec::new();
    let mut bounded = 0;
    for sample in [Sample::Catalog, Sample::Inventory, Sample::Analytics] {
        let fx = Fixture::start(sample).await?;
        for tool in fx.client.list_all_tools().await? {
            let input = Value::Object((*tool.input_schema).clone());
            non_standard_formats(&input, &format!("{sample}/{}/input", tool.name), &mut found);
            if let Some(output) = &tool.output_schema {
                let output = Value::Object((**output).clone());
                let at = format!("{sample}/{}/output", tool.name);
                non_standard_formats(&output, &at, &mut found);
            }
            bounded += usize::from(input.to_string().contains("\"maximum\":4294967295"));
        }
        fx.stop().await?;
    }
    assert!(
        found.is_empty(),
        "non-standard formats:\n{}",
        found.join("\n")
    );
    assert!(bounded > 0, "no u32 argument is bounded by its maximum");
    Ok(())
}

#[tokio::test]
async fn catalog_searches_and_looks_up_products() -> TestResult {
    let fx = Fixture::start(Sample::Catalog).await?;

    let found = fx
        .call_ok("search_products", json!({ "query": "laptop" }))
        .await?;
    let products = found["products"]
        .as_array()
        .ok_or("products is not an array")?;
    assert_eq!(found["total_matches"], 4, "{found}");
    let aero = products
        .iter()
        .find(|p| p["sku"] == "LAP-001")
        .ok_or_else(|| format!("LAP-001 missing from {found}"))?;
    assert_eq!(aero["name"], "Aero 14 Laptop");
    assert_eq!(aero["price_cents"], 129_900);
    assert_eq!(aero["category"], "computers");

    let limited = fx
        .call_ok("search_products", json!({ "query": "LAPTOP", "limit": 1 }))
        .await?;
    assert_eq!(limited["products"].as_array().map(Vec::len), Some(1));
    assert_eq!(limited["total_matches"], 4);

    let one = fx
        .call_ok("get_product", json!({ "sku": "MON-027" }))
        .await?;
    assert_eq!(one["name"], "Vista 27 Monitor");

    let err = fx
        .call_err("get_product", json!({ "sku": "NOPE-9" }))
        .await?;
    assert!(err.contains("unknown sku \"NOPE-9\""), "{err}");

    fx.stop().await
}

#[tokio::test]
async fn inventory_reservations_lower_stock() -> TestResult {
    let fx = Fixture::start(Sample::Inventory).await?;

    let before = fx
        .call_ok("check_stock", json!({ "sku": "LAP-001" }))
        .await?;
    let available = before["available"]
        .as_u64()
        .ok_or("available is not a number")?;
    assert_eq!(available, 12);

    let reserved = fx
        .call_ok("reserve_stock", json!({ "sku": "LAP-001", "quantity": 5 }))
        .await?;
    assert_eq!(reserved["reserved"], 5);
    assert_eq!(reserved["remaining"], available - 5);

    let after = fx
        .call_ok("check_stock", json!({ "sku": "LAP-001" }))
        .await?;
    assert_eq!(after["available"], available - 5);

    let err = fx
        .call_err(
            "reserve_stock",
            json!({ "sku": "LAP-001", "quantity": 100 }),
        )
        .await?;
    assert!(err.contains("only 7 available"), "{err}");
    let err = fx
        .call_err("reserve_stock", json!({ "sku": "LAP-001", "quantity": 0 }))
        .await?;
    assert!(err.contains("at least 1"), "{err}");
    let err = fx
        .call_err("check_stock", json!({ "sku": "NOPE-9" }))
        .await?;
    assert!(err.contains("unknown sku"), "{err}");
    // Failed reservations leave stock untouched.
    let unchanged = fx
        .call_ok("check_stock", json!({ "sku": "LAP-001" }))
        .await?;
    assert_eq!(unchanged["available"], 7);

    let low = fx
        .call_ok("list_low_stock", json!({ "threshold": 8 }))
        .await?;
    let skus: Vec<&str> = low["items"]
        .as_array()
        .ok_or("items is not an array")?
        .iter()
        .filter_map(|i| i["sku"].as_str())
        .collect();
    assert_eq!(
        skus,
        [
            "SPK-402", "DSK-702", "MON-034", "LAP-002", "CHR-701", "HUB-301", "LAP-001"
        ]
    );

    fx.stop().await
}

#[tokio::test]
async fn inventory_state_is_shared_across_sessions() -> TestResult {
    let fx = Fixture::start(Sample::Inventory).await?;
    fx.call_ok("reserve_stock", json!({ "sku": "MON-027", "quantity": 3 }))
        .await?;

    let transport = StreamableHttpClientTransport::from_uri(fx.running.mcp_url());
    let second = ClientConfig::default().serve(transport).await?;
    let params = CallToolRequestParams::new("check_stock").with_arguments(
        serde_json::Map::from_iter([("sku".to_owned(), json!("MON-027"))]),
    );
    let level = second.call_tool(params).await?;
    assert_eq!(
        level.structured_content.as_ref().map(|v| &v["available"]),
        Some(&json!(5))
    );
    second.cancel().await?;
    fx.stop().await
}

#[tokio::test]
async fn analytics_summarises_recorded_events() -> TestResult {
    let fx = Fixture::start(Sample::Analytics).await?;

    for (i, value) in [1.5, 5.0, 2.5, -3.0].into_iter().enumerate() {
        let recorded = fx
            .call_ok(
                "record_event",
                json!({ "name": "test.latency", "value": value }),
            )
            .await?;
        assert_eq!(recorded["count"], i + 1);
    }
    let summary = fx
        .call_ok("summary", json!({ "name": "test.latency" }))
        .await?;
    assert_eq!(
        summary,
        json!({ "name": "test.latency", "count": 4, "sum": 6.0, "mean": 1.5, "min": -3.0, "max": 5.0 })
    );

    let top = fx.call_ok("top_events", json!({ "limit": 2 })).await?;
    let names: Vec<&str> = top["events"]
        .as_array()
        .ok_or("events is not an array")?
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    // Seeded: page_view x4; then test.latency x4 (ties broken by name), search_latency_ms x3.
    assert_eq!(names, ["page_view", "test.latency"]);

    let err = fx
        .call_err("summary", json!({ "name": "never.recorded" }))
        .await?;
    assert!(err.contains("no events recorded"), "{err}");
    let err = fx
        .call_err("record_event", json!({ "name": "", "value": 1.0 }))
        .await?;
    assert!(err.contains("must not be empty"), "{err}");

    fx.stop().await
}

#[tokio::test]
async fn health_answers_ok_for_every_sample() -> TestResult {
    let http = reqwest::Client::new();
    for sample in Sample::ALL {
        let shutdown = CancellationToken::new();
        let running = start(
            sample,
            TcpListener::bind("127.0.0.1:0").await?,
            shutdown.clone(),
        )
        .await?;
        let response = http
            .get(format!("{}/health", running.base_url))
            .timeout(STOP_TIMEOUT)
            .send()
            .await?;
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{sample}");
        let body: Value = response.json().await?;
        assert_eq!(body, json!({ "status": "ok" }), "{sample}");
        shutdown.cancel();
        tokio::time::timeout(STOP_TIMEOUT, running.join()).await??;
    }
    Ok(())
}

#[tokio::test]
async fn shutdown_stops_a_server_with_an_open_session() -> TestResult {
    let fx = Fixture::start(Sample::Catalog).await?;
    fx.client.list_all_tools().await?;
    let base_url = fx.running.base_url.clone();

    // Cancel while the client session (and its SSE stream) is still open.
    fx.shutdown.cancel();
    tokio::time::timeout(STOP_TIMEOUT, fx.running.join()).await??;

    let refused = reqwest::Client::new()
        .get(format!("{base_url}/health"))
        .timeout(STOP_TIMEOUT)
        .send()
        .await;
    assert!(refused.is_err(), "server still answering after shutdown");
    let _ = fx.client.cancel().await;
    Ok(())
}

/// A real registry over a throwaway SQLite file.
async fn real_registry(
    shutdown: CancellationToken,
) -> TestResult<(String, mcp_fleet_test_support::TestDb)> {
    real_registry_on(TcpListener::bind("127.0.0.1:0").await?, shutdown).await
}

/// A real registry over a throwaway SQLite file, on `listener`.
async fn real_registry_on(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> TestResult<(String, mcp_fleet_test_support::TestDb)> {
    let db = mcp_fleet_test_support::sqlite();
    let store = mcp_fleet_store::connect(&db.url).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = mcp_fleet_registry::AppState::new(store, mcp_fleet_registry::Config::default());
    tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown));
    Ok((url, db))
}

#[tokio::test]
async fn each_sample_announces_itself_to_a_real_registry() -> TestResult {
    let shutdown = CancellationToken::new();
    let (registry_url, _db) = real_registry(shutdown.clone()).await?;
    let client = mcp_fleet_discovery::RegistryClient::new(&registry_url)?;
    let mut announcements = Vec::new();
    for sample in Sample::ALL {
        let running = start(
            sample,
            TcpListener::bind("127.0.0.1:0").await?,
            shutdown.child_token(),
        )
        .await?;
        announcements.push(running.announce(&registry_url).await?);
        let entry = client
            .get(sample.id())
            .await?
            .ok_or("registered entry not found")?;
        assert_eq!(entry.url.as_str().trim_end_matches('/'), running.base_url);
        let tags: Vec<String> = entry.tags.iter().map(|t| t.to_string()).collect();
        assert_eq!(tags, sample.tags(), "{sample}");
        assert_eq!(
            entry.ttl_seconds,
            Some(30),
            "{sample}: the announcer's default TTL"
        );
    }
    let products = client
        .list(&mcp_fleet_discovery::ListOptions {
            tags: vec!["products".into()],
            status: Some("any".into()),
            ..Default::default()
        })
        .await?;
    let ids: Vec<String> = products.servers.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["catalog", "inventory"]);
    shutdown.cancel();
    Ok(())
}

/// The announcer in-process: a sample announced before its registry is up registers once the
/// registry answers, is registered again when the registry forgets it (a heartbeat's 404), and is
/// deregistered by `shutdown` or, in the background, when its announcement is dropped.
#[tokio::test]
async fn an_announced_sample_stays_registered_until_shut_down() -> TestResult {
    let shutdown = CancellationToken::new();
    // The registry's address is known, but nothing listens there yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let registry_url = format!("http://127.0.0.1:{port}");
    let mut announced = Vec::new();
    for sample in [Sample::Catalog, Sample::Inventory] {
        let running = start(
            sample,
            TcpListener::bind("127.0.0.1:0").await?,
            shutdown.child_token(),
        )
        .await?;
        let announcer = running
            .announcer(&registry_url)?
            .with_ttl(Duration::from_secs(5))?;
        announced.push(announcer.start().await?);
    }

    let (_, _db) = real_registry_on(
        TcpListener::bind(("127.0.0.1", port)).await?,
        shutdown.clone(),
    )
    .await?;
    let client = mcp_fleet_discovery::RegistryClient::new(&registry_url)?;
    let present = |id: &'static str| {
        let client = client.clone();
        async move { client.get(id).await.expect("registry answers").is_some() }
    };
    for id in ["catalog", "inventory"] {
        mcp_fleet_test_support::eventually(
            STOP_TIMEOUT,
            "the sample to register once the registry is up",
            || async { present(id).await.then_some(()) },
        )
        .await;
    }

    assert!(client.delete("catalog").await?);
    mcp_fleet_test_support::eventually(
        STOP_TIMEOUT,
        "the forgotten sample to be registered again",
        || async { present("catalog").await.then_some(()) },
    )
    .await;

    let inventory = announced.pop().ok_or("two announcements")?;
    let catalog = announced.pop().ok_or("two announcements")?;
    assert!(catalog.shutdown().await?, "catalog was registered");
    assert!(!present("catalog").await, "deregistered by shutdown");
    drop(inventory);
    mcp_fleet_test_support::eventually(
        STOP_TIMEOUT,
        "the dropped announcement to deregister",
        || async { (!present("inventory").await).then_some(()) },
    )
    .await;
    shutdown.cancel();
    Ok(())
}

/// A sample answers a kept-alive client at once: it sets TCP_NODELAY, so the end of an answer
/// is not held back until the client's delayed ACK (with Nagle's algorithm on, each kept-alive
/// `tools/call` read to its end took ~44 ms, p50, against the demo's catalog).
#[tokio::test]
async fn kept_alive_calls_are_not_held_back_by_nagle() -> TestResult {
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let running = start(Sample::Catalog, listener, shutdown.clone()).await?;
    let url = running.mcp_url();
    // One connection, kept alive, as a direct client holds it.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()?;
    let post = |session: Option<&str>, body: Value| {
        let mut req = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let init = post(
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "nagle-test", "version": "1.0.0"}}}),
    )
    .await?;
    let session = init
        .headers()
        .get("mcp-session-id")
        .ok_or("no session id")?
        .to_str()?
        .to_owned();
    init.text().await?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(Some(&session), initialized).await?.text().await?;

    let mut took = Vec::new();
    for id in 1..=20 {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "get_product", "arguments": {"sku": "LAP-001"}}});
        let started = std::time::Instant::now();
        let answer = post(Some(&session), call).await?.text().await?;
        took.push(started.elapsed());
        assert!(answer.contains("LAP-001"), "{answer}");
    }
    took.sort();
    let median = took[took.len() / 2];
    // Nagle and delayed ACK put a call at 40 ms or more; without them one takes about a
    // millisecond. 20 ms leaves room for a slow, loaded machine.
    assert!(
        median < Duration::from_millis(20),
        "median {median:?} over 20 kept-alive calls: {took:?}"
    );
    shutdown.cancel();
    tokio::time::timeout(STOP_TIMEOUT, running.join()).await??;
    Ok(())
}
