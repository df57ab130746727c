//! `GET /metrics` end to end: the exposition parses under a strict OpenMetrics text parser, and
//! the counters move as requests are answered, probes run and transitions reach a webhook.
//!
//! Over 500 lines: three tests and the strict OpenMetrics text parser they check the exposition
//! with.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use mcp_fleet_registry::HealthConfig;
use mcp_fleet_test_support::{eventually, sqlite};
use tokio_util::sync::CancellationToken;

use crate::common::{
    TestRegistry, fast_health, live_server, refused_url, seed_body_at, start_checked,
};

// ---- a strict parser of the OpenMetrics text format (the subset a client library emits) ----

/// A metric family's metadata.
#[derive(Debug, Clone, PartialEq)]
struct Family {
    /// `unknown` until a `# TYPE` line says otherwise.
    kind: String,
    typed: bool,
    help: Option<String>,
    unit: Option<String>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
struct Scrape {
    families: HashMap<String, Family>,
    samples: Vec<Sample>,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// `{a="x",b="y\"z"}` → labels; rejects bad names, unknown escapes and duplicates.
fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\"…\": {rest:?}"))?;
        if !valid_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in {s:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in {s:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("duplicate label {name:?}"));
        }
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
            if rest.is_empty() {
                return Err("trailing comma in labels".into());
            }
        } else if !rest.is_empty() {
            return Err(format!("junk after label value: {rest:?}"));
        }
    }
    Ok(labels)
}

/// The family a sample belongs to, given the suffixes its type allows.
fn family_of<'a>(name: &'a str, families: &HashMap<String, Family>) -> Option<(&'a str, &'a str)> {
    const SUFFIXES: [&str; 6] = ["_total", "_created", "_bucket", "_sum", "_count", "_info"];
    if families.contains_key(name) {
        return Some((name, ""));
    }
    SUFFIXES.iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        families.contains_key(base).then_some((base, *suffix))
    })
}

fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    let mut lines = text.split('\n').collect::<Vec<_>>();
    if lines.pop() != Some("") {
        return Err("the exposition must end with a newline".into());
    }
    if lines.pop() != Some("# EOF") {
        return Err("the exposition must end with # EOF".into());
    }
    let mut seen_samples_of: Vec<String> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (keyword, name, rest) = (parts.next(), parts.next(), parts.next());
            let (Some(keyword), Some(name), Some(rest)) = (keyword, name, rest) else {
                return Err(err("incomplete metadata line".into()));
            };
            if !valid_name(name) {
                return Err(err(format!("bad metric name {name:?}")));
            }
            if seen_samples_of.iter().any(|f| f == name) {
                return Err(err("metadata after the family's samples".into()));
            }
            let family = scrape
                .families
                .entry(name.to_owned())
                .or_insert_with(|| Family {
                    kind: "unknown".into(),
                    typed: false,
                    help: None,
                    unit: None,
                });
            match keyword {
                "TYPE" => {
                    let kinds = [
                        "counter",
                        "gauge",
                        "histogram",
                        "gaugehistogram",
                        "summary",
                        "info",
                        "stateset",
                        "unknown",
                    ];
                    if !kinds.contains(&rest) {
                        return Err(err(format!("unknown type {rest:?}")));
                    }
                    if family.typed {
                        return Err(err("TYPE given twice".into()));
                    }
                    family.kind = rest.to_owned();
                    family.typed = true;
                }
                "HELP" => {
                    if family.help.replace(rest.to_owned()).is_some() {
                        return Err(err("HELP given twice".into()));
                    }
                }
                "UNIT" => {
                    if !name.ends_with(&format!("_{rest}")) {
                        return Err(err(format!("a family with unit {rest} must end _{rest}")));
                    }
                    if family.unit.replace(rest.to_owned()).is_some() {
                        return Err(err("UNIT given twice".into()));
                    }
                }
                other => return Err(err(format!("unknown metadata {other:?}"))),
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(err("stray comment or empty line".into()));
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| err("sample without a value".into()))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .ok_or_else(|| err("unclosed labels".into()))?;
                (name, parse_labels(labels).map_err(err)?)
            }
            None => (series, BTreeMap::new()),
        };
        let (family, suffix) = family_of(name, &scrape.families)
            .ok_or_else(|| err(format!("sample {name:?} of no declared family")))?;
        let kind = scrape.families[family].kind.as_str();
        let allowed: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "gauge" | "unknown" => &[""],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "info" => &["_info"],
            _ => &["", "_sum", "_count", "_created"],
        };
        if !allowed.contains(&suffix) {
            return Err(err(format!(
                "{kind} {family} cannot have a {name:?} sample"
            )));
        }
        if suffix == "_bucket" && !labels.contains_key("le") {
            return Err(err("bucket without le".into()));
        }
        let value = parse_value(value).map_err(err)?;
        if kind == "counter" && value < 0.0 {
            return Err(err("negative counter".into()));
        }
        if seen_samples_of.last().map(String::as_str) != Some(family) {
            if seen_samples_of.iter().any(|f| f == family) {
                return Err(err("a family's samples must be together".into()));
            }
            seen_samples_of.push(family.to_owned());
        }
        scrape.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&scrape)?;
    Ok(scrape)
}

