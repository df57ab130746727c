//! Run with: `scripts/bench` (or `cargo build --release -p mcp-fleet && eval "$(scripts/pg start)"
//! && cargo bench -p mcp-fleet-registry --bench catalog`).
//!
//! The tool catalog at fleet size (issue #27): `BENCH_CATALOG_ENTRIES` (10,000) entries of 20
//! tools each, 200,000 tools, with names and descriptions drawn from a small vocabulary (30
//! domains, 20 verbs, 4 objects per domain, 2 tools of its own per domain, one rare tool on one
//! entry in a hundred), so that a query matches about what it would in a real fleet.
//!
//! 1. **Search.** The release binary (`target/release/mcp-fleet`, or `MCP_FLEET_BIN`) as `serve
//!    --no-health-worker` on SQLite, then on PostgreSQL (`MCP_FLEET_TEST_POSTGRES_URL`, which
//!    `scripts/pg start` prints; skipped with a line saying so when it is unset, outside CI). The
//!    entries and their catalogs are written through `Store::upsert` and `Store::put_catalogs`
//!    before the server starts. Then `GET /tools?q=…` for each query of [`QUERIES`],
//!    `BENCH_CATALOG_SEARCHES` (100) times each, one at a time, each followed by the baseline
//!    `GET /servers?limit=20` on the same server, so both see the same noise; then
//!    `BENCH_CATALOG_CONCURRENCY` (8) clients at once. Target: search p99 ≤ 20 ms on each backend.
//! 2. **Memory.** The server's RSS (`VmRSS`) after those requests, against a server on the same
//!    database before the catalogs were written, after the same requests.
//! 3. **Sweep cost.** `BENCH_CATALOG_SWEEP_ENTRIES` (10,000) entries checked over MCP (no
//!    `healthUrl`), pointing at 30 rmcp servers on loopback (one per domain, each listing its 20
//!    tools), swept by a health worker in this process on SQLite, `BENCH_CATALOG_SWEEP_ROUNDS` (3)
//!    times each way, each round on a fresh copy of the seeded database: catalog off
//!    (`catalog_refresh` and `catalog_refresh_slow` `None`), the worker's first sweep and, started
//!    with `HealthHandle::sweep_now`, its second; every probe listing, the catalogs stored before
//!    and unchanged: the first sweep of a worker just started (each listing converted and compared
//!    in the store), then its second (each listing the one the worker stored: a refresh, as at
//!    every `--catalog-refresh`); and every probe listing catalogs never stored (the listing at
//!    registration, which writes every tool). Wall time to the last probe and to the last write,
//!    and the registry side's CPU (this process less the MCP servers' thread and the bench's
//!    own), each against the catalog-off sweep of the same rank. Target: a sweep whose every
//!    probe lists an unchanged catalog ≤ 1.2× one without. At the defaults (`--catalog-refresh
//!    10m`, `--health-interval 30s`) one probe in 20 lists: that ratio is computed from the
//!    measured extra cost of a listing, 1 + (ratio − 1) / 20, not measured.
//!
//! `BENCH_CATALOG_PARTS` (`search,sweep`) picks the parts, `BENCH_CATALOG_SWEEP_MODES`
//! (`off,refresh,first`) the sweeps' workers (`refresh` runs the worker-just-started and the
//! refresh sweeps).
//!
//! Over 500 lines: one benchmark with its corpus (the vocabulary the catalogs are drawn from),
//! its two servers (a spawned registry, a fleet of MCP servers) and its report.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use mcp_fleet_model::{Catalog, Registration, ToolDef, search_terms};
use mcp_fleet_registry::HealthConfig;
use mcp_fleet_store::{CatalogRecord, Store};
use mcp_fleet_test_support::bench::{
    EchoServer, cpu_spent, env_or, process_cpu, quantile, rss, thread_cpu,
};
use rmcp::model::Tool;
use tokio_util::sync::CancellationToken;

mcp_fleet_test_support::bench_allocator!();

/// Tools each entry offers.
const TOOLS_PER_ENTRY: usize = 20;
/// Search p99 target, per backend.
const SEARCH_TARGET: Duration = Duration::from_millis(20);
/// Sweep with every probe listing / without, target.
const SWEEP_TARGET: f64 = 1.2;
/// `--health-interval` and `--catalog-refresh` defaults: one probe in this many lists.
const PROBES_PER_LISTING: f64 = 600.0 / 30.0;
/// The baseline request, on the same server.
const BASELINE: &str = "/servers?limit=20";
/// What users type: two- and three-word tasks (some with stop words), one word, a rare word, a
/// word no tool has.
const QUERIES: [&str; 9] = [
    "check stock",
    "refund a payment",
    "list open invoices",
    "send an email to a customer",
    "track my parcel",
    "weather",
    "invoice",
    "defragment",
    "xylophone",
];
/// Time limit of one probe in the sweeps: generous, so that a loaded machine's slow answer is
/// not a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// A sweep slower than this is a failure, not a measurement.
const SWEEP_LIMIT: Duration = Duration::from_secs(120);

// ---- The corpus ----

/// A kind of server: what its tools act on.
struct Domain {
    tag: &'static str,
    system: &'static str,
    /// Singular and plural.
    objects: [(&'static str, &'static str); 4],
    /// Tools only this domain has: name and description.
    own: [(&'static str, &'static str); 2],
}

const fn d(
    tag: &'static str,
    system: &'static str,
    objects: [(&'static str, &'static str); 4],
    own: [(&'static str, &'static str); 2],
) -> Domain {
    Domain {
        tag,
        system,
        objects,
        own,
    }
}

