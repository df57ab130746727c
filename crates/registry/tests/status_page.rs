//! The status page (`GET /`) in headless Chromium: it lists the fleet, a server killed during
//! the test turns `down` without a reload, the filters work, and a canary that breaks its stable
//! version's contract is marked until rolled back. Screenshots at laptop and phone width go to
//! `target/status-page.png` and `target/status-page-phone.png`, the marked canary to
//! `target/status-page-breaking.png`.
//!
//! Without Chromium the test skips, except under `CI=true` (`scripts/test` installs Debian's
//! `chromium`).

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use mcp_fleet_test_support::browser::{Browser, Page};
use mcp_fleet_test_support::{eventually, sqlite};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::common::{TestRegistry, fast_health, start_checked};

/// Where screenshots go: the workspace's `target/` (the test binary runs from
/// `target/<profile>/deps/`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        .filter(|dir| dir.join("CACHEDIR.TAG").exists() || dir.ends_with("target"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// An HTTP server whose `/health` answers `status` until `shutdown`; returns its base URL.
async fn health_server(status: StatusCode, shutdown: CancellationToken) -> String {
    let app = Router::new().route("/health", get(move || async move { status }));
    mcp_fleet_test_support::serve(app, shutdown).await
}

fn entry(id: &str, name: &str, version: &str, tags: &[&str], base: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "url": format!("{base}/{id}"),
        "version": version,
        "tags": tags,
        "healthUrl": format!("{base}/health"),
    })
}

/// The ids of the table's rows, in order.
async fn row_ids(page: &Page<'_>) -> Vec<String> {
    let ids = page
        .eval("[...document.querySelectorAll('#rows tr[data-id]')].map(r => r.dataset.id)")
        .await;
    serde_json::from_value(ids).expect("ids")
}

/// The status a row shows, as its badge says it in words (its icon is hidden from screen
/// readers, so not counted).
async fn row_status(page: &Page<'_>, id: &str) -> Value {
    page.eval(&format!(
        "(() => {{ const b = document.querySelector('#rows tr[data-id=\"{id}\"] .badge'); \
         if (!b) return null; const c = b.cloneNode(true); \
         c.querySelectorAll('[aria-hidden]').forEach(n => n.remove()); \
         return c.textContent.trim(); }})()"
    ))
    .await
}

/// The text of each cell of `id`'s row.
async fn cells(page: &Page<'_>, id: &str) -> Value {
    page.eval(&format!(
        "[...document.querySelector('#rows tr[data-id=\"{id}\"]').children].map(c => c.textContent.trim())"
    ))
    .await
}

/// Chooses `value` in the `<select>` `#id` as a user does (the change event included).
async fn choose(page: &Page<'_>, id: &str, value: &str) {
    page.eval(&format!(
        "(() => {{ const s = document.getElementById('{id}'); s.focus(); s.value = '{value}'; \
         s.dispatchEvent(new Event('change', {{bubbles: true}})); return s.value; }})()"
    ))
    .await;
}