/// Buckets ascend, their counts never fall, and `+Inf` equals `_count`.
fn check_histograms(scrape: &Scrape) -> Result<(), String> {
    for (family, f) in &scrape.families {
        if f.kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in scrape
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut key = s.labels.clone();
            let le = parse_value(&key.remove("le").unwrap_or_default())?;
            series.entry(key).or_default().push((le, s.value));
        }
        for (labels, buckets) in series {
            if buckets
                .windows(2)
                .any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1)
            {
                return Err(format!(
                    "{family}{labels:?}: buckets out of order: {buckets:?}"
                ));
            }
            let last = buckets.last().copied().unwrap_or_default();
            let count = scrape.value(&format!("{family}_count"), &labels);
            if last.0 != f64::INFINITY || Some(last.1) != count {
                return Err(format!(
                    "{family}{labels:?}: the +Inf bucket ({last:?}) is not _count ({count:?})"
                ));
            }
        }
    }
    Ok(())
}

impl Scrape {
    /// The value of the sample `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
            .map(|s| s.value)
    }

    /// The value of `name` with these labels (`0` when the series does not exist yet).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.value(name, &labels).unwrap_or(0.0)
    }
}

#[test]
fn the_parser_rejects_what_prometheus_would() {
    let good = "# TYPE a_total counter\n# HELP a_total x\n";
    let ok = "# TYPE x counter\nx_total 1\n# TYPE h_seconds histogram\n# UNIT h_seconds seconds\n\
              h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\nh_seconds_sum 3\n\
              h_seconds_count 2\n# EOF\n";
    assert!(parse(ok).is_ok(), "{:?}", parse(ok));
    let bad = [
        ("no EOF", "# TYPE x counter\nx_total 1\n".to_owned()),
        ("no type", "x 1\n# EOF\n".to_owned()),
        (
            "counter suffix",
            "# TYPE x counter\nx 1\n# EOF\n".to_owned(),
        ),
        (
            "bad labels",
            "# TYPE x gauge\nx{a=\"1\",} 1\n# EOF\n".to_owned(),
        ),
        (
            "bad escape",
            "# TYPE x gauge\nx{a=\"\\q\"} 1\n# EOF\n".to_owned(),
        ),
        (
            "duplicate label",
            "# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n# EOF\n".to_owned(),
        ),
        ("value", "# TYPE x gauge\nx one\n# EOF\n".to_owned()),
        (
            "unit name",
            "# TYPE x gauge\n# UNIT x seconds\n# EOF\n".to_owned(),
        ),
        ("twice", format!("{good}{good}# EOF\n")),
        (
            "+Inf is not count",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n# EOF\n".to_owned(),
        ),
        (
            "falling buckets",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n# EOF\n"
                .to_owned(),
        ),
    ];
    for (why, text) in bad {
        assert!(parse(&text).is_err(), "accepted ({why}): {text}");
    }
}

// ---- the registry's metrics ------------------------------------------------------------------