#[rustfmt::skip]
const DOMAINS: [Domain; 30] = [
    d("inventory", "the inventory system",
      [("product", "products"), ("warehouse", "warehouses"), ("supplier", "suppliers"), ("shipment", "shipments")],
      [("check_stock", "Checks how many units of a product are in stock at each warehouse."),
       ("reserve_stock", "Reserves units of a product in stock for an order until it ships.")]),
    d("payments", "the payment processor",
      [("payment", "payments"), ("refund", "refunds"), ("charge", "charges"), ("payout", "payouts")],
      [("refund_payment", "Refunds a payment, in full or in part, to the card it was made with."),
       ("capture_payment", "Captures an authorized payment before its authorization expires.")]),
    d("billing", "the billing system",
      [("invoice", "invoices"), ("subscription", "subscriptions"), ("plan", "plans"), ("coupon", "coupons")],
      [("list_open_invoices", "Lists a customer's open (unpaid) invoices, oldest first, with the amount due."),
       ("send_invoice", "Emails an invoice to the customer as a PDF.")]),
    d("crm", "the CRM",
      [("contact", "contacts"), ("account", "accounts"), ("lead", "leads"), ("deal", "deals")],
      [("find_contact", "Finds a contact by name, email address or phone number."),
       ("log_call", "Logs a phone call with a contact, with notes and a follow-up date.")]),
    d("helpdesk", "the help desk",
      [("ticket", "tickets"), ("macro", "macros"), ("agent", "agents"), ("reply", "replies")],
      [("escalate_ticket", "Escalates a ticket to the engineer on call, with its history."),
       ("close_ticket", "Closes a solved ticket and asks the customer for a rating.")]),
    d("shipping", "the carrier's API",
      [("parcel", "parcels"), ("label", "labels"), ("pickup", "pickups"), ("rate", "rates")],
      [("track_parcel", "Tracks a parcel and returns its last known position and delivery estimate."),
       ("print_label", "Prints a shipping label for a parcel, ready to stick on the box.")]),
    d("hr", "the HR system",
      [("employee", "employees"), ("leave", "leaves"), ("payslip", "payslips"), ("review", "reviews")],
      [("request_leave", "Requests days of leave for an employee and notifies their manager."),
       ("onboard_employee", "Starts the onboarding checklist of a new hire: accounts, laptop, training.")]),
    d("calendar", "the calendar",
      [("event", "events"), ("meeting", "meetings"), ("room", "rooms"), ("reminder", "reminders")],
      [("find_free_slot", "Finds a time slot when every attendee is free."),
       ("book_room", "Books a meeting room for a time slot.")]),
    d("mail", "the mail server",
      [("message", "messages"), ("draft", "drafts"), ("folder", "folders"), ("attachment", "attachments")],
      [("send_email", "Sends an email to one or more recipients, with attachments."),
       ("reply_to_email", "Replies to an email, quoting it.")]),
    d("docs", "the document store",
      [("document", "documents"), ("page", "pages"), ("comment", "comments"), ("template", "templates")],
      [("share_document", "Shares a document with people or groups, read-only or editable."),
       ("convert_to_pdf", "Converts a document to PDF.")]),
    d("analytics", "the data warehouse",
      [("report", "reports"), ("dashboard", "dashboards"), ("metric", "metrics"), ("dataset", "datasets")],
      [("run_sql_query", "Runs a read-only SQL query on the data warehouse and returns the rows."),
       ("explain_metric", "Explains how a metric is computed and which tables it reads.")]),
    d("git", "the git host",
      [("repository", "repositories"), ("branch", "branches"), ("commit", "commits"), ("issue", "issues")],
      [("open_pull_request", "Opens a pull request from a branch, with a title and description."),
       ("blame_file", "Shows who last changed each line of a file.")]),
    d("ci", "the CI service",
      [("pipeline", "pipelines"), ("build", "builds"), ("job", "jobs"), ("artifact", "artifacts")],
      [("rerun_failed_jobs", "Reruns the failed jobs of a pipeline."),
       ("download_build_log", "Downloads the log of a build step.")]),
    d("monitoring", "the monitoring stack",
      [("alert", "alerts"), ("incident", "incidents"), ("silence", "silences"), ("probe", "probes")],
      [("acknowledge_alert", "Acknowledges a firing alert so it stops paging."),
       ("page_on_call", "Pages the engineer on call with a message.")]),
    d("database", "the database cluster",
      [("table", "tables"), ("index", "indexes"), ("backup", "backups"), ("migration", "migrations")],
      [("explain_query", "Shows the query plan of a SQL statement."),
       ("restore_backup", "Restores a backup into a new database.")]),
    d("storage", "object storage",
      [("bucket", "buckets"), ("file", "files"), ("snapshot", "snapshots"), ("volume", "volumes")],
      [("presign_url", "Creates a time-limited download link for a file."),
       ("upload_file", "Uploads a file to a bucket.")]),
    d("weather", "the weather service",
      [("forecast", "forecasts"), ("station", "stations"), ("warning", "warnings"), ("observation", "observations")],
      [("get_forecast", "Returns the weather forecast for a place for the next seven days."),
       ("current_conditions", "Returns the current temperature, wind and rain at a place.")]),
    d("maps", "the maps API",
      [("place", "places"), ("route", "routes"), ("address", "addresses"), ("area", "areas")],
      [("geocode_address", "Turns a street address into coordinates."),
       ("plan_route", "Plans a driving, cycling or walking route between two places.")]),
    d("travel", "the booking engine",
      [("flight", "flights"), ("hotel", "hotels"), ("booking", "bookings"), ("itinerary", "itineraries")],
      [("search_flights", "Searches flights between two airports on a date, cheapest first."),
       ("book_hotel", "Books a hotel room for given dates.")]),
    d("chat", "the chat workspace",
      [("channel", "channels"), ("thread", "threads"), ("user", "users"), ("emoji", "emojis")],
      [("post_message", "Posts a message to a channel or a thread."),
       ("summarize_channel", "Summarizes the unread messages of a channel.")]),
    d("tasks", "the task tracker",
      [("task", "tasks"), ("project", "projects"), ("sprint", "sprints"), ("milestone", "milestones")],
      [("create_task", "Creates a task with a title, an assignee and a due date."),
       ("move_task", "Moves a task to another column of the board.")]),
    d("accounting", "the ledger",
      [("journal", "journals"), ("transaction", "transactions"), ("budget", "budgets"), ("expense", "expenses")],
      [("reconcile_ledger", "Reconciles the general ledger against the bank statements."),
       ("submit_expense", "Submits an expense with its receipt for approval.")]),
    d("marketing", "the marketing platform",
      [("campaign", "campaigns"), ("audience", "audiences"), ("segment", "segments"), ("newsletter", "newsletters")],
      [("schedule_campaign", "Schedules an email campaign for a segment of the audience."),
       ("ab_test_subject", "Runs an A/B test of two subject lines.")]),
    d("orders", "the order system",
      [("order", "orders"), ("cart", "carts"), ("return", "returns"), ("customer", "customers")],
      [("cancel_order", "Cancels an order that has not shipped and refunds the customer."),
       ("order_status", "Returns the status of an order and its parcels.")]),
    d("security", "the security scanner",
      [("vulnerability", "vulnerabilities"), ("scan", "scans"), ("secret", "secrets"), ("policy", "policies")],
      [("rotate_secret", "Rotates a secret and updates the services that use it."),
       ("scan_dependencies", "Scans a project's dependencies for known vulnerabilities.")]),
    d("identity", "the identity provider",
      [("user", "users"), ("group", "groups"), ("role", "roles"), ("session", "sessions")],
      [("reset_password", "Sends a user a link to reset their password."),
       ("grant_role", "Grants a role to a user or a group.")]),
    d("iot", "the device fleet",
      [("device", "devices"), ("sensor", "sensors"), ("firmware", "firmwares"), ("reading", "readings")],
      [("reboot_device", "Reboots a device remotely."),
       ("latest_reading", "Returns the latest reading of a sensor.")]),
    d("music", "the music library",
      [("track", "tracks"), ("album", "albums"), ("playlist", "playlists"), ("artist", "artists")],
      [("play_track", "Plays a track on the user's current device."),
       ("recommend_tracks", "Recommends tracks similar to a seed track.")]),
    d("news", "the news feed",
      [("article", "articles"), ("source", "sources"), ("topic", "topics"), ("headline", "headlines")],
      [("top_headlines", "Returns today's top headlines for a country or a topic."),
       ("summarize_article", "Summarizes a news article in three sentences.")]),
    d("legal", "the contract repository",
      [("contract", "contracts"), ("clause", "clauses"), ("matter", "matters"), ("signature", "signatures")],
      [("request_signature", "Sends a contract out for electronic signature."),
       ("compare_contracts", "Compares two versions of a contract clause by clause.")]),
];