async fn wait_all_probed(reg: &TestRegistry, n: usize) {
    eventually(Duration::from_secs(20), "every entry probed", || async {
        let (_, body) = reg.get("/status").await;
        let s = &body["summary"];
        (s["total"] == n && s["unknown"] == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_status_page_lists_the_fleet_follows_it_live_and_filters() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let reg = start_checked(sqlite(), fast_health()).await;
    let stop = CancellationToken::new();
    let inventory_stop = CancellationToken::new();
    let healthy_base = health_server(StatusCode::OK, stop.clone()).await;
    let inventory_base = health_server(StatusCode::OK, inventory_stop.clone()).await;
    let failing_base = health_server(StatusCode::SERVICE_UNAVAILABLE, stop.clone()).await;
    let fleet = [
        entry(
            "catalog",
            "Product Catalog",
            "1.2.0",
            &["products", "catalog"],
            &healthy_base,
        ),
        entry(
            "inventory",
            "Inventory",
            "2.0.1",
            &["products", "stock"],
            &inventory_base,
        ),
        entry(
            "analytics",
            "Sales Analytics",
            "0.9.0-rc.1",
            &["reports"],
            &healthy_base,
        ),
        entry("billing", "Billing", "3.4.2", &["payments"], &failing_base),
    ];
    for body in &fleet {
        assert_eq!(reg.post(body).await.0, 201);
    }
    wait_all_probed(&reg, fleet.len()).await;

    let page = browser.new_page(1280, 800, false).await;
    page.goto(&format!("{}/", reg.url)).await;

    // The table lists the fleet: problems first, then by id.
    page.wait_for(
        "four rows",
        "document.querySelectorAll('#rows tr[data-id]').length === 4",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        row_ids(&page).await,
        ["billing", "analytics", "catalog", "inventory"]
    );
    assert_eq!(row_status(&page, "catalog").await, "Healthy");
    assert_eq!(row_status(&page, "billing").await, "Degraded");
    let row = page
        .eval(
            "(() => { const r = document.querySelector('#rows tr[data-id=\"inventory\"]'); \
             return [...r.children].map(c => c.textContent.trim()); })()",
        )
        .await;
    assert_eq!(row[0], "Inventoryinventory");
    assert_eq!(row[1], "2.0.1");
    assert_eq!(row[2], "productsstock");
    assert_eq!(
        row[4], "\u{2014}",
        "a healthy server is not down since anything"
    );
    assert!(row[5].as_str().is_some_and(|s| s.ends_with(" ms")), "{row}");
    assert!(
        row[6].as_str().is_some_and(|s| s.ends_with(" s ago")),
        "{row}"
    );
    assert_eq!(
        row[8],
        format!("{inventory_base}/inventory"),
        "the URL column"
    );
    // A latency under a millisecond reads "<1 ms": "0 ms" would look like no measurement.
    let latencies = page
        .eval("[...document.querySelectorAll('#rows td.latency')].map(c => c.textContent)")
        .await;
    assert!(
        latencies
            .as_array()
            .is_some_and(|l| l.len() == 4 && !l.contains(&json!("0 ms"))),
        "{latencies}"
    );
    // A 503 reads "HTTP 503" (the whole chain is the tooltip); degraded since its first probe,
    // and it answered, so it has a latency.
    let billing = cells(&page, "billing").await;
    assert_eq!(billing[7], "HTTP 503", "{billing}");
    assert!(
        billing[4].as_str().is_some_and(|s| s.ends_with(" s ago")),
        "down since: {billing}"
    );
    assert!(
        billing[5].as_str().is_some_and(|s| s.ends_with(" ms")),
        "{billing}"
    );
    assert_eq!(
        page.eval("document.querySelector('#rows tr[data-id=\"billing\"] .err').title")
            .await,
        "GET health check: answered HTTP 503 Service Unavailable"
    );

    // Real table markup for screen readers: a caption, column and row headers.
    let markup = page
        .eval(
            "({caption: document.querySelector('#servers caption')?.textContent, \
              cols: document.querySelectorAll('#servers thead th[scope=col]').length, \
              rowHeaders: document.querySelectorAll('#rows th[scope=row]').length, \
              labelled: [...document.querySelectorAll('select, input')].every(c => c.labels.length > 0), \
              live: document.querySelector('[aria-live]')?.textContent})",
        )
        .await;
    assert_eq!(markup["caption"], "Servers (4)");
    assert_eq!(markup["cols"], 9);
    assert_eq!(markup["rowHeaders"], 4);
    assert_eq!(markup["labelled"], true);
    assert!(
        markup["live"]
            .as_str()
            .is_some_and(|s| s.contains("degraded")),
        "{markup}"
    );

    // Kill a server: its row turns down in place, without a reload.
    page.eval("window.__notReloaded = true").await;
    inventory_stop.cancel();
    page.wait_for(
        "inventory to turn down on the page",
        "document.querySelector('#rows tr[data-id=\"inventory\"]')?.dataset.status === 'down'",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(page.eval("window.__notReloaded === true").await, true);
    assert_eq!(row_status(&page, "inventory").await, "Down");
    assert_eq!(row_ids(&page).await[0], "inventory", "down rows come first");
    // A short cause, not a Rust error chain (the chain is the tooltip); no latency, as nothing
    // answered; down since the probe that found it so.
    let error = page
        .eval("document.querySelector('#rows tr[data-id=\"inventory\"] .err')?.textContent")
        .await;
    assert!(
        [
            "connection refused",
            "connection closed",
            "connection reset"
        ]
        .contains(&error.as_str().unwrap_or_default()),
        "{error}"
    );
    page.wait_for(
        "inventory's latency to read \u{2014}",
        "document.querySelector('#rows tr[data-id=\"inventory\"] td.latency')?.textContent === '\u{2014}'",
        Duration::from_secs(5),
    )
    .await;
    let inventory = cells(&page, "inventory").await;
    assert!(
        inventory[4].as_str().is_some_and(|s| s.ends_with(" s ago")),
        "down since: {inventory}"
    );
    let detail = page
        .eval("document.querySelector('#rows tr[data-id=\"inventory\"] .err').title")
        .await;
    assert!(
        detail
            .as_str()
            .is_some_and(|d| d.starts_with("GET health check: ")),
        "{detail}"
    );
    page.wait_for(
        "the summary to count the down server",
        "document.getElementById('overall').dataset.status === 'degraded' && \
         document.getElementById('announce').textContent.includes('1 down')",
        Duration::from_secs(5),
    )
    .await;
    let mode = page
        .eval("document.getElementById('conn').dataset.mode")
        .await;
    eprintln!("status page updates by: {mode}");

    // Filter by tag, then by status, then by typing.
    choose(&page, "f-tag", "products").await;
    assert_eq!(row_ids(&page).await, ["inventory", "catalog"]);
    assert_eq!(
        page.eval("document.getElementById('caption').textContent")
            .await,
        "Servers (2 of 4 shown)"
    );
    assert_eq!(
        page.eval("location.search").await,
        "?tag=products",
        "the filter is kept in the address"
    );
    choose(&page, "f-status", "down").await;
    assert_eq!(row_ids(&page).await, ["inventory"]);
    choose(&page, "f-tag", "reports").await;
    assert_eq!(row_ids(&page).await, Vec::<String>::new());
    assert_eq!(
        page.eval("document.querySelector('#rows tr.empty')?.textContent")
            .await,
        "No servers match these filters."
    );
    page.eval("document.getElementById('filters').reset()")
        .await;
    page.wait_for(
        "the filters to clear",
        "document.querySelectorAll('#rows tr[data-id]').length === 4",
        Duration::from_secs(5),
    )
    .await;
    page.eval("document.getElementById('f-text').focus()").await;
    page.type_text("analy").await;
    assert_eq!(row_ids(&page).await, ["analytics"]);
    page.eval("document.getElementById('filters').reset()")
        .await;
    page.wait_for(
        "the filters to clear",
        "document.querySelectorAll('#rows tr[data-id]').length === 4 && !location.search",
        Duration::from_secs(5),
    )
    .await;
    // The status counts are buttons that filter, reachable with the keyboard.
    page.eval("document.querySelector('#counts li:nth-child(4) button').focus()")
        .await;
    page.press("Enter").await;
    page.wait_for(
        "the Down button to filter",
        "document.querySelectorAll('#rows tr[data-id]').length === 1",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(row_ids(&page).await, ["inventory"]);
    page.eval("document.getElementById('filters').reset()")
        .await;
    page.wait_for(
        "the filters to clear",
        "document.querySelectorAll('#rows tr[data-id]').length === 4",
        Duration::from_secs(5),
    )
    .await;

    let dir = target_dir();
    page.screenshot(&dir.join("status-page.png")).await;

    // Phone width: no sideways scrolling, every row still there.
    let phone = browser.new_page(390, 844, true).await;
    phone.goto(&format!("{}/", reg.url)).await;
    phone
        .wait_for(
            "four rows on the phone",
            "document.querySelectorAll('#rows tr[data-id]').length === 4",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(
        phone
            .eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        true,
        "the page scrolls sideways at phone width"
    );
    phone.screenshot(&dir.join("status-page-phone.png")).await;

    // Without a change feed (a browser without EventSource, or a registry without /events) the
    // page polls; a deletion shows on both pages, by either route.
    let polling = browser.new_page(1024, 768, false).await;
    polling
        .add_init_script("window.EventSource = undefined;")
        .await;
    polling.goto(&format!("{}/", reg.url)).await;
    polling
        .wait_for(
            "the polling page to list the fleet",
            "document.querySelectorAll('#rows tr[data-id]').length === 4 && \
             document.getElementById('conn').dataset.mode === 'polling'",
            Duration::from_secs(10),
        )
        .await;
    let res = reg
        .http
        .delete(format!("{}/servers/analytics", reg.url))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 204);
    for (which, p) in [("polling", &polling), ("first", &page)] {
        p.wait_for(
            &format!("the {which} page to drop the deleted server"),
            "document.querySelectorAll('#rows tr[data-id]').length === 3 && \
             !document.querySelector('#rows tr[data-id=\"analytics\"]')",
            Duration::from_secs(10),
        )
        .await;
    }

    stop.cancel();
    browser.close().await;
}

/// Stores `tools` as what entry `id` listed.
async fn listed(reg: &TestRegistry, id: &str, tools: &[&str]) {
    let (rows, _) = reg.store.health_rows(None).await.expect("rows");
    let row = rows.iter().find(|r| r.id.as_str() == id).expect("row");
    let tools = tools
        .iter()
        .map(|name| json!({"name": name, "inputSchema": {"type": "object"}}))
        .collect::<Vec<_>>();
    let record = mcp_fleet_store::CatalogRecord {
        id: row.id.clone(),
        reg_rev: row.reg_rev,
        catalog: serde_json::from_value(json!({ "tools": tools })).expect("catalog"),
        at: chrono::Utc::now(),
    };
    reg.store.put_catalogs(&[record]).await.expect("put");
}

#[tokio::test]
async fn a_canary_that_breaks_its_contract_is_marked_until_rolled_back() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let reg = crate::common::start_sqlite().await;
    for (id, version, tools) in [
        ("inv-1", "1.0.0", &["lookup", "stock"][..]),
        ("inv-2", "2.0.0", &["lookup"][..]),
    ] {
        let body = json!({
            "id": id, "name": "Inventory", "url": "http://127.0.0.1:9", "version": version,
            "service": "inventory", "healthCheck": {"mode": "none"},
        });
        assert_eq!(reg.post(&body).await.0, 201);
        listed(&reg, id, tools).await;
    }
    let (status, doc) = reg
        .put_routing(
            "inventory",
            &json!({"weights": {"1.0.0": 90, "2.0.0": 10},
                    "allowBreaking": {"reason": "clients pinned"}}),
        )
        .await;
    assert_eq!(status, 201, "{doc}");

    let page = browser.new_page(1280, 800, false).await;
    page.goto(&format!("{}/", reg.url)).await;
    page.wait_for(
        "the canary's marker",
        "document.querySelector('#rows tr[data-id=\"inv-2\"] .breaking') !== null",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        cells(&page, "inv-2").await[1],
        "2.0.0breaks 1.0.0",
        "the version cell carries the marker"
    );
    assert_eq!(
        page.eval("document.querySelector('#rows tr[data-id=\"inv-1\"] .breaking')")
            .await,
        Value::Null,
        "the stable version is not marked"
    );
    assert_eq!(
        page.eval("document.getElementById('contracts').textContent")
            .await,
        "\u{26a0} Breaking canary: inventory 2.0.0 (10%) breaks the contract of 1.0.0 \
         (allowed: clients pinned)"
    );

    page.screenshot(&target_dir().join("status-page-breaking.png"))
        .await;

    // Rolled back: the marker goes without a reload (a routing event re-reads /status).
    let (status, _) = reg
        .send(
            reqwest::Method::POST,
            "/services/inventory/routing/rollback",
            Some(&json!({"version": "2.0.0", "reason": "errors"})),
        )
        .await;
    assert_eq!(status, 200);
    page.wait_for(
        "the marker to go",
        "document.querySelector('#rows .breaking') === null && \
         document.getElementById('contracts').children.length === 0",
        Duration::from_secs(10),
    )
    .await;
    browser.close().await;
}