async fn scrape(reg: &TestRegistry) -> Scrape {
    let res = reg
        .http
        .get(format!("{}/metrics", reg.url))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200);
    let content_type = res.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .expect("content type")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = res.text().await.expect("body");
    let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    for (name, family) in &parsed.families {
        assert!(name.starts_with("mcp_fleet_"), "{name}");
        assert!(family.help.is_some(), "{name} has no HELP");
    }
    parsed
}

/// A webhook receiver on 127.0.0.1:0 counting calls, until `shutdown`.
async fn hook(shutdown: CancellationToken) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            async { "ok" }
        }),
    );
    let url = format!(
        "{}/hook",
        mcp_fleet_test_support::serve(app, shutdown).await
    );
    (url, calls)
}

#[tokio::test]
async fn metrics_parse_and_move_with_requests_and_probes() {
    let stop = CancellationToken::new();
    let (hook_url, hook_calls) = hook(stop.clone()).await;
    let reg = start_checked(
        sqlite(),
        HealthConfig {
            rise: 1,
            fall: 1,
            webhooks: vec![hook_url.parse().expect("url")],
            replica_id: Some("only-one".into()),
            ..fast_health()
        },
    )
    .await;
    let before = scrape(&reg).await;
    assert_eq!(before.get("mcp_fleet_database_up", &[]), 1.0);
    assert_eq!(before.get("mcp_fleet_probes_total", &[]), 0.0);
    for status in ["healthy", "degraded", "down", "unknown"] {
        assert_eq!(
            before.get("mcp_fleet_entries", &[("status", status)]),
            0.0,
            "{status}"
        );
    }
    let pool_max = before.get("mcp_fleet_db_pool_max_connections", &[]);
    assert!(pool_max >= 1.0, "pool max {pool_max}");
    let pool_open = before.get("mcp_fleet_db_pool_connections", &[("state", "idle")])
        + before.get("mcp_fleet_db_pool_connections", &[("state", "in_use")]);
    assert!(pool_open >= 1.0 && pool_open <= pool_max, "{pool_open}");
    assert_eq!(before.families["mcp_fleet_feed_subscribers"].kind, "gauge");

    // A live server and one that refuses connections: probes pass and fail.
    let live = live_server(stop.clone()).await;
    let (status, _) = reg.post(&seed_body_at(&live, "alive", &["a"])).await;
    assert_eq!(status, 201);
    let (status, _) = reg
        .post(&seed_body_at(&refused_url(), "gone", &["a"]))
        .await;
    assert_eq!(status, 201);
    for _ in 0..3 {
        assert_eq!(reg.get("/servers?status=any").await.0, 200);
    }
    assert_eq!(reg.get("/servers/alive").await.0, 200);
    assert_eq!(reg.get("/servers/nobody").await.0, 404);
    assert_eq!(reg.get("/no/such/route").await.0, 404);

    let after = eventually(
        Duration::from_secs(15),
        "probes, transitions and webhook deliveries in /metrics",
        || async {
            let m = scrape(&reg).await;
            let settled = m.get("mcp_fleet_entries", &[("status", "healthy")]) == 1.0
                && m.get("mcp_fleet_entries", &[("status", "down")]) == 1.0
                && m.get("mcp_fleet_webhook_deliveries_total", &[]) >= 2.0;
            settled.then_some(m)
        },
    )
    .await;

    let requests = |m: &Scrape, route: &str, method: &str, status: &str| {
        m.get(
            "mcp_fleet_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    let moved = |route, method, status| {
        requests(&after, route, method, status) - requests(&before, route, method, status)
    };
    assert_eq!(moved("/servers", "POST", "201"), 2.0);
    assert_eq!(moved("/servers", "GET", "200"), 3.0);
    assert_eq!(moved("/servers/{id}", "GET", "200"), 1.0);
    assert_eq!(moved("/servers/{id}", "GET", "404"), 1.0);
    // Unknown paths share one series: raw paths never become labels.
    assert_eq!(moved("unmatched", "GET", "404"), 1.0);
    assert!(
        after
            .samples
            .iter()
            .all(|s| s.labels.get("route").is_none_or(|r| !r.contains("nobody"))),
        "a raw path became a label"
    );
    assert!(moved("/metrics", "GET", "200") >= 1.0);
    let timed = |m: &Scrape| {
        m.get(
            "mcp_fleet_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/servers")],
        )
    };
    assert_eq!(timed(&after) - timed(&before), 3.0);

    let duration = &after.families["mcp_fleet_http_request_duration_seconds"];
    assert_eq!(duration.kind, "histogram");
    assert_eq!(duration.unit.as_deref(), Some("seconds"));
    assert_eq!(
        after.families["mcp_fleet_probe_duration_seconds"].kind,
        "histogram"
    );

    let probes = after.get("mcp_fleet_probes_total", &[]);
    let failures = after.get("mcp_fleet_probe_failures_total", &[]);
    assert!(probes >= 2.0, "{probes}");
    assert!(
        failures >= 1.0 && failures < probes,
        "{failures} of {probes}"
    );
    let timed_probes = after.get("mcp_fleet_probe_duration_seconds_count", &[]);
    assert!(timed_probes >= probes, "{timed_probes} < {probes}");
    assert!(after.get("mcp_fleet_status_transitions_total", &[("to", "healthy")]) >= 1.0);
    assert!(after.get("mcp_fleet_status_transitions_total", &[("to", "down")]) >= 1.0);
    assert_eq!(
        after.get("mcp_fleet_webhook_deliveries_total", &[]),
        hook_calls.load(Ordering::Relaxed) as f64
    );
    assert_eq!(after.get("mcp_fleet_ttl_expiry_suspended", &[]), 0.0);
    // One replica on SQLite: it holds every shard of the health work.
    assert_eq!(
        after.get("mcp_fleet_replica_info", &[("replica", "only-one")]),
        1.0
    );
    assert_eq!(after.get("mcp_fleet_replica_leases_held", &[]), 64.0);
    assert_eq!(after.get("mcp_fleet_replica_replicas", &[]), 1.0);
    mcp_fleet_test_support::poll("the replica to count both entries its own", || async {
        let now = scrape(&reg).await;
        (now.get("mcp_fleet_replica_entries_owned", &[]) == 2.0).then_some(())
    })
    .await;
    assert_eq!(after.get("mcp_fleet_replica_takeovers_total", &[]), 0.0);

    // An open change-feed stream is a subscriber until it closes.
    let stream = reg
        .http
        .get(format!("{}/events", reg.url))
        .send()
        .await
        .expect("GET /events");
    assert_eq!(stream.status(), 200);
    assert_eq!(
        scrape(&reg).await.get("mcp_fleet_feed_subscribers", &[]),
        1.0
    );
    drop(stream);
    eventually(
        Duration::from_secs(5),
        "the subscriber to be gone",
        || async {
            (scrape(&reg).await.get("mcp_fleet_feed_subscribers", &[]) == 0.0).then_some(())
        },
    )
    .await;

    // Later scrapes never see a counter go back.
    let later = scrape(&reg).await;
    for s in after.samples.iter().filter(|s| s.name.ends_with("_total")) {
        let now = later.value(&s.name, &s.labels).unwrap_or(0.0);
        assert!(
            now >= s.value,
            "{} {:?} fell from {} to {now}",
            s.name,
            s.labels,
            s.value
        );
    }
    stop.cancel();
}

#[tokio::test]
async fn without_a_health_worker_there_are_no_probe_metrics() {
    let reg = crate::common::start_sqlite().await;
    let m = scrape(&reg).await;
    assert!(
        !m.families.contains_key("mcp_fleet_probes"),
        "{:?}",
        m.families.keys()
    );
    assert_eq!(m.get("mcp_fleet_database_up", &[]), 1.0);
    // An unknown method on a known route is counted under that route.
    let res = reg
        .http
        .patch(format!("{}/status", reg.url))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(res.status(), 405);
    let m = scrape(&reg).await;
    assert_eq!(
        m.get(
            "mcp_fleet_http_requests_total",
            &[("method", "PATCH"), ("route", "/status"), ("status", "405")]
        ),
        1.0
    );
}