/// Verbs every domain has: the verb, whether its tool's name takes the plural, and the
/// description (`{o}` the object, `{os}` its plural, `{sys}` the domain's system).
#[rustfmt::skip]
const VERBS: [(&str, bool, &str); 20] = [
    ("list", true, "Lists the {os} in {sys}, newest first, a page at a time."),
    ("get", false, "Returns one {o} by its id, with all of its fields."),
    ("create", false, "Creates a new {o} in {sys}."),
    ("update", false, "Updates the fields of an existing {o}."),
    ("delete", false, "Deletes a {o}; it cannot be restored."),
    ("search", true, "Searches the {os} by free text and filters."),
    ("check", false, "Checks a {o} for problems and reports what it found."),
    ("export", true, "Exports {os} as a CSV file for a report."),
    ("cancel", false, "Cancels a pending {o} and tells its owner."),
    ("archive", true, "Archives the {os} older than a given date."),
    ("count", true, "Counts the {os} matching a filter."),
    ("sync", true, "Synchronizes the {os} with the upstream copy in {sys}."),
    ("approve", false, "Approves a {o} that is waiting for review."),
    ("assign", false, "Assigns a {o} to a member of the team."),
    ("label", false, "Adds labels to a {o} so it can be found later."),
    ("merge", true, "Merges two duplicate {os} into one."),
    ("validate", false, "Validates a {o} against the rules of {sys}."),
    ("watch", false, "Subscribes to the changes of a {o}."),
    ("summarize", true, "Summarizes the recent {os} in a few sentences."),
    ("import", true, "Imports {os} from a CSV file."),
];

/// On one entry in a hundred, in place of its last tool.
const RARE: (&str, &str) = (
    "defragment_volume",
    "Defragments a storage volume while it stays mounted.",
);

fn domain(i: usize) -> &'static Domain {
    &DOMAINS[i % DOMAINS.len()]
}

/// The 20 tools of entry `i`: its domain's own two, then 18 of the domain's 80 verb-object
/// pairs, a different selection from one entry of the domain to the next.
fn tool_set(i: usize) -> Vec<Tool> {
    let d = domain(i);
    let mut tools: Vec<(String, String, &str)> = d
        .own
        .iter()
        .map(|(name, text)| (name.to_string(), text.to_string(), d.objects[0].0))
        .collect();
    let pairs = VERBS.len() * d.objects.len();
    let start = (i / DOMAINS.len()) * 7;
    // A stride prime to the number of pairs visits each pair once.
    for k in 0..TOOLS_PER_ENTRY - tools.len() {
        let pair = (start + k * 3) % pairs;
        let (verb, plural, text) = VERBS[pair % VERBS.len()];
        let (o, os) = d.objects[pair / VERBS.len()];
        let name = format!("{verb}_{}", if plural { os } else { o });
        let text = text
            .replace("{os}", os)
            .replace("{o}", o)
            .replace("{sys}", d.system);
        tools.push((name, text, o));
    }
    if i.is_multiple_of(100)
        && let Some(last) = tools.last_mut()
    {
        *last = (RARE.0.to_string(), RARE.1.to_string(), "volume");
    }
    tools
        .into_iter()
        .map(|(name, description, object)| {
            let serde_json::Value::Object(schema) = serde_json::json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": format!("The {object}'s id.")},
                    "limit": {
                        "type": "integer", "minimum": 1, "maximum": 100,
                        "description": "At most this many results."
                    }
                },
                "required": ["id"]
            }) else {
                unreachable!("a literal object")
            };
            Tool::new(name, description, Arc::new(schema))
        })
        .collect()
}

/// The catalog a listing of `tools` gives: each tool as the probe converts it.
fn catalog_of(tools: &[Tool]) -> Catalog {
    Catalog {
        tools: tools
            .iter()
            .map(|t| {
                let value = serde_json::to_value(t).expect("a tool serializes");
                serde_json::from_value::<ToolDef>(value).expect("a tool is a ToolDef")
            })
            .collect(),
        ..Catalog::default()
    }
}

fn registration(i: usize, url: &str) -> Registration {
    let d = domain(i);
    Registration::from_json(
        &serde_json::json!({
            "id": format!("srv-{i:05}"),
            "name": format!("{} server {i}", d.tag),
            "description": format!("Tools for {}.", d.system),
            "url": url,
            "version": "1.0.0",
            "tags": ["fleet", d.tag],
            "metadata": {"team": format!("team-{}", i % 7), "region": "eu-west-1"},
            "healthCheck": {"mode": "mcp"},
        }),
        None,
    )
    .expect("a valid registration")
}

/// Registers `entries` entries, entry `i` at `url(i)`.
async fn register(store: &dyn Store, entries: usize, url: impl Fn(usize) -> String) {
    futures::stream::iter(0..entries)
        .map(|i| {
            let reg = registration(i, &url(i));
            async move {
                store.upsert(reg, Utc::now()).await.expect("upsert");
            }
        })
        .buffer_unordered(16)
        .collect::<()>()
        .await;
}

/// Stores every entry's listing, `tools(i)` for entry `i`, 100 entries a transaction,
/// `in_flight` transactions at once.
async fn put_catalogs(store: &dyn Store, tools: impl Fn(usize) -> Vec<Tool>, in_flight: usize) {
    let (rows, _) = store.health_rows(None).await.expect("health rows");
    let at = Utc::now();
    let mut records: Vec<CatalogRecord> = rows
        .into_iter()
        .map(|row| {
            let i: usize = row.id.as_str()[4..].parse().expect("srv-NNNNN");
            CatalogRecord {
                id: row.id,
                reg_rev: row.reg_rev,
                catalog: catalog_of(&tools(i)),
                at,
            }
        })
        .collect();
    records.sort_by(|a, b| a.id.cmp(&b.id));
    futures::stream::iter(records.chunks(100))
        .map(|batch| async move {
            let written = store.put_catalogs(batch).await.expect("put_catalogs");
            assert_eq!(written.len(), batch.len(), "a listing was not stored");
        })
        .buffer_unordered(in_flight)
        .collect::<()>()
        .await;
}

// ---- Part 1 and 2: search and memory, against the release binary ----

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(binary: &str, database_url: &str) -> (Server, String) {
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-health-worker",
            "--write-rate-limit",
            "0",
            "--read-rate-limit",
            "0",
            "--database-url",
            database_url,
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e} (scripts/bench builds it)"));
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("listening on ").map(str::to_owned))
        .expect("the server never said where it listens");
    (server, url)
}

fn search_path(q: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
    format!("/tools?q={q}")
}

/// One GET, answer read to the end: how long it took, and the body.
async fn get(http: &reqwest::Client, url: &str) -> (Duration, bytes::Bytes) {
    let started = Instant::now();
    let res = http.get(url).send().await.expect("GET");
    assert!(res.status().is_success(), "GET {url}: {}", res.status());
    let body = res.bytes().await.expect("body");
    (started.elapsed(), body)
}

/// Latencies, sorted.
fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort_unstable();
    v
}

/// Tools a query matches: with every word, with any.
type Matching = (i64, i64);

/// What one backend measured.
struct Search {
    backend: &'static str,
    fill: Duration,
    /// Per query: tools matching every word and any word (from the database), hits on the
    /// first page, latencies.
    queries: Vec<(&'static str, Matching, usize, Vec<Duration>)>,
    all: Vec<Duration>,
    baseline: Vec<Duration>,
    concurrent: Vec<Duration>,
    concurrent_rate: f64,
    concurrent_baseline: Vec<Duration>,
    concurrent_baseline_rate: f64,
    rss_without: f64,
    rss_with: f64,
    peak_with: f64,
}

/// The requests both memory readings follow: every query and the baseline, `rounds` times.
async fn reads(http: &reqwest::Client, url: &str, rounds: usize) {
    for _ in 0..rounds {
        for q in QUERIES {
            get(http, &format!("{url}{}", search_path(q))).await;
        }
        get(http, &format!("{url}{BASELINE}")).await;
    }
}

/// `clients` clients at once, each sending `per_client` of `paths` round robin.
async fn concurrently(
    http: &reqwest::Client,
    url: &str,
    paths: &[String],
    clients: usize,
    per_client: usize,
) -> (Vec<Duration>, f64) {
    let started = Instant::now();
    let runs = (0..clients).map(|c| async move {
        let mut samples = Vec::with_capacity(per_client);
        for k in 0..per_client {
            let path = &paths[(c + k) % paths.len()];
            samples.push(get(http, &format!("{url}{path}")).await.0);
        }
        samples
    });
    let samples: Vec<Duration> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
    (sorted(samples), rate)
}

/// Tools the query `q` matches, counted in the database as the backend's search matches them:
/// with every word (the first tier of a search, which ranks only those when there are enough
/// for the page), and with any.
async fn matching(database_url: &str, q: &str) -> Matching {
    use sqlx::Connection;
    // Stop words dropped, as the search drops them.
    let terms: Vec<String> = search_terms(q)
        .into_iter()
        .filter(|t| !mcp_fleet_store::STOP_WORDS.contains(&t.as_str()))
        .collect();
    if terms.is_empty() {
        return (0, 0);
    }
    let mut counts = [0; 2];
    if database_url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(database_url)
            .await
            .expect("open SQLite");
        let quoted: Vec<String> = terms.iter().map(|t| format!("\"{t}\"")).collect();
        for (k, op) in [" AND ", " OR "].into_iter().enumerate() {
            counts[k] = sqlx::query_scalar(
                "SELECT count(*) FROM catalog_search WHERE catalog_search MATCH ?",
            )
            .bind(quoted.join(op))
            .fetch_one(&mut conn)
            .await
            .expect("count");
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(database_url)
            .await
            .expect("open PostgreSQL");
        for (k, op) in [" & ", " | "].into_iter().enumerate() {
            counts[k] = sqlx::query_scalar(
                "SELECT count(*) FROM catalog_search WHERE search @@ to_tsquery('english', $1)",
            )
            .bind(terms.join(op))
            .fetch_one(&mut conn)
            .await
            .expect("count");
        }
    }
    (counts[0], counts[1])
}

async fn search(
    backend: &'static str,
    binary: &str,
    database_url: &str,
    entries: usize,
    samples: usize,
    clients: usize,
) -> Search {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client");
    let started = Instant::now();
    let store = mcp_fleet_store::connect(database_url)
        .await
        .expect("open the store");
    register(store.as_ref(), entries, |i| {
        format!(
            "http://10.{}.{}.{}:8080",
            i / 65536,
            (i / 256) % 256,
            i % 256
        )
    })
    .await;
    eprintln!(
        "catalog: {backend}: {entries} entries registered in {:.1?}",
        started.elapsed()
    );

    // The same entries, no catalog.
    let rss_without = {
        let (server, url) = start_server(binary, database_url);
        reads(&http, &url, 5).await;
        rss(server.0.id()).0
    };

    let started = Instant::now();
    let in_flight = if backend == "SQLite" { 1 } else { 4 };
    put_catalogs(store.as_ref(), tool_set, in_flight).await;
    let fill = started.elapsed();
    eprintln!(
        "catalog: {backend}: {} tools stored in {fill:.1?}",
        entries * TOOLS_PER_ENTRY
    );
    drop(store);

    let (server, url) = start_server(binary, database_url);
    let pid = server.0.id();
    // Warm up: open connections, read the indexes into the page caches.
    reads(&http, &url, 5).await;

    let mut per_query: Vec<Vec<Duration>> = vec![Vec::with_capacity(samples); QUERIES.len()];
    let mut hits = vec![0; QUERIES.len()];
    let mut baseline = Vec::with_capacity(samples * QUERIES.len());
    for round in 0..samples {
        for (k, q) in QUERIES.iter().enumerate() {
            let (took, body) = get(&http, &format!("{url}{}", search_path(q))).await;
            per_query[k].push(took);
            if round == 0 {
                let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                hits[k] = page["tools"].as_array().map_or(0, Vec::len);
            }
            baseline.push(get(&http, &format!("{url}{BASELINE}")).await.0);
        }
    }
    let paths: Vec<String> = QUERIES.iter().map(|q| search_path(q)).collect();
    let per_client = (samples * QUERIES.len() / clients).max(1);
    let (concurrent, concurrent_rate) =
        concurrently(&http, &url, &paths, clients, per_client).await;
    let (concurrent_baseline, concurrent_baseline_rate) =
        concurrently(&http, &url, &[BASELINE.to_string()], clients, per_client).await;
    let (rss_with, peak_with) = rss(pid);
    drop(server);

    let mut queries = Vec::with_capacity(QUERIES.len());
    for (k, q) in QUERIES.iter().enumerate() {
        let matched = matching(database_url, q).await;
        queries.push((
            *q,
            matched,
            hits[k],
            sorted(std::mem::take(&mut per_query[k])),
        ));
    }
    let all = sorted(queries.iter().flat_map(|q| q.3.iter().copied()).collect());
    Search {
        backend,
        fill,
        queries,
        all,
        baseline: sorted(baseline),
        concurrent,
        concurrent_rate,
        concurrent_baseline,
        concurrent_baseline_rate,
        rss_without,
        rss_with,
        peak_with,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn print_search(s: &Search, entries: usize, clients: usize) {
    let tools = entries * TOOLS_PER_ENTRY;
    println!(
        "\n### Search on {}: {entries} entries, {tools} tools (stored in {:.1} s)\n",
        s.backend,
        s.fill.as_secs_f64()
    );
    println!(
        "| request | tools matching every word / any word | hits on page 1 | p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|");
    for (q, matched, hits, lat) in &s.queries {
        println!(
            "| `GET {}` | {} ({:.2}%) / {} ({:.2}%) | {hits} | {} | {} | {} |",
            search_path(q),
            matched.0,
            matched.0 as f64 * 100.0 / tools as f64,
            matched.1,
            matched.1 as f64 * 100.0 / tools as f64,
            ms(quantile(lat, 0.5)),
            ms(quantile(lat, 0.99)),
            ms(quantile(lat, 1.0)),
        );
    }
    println!(
        "| every search, one at a time ({}) | | | {} | {} | {} |",
        s.all.len(),
        ms(quantile(&s.all, 0.5)),
        ms(quantile(&s.all, 0.99)),
        ms(quantile(&s.all, 1.0)),
    );
    println!(
        "| baseline `GET {BASELINE}`, after each search ({}) | | | {} | {} | {} |",
        s.baseline.len(),
        ms(quantile(&s.baseline, 0.5)),
        ms(quantile(&s.baseline, 0.99)),
        ms(quantile(&s.baseline, 1.0)),
    );
    println!(
        "| every search, {clients} clients at once ({}, {:.0} req/s) | | | {} | {} | {} |",
        s.concurrent.len(),
        s.concurrent_rate,
        ms(quantile(&s.concurrent, 0.5)),
        ms(quantile(&s.concurrent, 0.99)),
        ms(quantile(&s.concurrent, 1.0)),
    );
    println!(
        "| baseline, {clients} clients at once ({}, {:.0} req/s) | | | {} | {} | {} |",
        s.concurrent_baseline.len(),
        s.concurrent_baseline_rate,
        ms(quantile(&s.concurrent_baseline, 0.5)),
        ms(quantile(&s.concurrent_baseline, 0.99)),
        ms(quantile(&s.concurrent_baseline, 1.0)),
    );
    let p99 = quantile(&s.all, 0.99);
    println!(
        "\nSearch p99, one at a time: {} ({:.1}× the baseline's {}); target ≤ {} ms: {}. \
         With {clients} clients: {}.",
        ms(p99),
        p99.as_secs_f64() / quantile(&s.baseline, 0.99).as_secs_f64(),
        ms(quantile(&s.baseline, 0.99)),
        SEARCH_TARGET.as_millis(),
        verdict(p99 <= SEARCH_TARGET),
        ms(quantile(&s.concurrent, 0.99)),
    );
    println!(
        "Memory (`mcp-fleet serve`, VmRSS after the same requests): {:.1} MiB with the catalog \
         (peak {:.1} MiB), {:.1} MiB with the same entries and no catalog ({:+.1} MiB).",
        s.rss_with,
        s.peak_with,
        s.rss_without,
        s.rss_with - s.rss_without
    );
}

// ---- Part 3: the sweep's cost of listing ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// No listing: a new worker's first sweep.
    Off,
    /// No listing: the same worker's second sweep.
    OffAgain,
    /// Every probe lists; the catalogs stored match, but this worker has not listed them yet
    /// (its first sweep after a restart).
    Refresh,
    /// Every probe lists; the listings match the ones this worker stored in its first sweep
    /// (a refresh, as at every `--catalog-refresh`): its second sweep.
    Unchanged,
    /// Every probe lists; nothing was stored (the listing at registration).
    First,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Off => "catalog off (first sweep)",
            Mode::OffAgain => "catalog off (second sweep)",
            Mode::Refresh => "every probe lists, stored catalogs unchanged, worker just started",
            Mode::Unchanged => {
                "every probe lists, unchanged since the worker stored it (a refresh)"
            }
            Mode::First => "every probe lists, first listing (every tool written)",
        }
    }

    /// What it is compared with: the catalog-off sweep of the same rank.
    fn baseline(self) -> Mode {
        match self {
            Mode::OffAgain | Mode::Unchanged => Mode::OffAgain,
            _ => Mode::Off,
        }
    }
}

struct Swept {
    round: usize,
    mode: Mode,
    /// To the last probe's result.
    sweep: Duration,
    /// To the last write (statuses, and listings when listed).
    written: Duration,
    /// CPU seconds of the registry side (the worker, its probes, SQLite): the process's, less
    /// the MCP servers' thread and the bench's own.
    cpu: f64,
    /// CPU seconds of the MCP servers' thread.
    fleet_cpu: f64,
    breakdown: Vec<(String, f64)>,
    listed: u64,
    failures: u64,
    /// Catalogs written as changed (`changed_at` = `fetched_at`).
    changed: i64,
}

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

/// This thread group's name as [`thread_cpu`] reports it.
fn own_thread_group() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .unwrap_or_default()
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
        .to_string()
}

async fn count(conn: &mut sqlx::SqliteConnection, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .expect("count")
}

/// `sql`'s count of rows written after `mark` (its one parameter).
async fn count_after(
    conn: &mut sqlx::SqliteConnection,
    sql: &'static str,
    mark: chrono::DateTime<Utc>,
) -> i64 {
    sqlx::query_scalar(sql)
        .bind(mark)
        .fetch_one(conn)
        .await
        .expect("count")
}

/// Where a sweep's measurement starts.
struct Mark {
    at: chrono::DateTime<Utc>,
    t0: Instant,
    threads: std::collections::BTreeMap<String, f64>,
    process: Option<Duration>,
    probes: u64,
    listed: u64,
    failures: u64,
}

impl Mark {
    fn now(health: &mcp_fleet_registry::HealthHandle) -> Self {
        let stats = health.stats();
        Self {
            at: Utc::now(),
            threads: thread_cpu(),
            process: process_cpu(),
            probes: stats.probes.load(Ordering::Relaxed),
            listed: stats.catalogs_listed.load(Ordering::Relaxed),
            failures: stats.probe_failures.load(Ordering::Relaxed),
            t0: Instant::now(),
        }
    }
}

/// Sweeps of the entries of `db_url` by one health worker listing as `mode` says: its first,
/// and for [`Mode::Off`] and [`Mode::Refresh`] its second ([`Mode::OffAgain`],
/// [`Mode::Unchanged`]), started with [`mcp_fleet_registry::HealthHandle::sweep_now`].
fn sweep_once(
    rt: &tokio::runtime::Runtime,
    db_url: &str,
    mode: Mode,
    entries: usize,
    round: usize,
) -> Vec<Swept> {
    use sqlx::Connection;
    let store = rt
        .block_on(mcp_fleet_store::connect(db_url))
        .expect("open the round's copy");
    let mut watch = rt
        .block_on(sqlx::SqliteConnection::connect(db_url))
        .expect("open the round's copy");
    let listing = (mode != Mode::Off).then_some(Duration::from_millis(1));
    let config = HealthConfig {
        timeout: PROBE_TIMEOUT,
        // Sweeps on demand only: the next scheduled one is an hour away.
        interval: Duration::from_secs(3600),
        catalog_refresh: listing,
        catalog_refresh_slow: None,
        ..HealthConfig::default()
    };
    let token = CancellationToken::new();
    let first = Mark::now_without_worker();
    let (health, task) = {
        let _in = rt.enter();
        mcp_fleet_registry::spawn_health_worker(store, config, token.clone()).expect("worker")
    };
    let n = entries as i64;
    let mut results = Vec::new();
    let again = match mode {
        Mode::Off => Some(Mode::OffAgain),
        Mode::Refresh => Some(Mode::Unchanged),
        _ => None,
    };
    let mut mark = first;
    for this in std::iter::once(mode).chain(again) {
        if this != mode {
            mark = Mark::now(&health);
            health.sweep_now();
        }
        let stats = health.stats();
        let sweep = loop {
            if stats.probes.load(Ordering::Relaxed) >= mark.probes + entries as u64 {
                break mark.t0.elapsed();
            }
            assert!(
                mark.t0.elapsed() < SWEEP_LIMIT,
                "the sweep did not finish within {SWEEP_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let written = loop {
            let statuses = rt.block_on(count_after(
                &mut watch,
                "SELECT count(*) FROM servers WHERE last_checked_at > ?",
                mark.at,
            ));
            let listings = match this {
                Mode::Off | Mode::OffAgain => n,
                Mode::Refresh | Mode::Unchanged => rt.block_on(count_after(
                    &mut watch,
                    "SELECT count(*) FROM catalogs WHERE fetched_at > ?",
                    mark.at,
                )),
                Mode::First => rt.block_on(count(&mut watch, "SELECT count(*) FROM catalogs")),
            };
            if statuses == n && listings == n {
                break mark.t0.elapsed();
            }
            assert!(
                mark.t0.elapsed() < SWEEP_LIMIT,
                "the sweep's results were not written within {SWEEP_LIMIT:?} \
                 ({statuses} statuses, {listings} listings of {entries})"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let breakdown = cpu_spent(&mark.threads, &thread_cpu());
        // The process's figure counts threads that ended too (a thread's own counts are gone
        // with it); the MCP servers' thread and this one live throughout.
        let total = process_cpu()
            .zip(mark.process)
            .map_or(f64::NAN, |(after, before)| (after - before).as_secs_f64());
        let own = own_thread_group();
        let group = |name: &str| -> f64 {
            breakdown
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, s)| s)
                .sum()
        };
        let fleet_cpu = group("fleet");
        let cpu = total - fleet_cpu - group(&own) - group("bench");
        let changed = rt.block_on(count(
            &mut watch,
            "SELECT count(*) FROM catalogs WHERE fetched_at = changed_at",
        ));
        results.push(Swept {
            round,
            mode: this,
            sweep,
            written,
            cpu,
            fleet_cpu,
            breakdown,
            listed: stats.catalogs_listed.load(Ordering::Relaxed) - mark.listed,
            failures: stats.probe_failures.load(Ordering::Relaxed) - mark.failures,
            changed,
        });
    }
    token.cancel();
    // The worker's runtime gone before the next round starts.
    let _ = rt.block_on(task);
    results
}

impl Mark {
    /// Before a worker runs: its counters are all zero.
    fn now_without_worker() -> Self {
        Self {
            at: Utc::now(),
            threads: thread_cpu(),
            process: process_cpu(),
            probes: 0,
            listed: 0,
            failures: 0,
            t0: Instant::now(),
        }
    }
}

fn sweeps(entries: usize, rounds: usize) -> Vec<Swept> {
    // `BENCH_CATALOG_SWEEP_MODES` (`off,refresh,first`) picks the workers run, e.g. `refresh`
    // alone to profile listing.
    let picked =
        std::env::var("BENCH_CATALOG_SWEEP_MODES").unwrap_or_else(|_| "off,refresh,first".into());
    let modes: Vec<Mode> = [
        ("off", Mode::Off),
        ("refresh", Mode::Refresh),
        ("first", Mode::First),
    ]
    .into_iter()
    .filter(|(name, _)| picked.split(',').any(|p| p.trim() == *name))
    .map(|(_, mode)| mode)
    .collect();
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    if nofile < 4096 {
        eprintln!("catalog: the open-file limit is {nofile}; the sweep needs a few thousand");
    }
    let stop = CancellationToken::new();
    // The MCP servers are other machines' work: one thread.
    let fleet = runtime("fleet", 1);
    let rt = runtime("bench", 1);
    let bases: Vec<String> = fleet.block_on(async {
        let mut bases = Vec::with_capacity(DOMAINS.len());
        for k in 0..DOMAINS.len() {
            let tools = Arc::new(tool_set(k));
            let server = EchoServer::new(tools, Arc::new(AtomicU64::new(0))).nodelay(true);
            bases.push(server.start(&stop).await);
        }
        bases
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let (bare, listed) = (url("bare.db"), url("listed.db"));
    let started = Instant::now();
    rt.block_on(async {
        let store = mcp_fleet_store::connect(&bare).await.expect("open");
        register(store.as_ref(), entries, |i| bases[i % bases.len()].clone()).await;
        vacuum_into(&bare, &dir.path().join("listed.db")).await;
        let store = mcp_fleet_store::connect(&listed).await.expect("open");
        // What each entry's server lists: entry i is served by server i % 30.
        put_catalogs(store.as_ref(), |i| tool_set(i % DOMAINS.len()), 1).await;
    });
    eprintln!(
        "catalog: sweep: {entries} entries registered and listed in {:.1?}",
        started.elapsed()
    );
    let mut results = Vec::new();
    for r in 0..rounds {
        for &mode in &modes {
            let template = if mode == Mode::Refresh {
                &listed
            } else {
                &bare
            };
            let path = dir.path().join(format!("round-{r}.db"));
            rt.block_on(vacuum_into(template, &path));
            for swept in sweep_once(&rt, &url(&format!("round-{r}.db")), mode, entries, r + 1) {
                eprintln!(
                    "catalog: sweep round {}, {:?}: {:.2?} to the last probe, {:.2?} to the last write, CPU {:.2} s",
                    r + 1,
                    swept.mode,
                    swept.sweep,
                    swept.written,
                    swept.cpu
                );
                results.push(swept);
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    stop.cancel();
    rt.shutdown_timeout(Duration::from_secs(2));
    fleet.shutdown_timeout(Duration::from_secs(2));
    results
}

async fn vacuum_into(from: &str, to: &std::path::Path) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(from)
        .await
        .expect("open the template");
    sqlx::query("VACUUM INTO ?")
        .bind(to.display().to_string())
        .execute(&mut conn)
        .await
        .expect("copy the template");
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn print_sweeps(results: &[Swept], entries: usize, rounds: usize) {
    println!(
        "\n### Sweep cost of listing: {entries} entries checked over MCP, 30 rmcp servers of 20 \
         tools on loopback, SQLite, worker in this process; {rounds} rounds, each way on a fresh \
         copy\n"
    );
    println!(
        "| round | mode | to last probe | to last write | registry CPU | MCP servers' CPU | listed | probes not healthy (over 1 s: degraded) | catalogs written as changed | CPU by thread |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for s in results {
        println!(
            "| {} | {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {} | {} | {} | {} |",
            s.round,
            s.mode.label(),
            s.sweep.as_secs_f64(),
            s.written.as_secs_f64(),
            s.cpu,
            s.fleet_cpu,
            s.listed,
            s.failures,
            s.changed,
            s.breakdown
                .iter()
                .map(|(n, c)| format!("{n} {c:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let med = |mode: Mode, f: &dyn Fn(&Swept) -> f64| {
        median(results.iter().filter(|s| s.mode == mode).map(f).collect())
    };
    let wall = |s: &Swept| s.written.as_secs_f64();
    let probe = |s: &Swept| s.sweep.as_secs_f64();
    let cpu = |s: &Swept| s.cpu;
    println!(
        "\n| sweep (medians; ratios against the catalog-off sweep of the same rank) | to last probe | ratio | to last write | ratio | registry CPU | ratio | CPU per probe |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let modes = [
        Mode::Off,
        Mode::OffAgain,
        Mode::Unchanged,
        Mode::Refresh,
        Mode::First,
    ];
    for mode in modes {
        let base = mode.baseline();
        let (p, w, c) = (med(mode, &probe), med(mode, &wall), med(mode, &cpu));
        println!(
            "| {} | {p:.2} s | {:.2}× | {w:.2} s | {:.2}× | {c:.2} s | {:.2}× | {:.0} µs |",
            mode.label(),
            p / med(base, &probe),
            w / med(base, &wall),
            c / med(base, &cpu),
            c * 1e6 / entries as f64,
        );
    }
    let ratio = |mode: Mode, f: &dyn Fn(&Swept) -> f64| med(mode, f) / med(mode.baseline(), f);
    let (wall_ratio, cpu_ratio) = (ratio(Mode::Unchanged, &wall), ratio(Mode::Unchanged, &cpu));
    let worse = cpu_ratio.max(wall_ratio);
    // Computed, not measured: the sweep at the defaults is the catalog-off sweep with one probe
    // in PROBES_PER_LISTING paying the measured extra of an unchanged listing.
    let at_defaults = |r: f64| 1.0 + (r - 1.0) / PROBES_PER_LISTING;
    println!(
        "\nEvery probe listing an unchanged catalog (a refresh) / none: {wall_ratio:.2}× wall \
         time, {cpu_ratio:.2}× registry CPU; target ≤ {SWEEP_TARGET}: {}.",
        verdict(worse <= SWEEP_TARGET),
    );
    println!(
        "At the defaults (catalog refresh 10 min, interval 30 s: one probe in \
         {PROBES_PER_LISTING:.0} lists; computed from the measured extra cost of a listing, \
         1 + (ratio − 1) / {PROBES_PER_LISTING:.0}): {:.3}× wall time, {:.3}× registry CPU, {}.",
        at_defaults(wall_ratio),
        at_defaults(cpu_ratio),
        verdict(at_defaults(worse) <= SWEEP_TARGET),
    );
    println!(
        "The first sweep after a restart (stored catalogs unchanged, every listing converted \
         and compared in the store) at the defaults: {:.3}× registry CPU.",
        at_defaults(ratio(Mode::Refresh, &cpu)),
    );
}

fn main() {
    let entries = env_or("BENCH_CATALOG_ENTRIES", 10_000_usize).max(1);
    let samples = env_or("BENCH_CATALOG_SEARCHES", 100_usize).max(1);
    let clients = env_or("BENCH_CATALOG_CONCURRENCY", 8_usize).max(1);
    let sweep_entries = env_or("BENCH_CATALOG_SWEEP_ENTRIES", 10_000_usize).max(1);
    let rounds = env_or("BENCH_CATALOG_SWEEP_ROUNDS", 3_usize).clamp(1, 20);
    let parts = std::env::var("BENCH_CATALOG_PARTS").unwrap_or_else(|_| "search,sweep".into());
    let binary = std::env::var("MCP_FLEET_BIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../target/release/mcp-fleet"
        )
        .to_string()
    });
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\n## catalog: {} tools of {entries} entries; {cores} cores, load average {load} at start",
        entries * TOOLS_PER_ENTRY
    );

    if parts.contains("search") {
        if !std::path::Path::new(&binary).exists() {
            println!(
                "\nSearch: skipped, no {binary} (build it with `cargo build --release -p \
                 mcp-fleet`, as scripts/bench does, or set MCP_FLEET_BIN)"
            );
        } else {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            let dir = tempfile::tempdir().expect("tempdir");
            // `BENCH_CATALOG_KEEP=DIR` keeps the SQLite database there, to look at its plans.
            let keep = std::env::var_os("BENCH_CATALOG_KEEP").map(std::path::PathBuf::from);
            let path = keep.as_deref().unwrap_or(dir.path()).join("catalog.db");
            let _ = std::fs::remove_file(&path);
            let sqlite = format!("sqlite://{}", path.display());
            let s = rt.block_on(search(
                "SQLite", &binary, &sqlite, entries, samples, clients,
            ));
            print_search(&s, entries, clients);
            match rt.block_on(mcp_fleet_test_support::postgres()) {
                Some(db) => {
                    let s = rt.block_on(search(
                        "PostgreSQL",
                        &binary,
                        &db.url,
                        entries,
                        samples,
                        clients,
                    ));
                    print_search(&s, entries, clients);
                }
                None => println!(
                    "\n### Search on PostgreSQL: skipped, MCP_FLEET_TEST_POSTGRES_URL is not set \
                     (`eval \"$(scripts/pg start)\"` sets it; scripts/bench does)"
                ),
            }
        }
    }
    if parts.contains("sweep") {
        let results = sweeps(sweep_entries, rounds);
        print_sweeps(&results, sweep_entries, rounds);
    }
}
