//! Prometheus metrics, all named `mcp_fleet_*`: what the HTTP middleware counts as requests are
//! answered, and what is read at scrape time (entries by status, the health worker's and the
//! webhooks' counters, the database pool). Rendered in the OpenMetrics text format, which
//! Prometheus scrapes natively.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use mcp_fleet_model::HealthStatus;
use mcp_fleet_store::PoolStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::health::HealthStats;
use crate::health::alerts::AlertStats;

/// What `GET /metrics` answers with.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric's name starts with this (and `_`).
const PREFIX: &str = "mcp_fleet";

/// Request latency buckets, in seconds: sub-millisecond cache hits up to slow database writes.
const HTTP_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Probe latency buckets, in seconds: loopback answers up to the probe timeout.
pub(crate) const PROBE_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Labels of `mcp_fleet_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    /// The route's pattern (`/servers/{id}`), never the raw path: one series per route.
    route: String,
    status: u16,
}

/// Labels of `mcp_fleet_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToLabel {
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabel {
    replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The route label of requests that matched no route (404s for unknown paths).
pub(crate) const UNMATCHED: &str = "unmatched";

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The registry's long-lived metrics; one per [`AppState`](crate::AppState).
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily<RouteLabels>,
    /// Open change-feed (`GET /events`) subscribers: increment when a stream starts and
    /// decrement when it ends, most simply by holding a [`Metrics::feed_subscriber`] guard in
    /// the stream.
    pub(crate) feed_subscribers: Gauge,
    /// Requests received and not yet answered (shutdown waits for them).
    requests_in_flight: Gauge,
    /// Registry tokens looked up in the database (refused ones are remembered a while).
    pub(crate) token_lookups: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one (change-feed subscriber, request in flight) on a gauge for as long as it is held.
#[derive(Debug)]
pub(crate) struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status code",
            requests.clone(),
        );
        let durations: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response headers, by method and route pattern",
            Unit::Seconds,
            durations.clone(),
        );
        let feed_subscribers = Gauge::default();
        registry.register(
            "feed_subscribers",
            "Open change-feed (GET /events) streams",
            feed_subscribers.clone(),
        );
        let requests_in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests received and not yet answered",
            requests_in_flight.clone(),
        );
        let token_lookups = Counter::default();
        registry.register(
            "token_lookups",
            "Registry tokens looked up in the database to verify them",
            token_lookups.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            feed_subscribers,
            requests_in_flight,
            token_lookups,
        }
    }

    /// Counts one answered request. `route` is the matched route pattern, `None` when no route
    /// matched.
    pub(crate) fn observe_http(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        latency: Duration,
    ) {
        let method = method_label(method);
        let route = route.unwrap_or(UNMATCHED).to_owned();
        self.durations
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(latency.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: status.as_u16(),
            })
            .inc();
    }

    /// A guard that counts a change-feed subscriber until it is dropped.
    pub(crate) fn feed_subscriber(&self) -> GaugeGuard {
        self.feed_subscribers.inc();
        GaugeGuard(self.feed_subscribers.clone())
    }

    /// A guard that counts a request in flight until it is dropped (also when the client gives
    /// up midway).
    pub(crate) fn request_in_flight(&self) -> GaugeGuard {
        self.requests_in_flight.inc();
        GaugeGuard(self.requests_in_flight.clone())
    }

    /// The whole exposition: these metrics, then `snapshot`'s, then `# EOF`.
    pub(crate) fn render(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &snapshot.registry())?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// Bounded label values: a method outside the usual set is `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// State read at scrape time; each part is absent when this process does not have it.
#[derive(Debug, Default)]
pub(crate) struct Snapshot<'a> {
    /// Entries by status, when the database answered.
    pub(crate) entries: Option<[(HealthStatus, usize); 4]>,
    /// The in-process health worker's counters.
    pub(crate) health: Option<&'a HealthStats>,
    /// Its webhooks' counters.
    pub(crate) alerts: Option<AlertStats>,
    /// The database pool's occupancy.
    pub(crate) pool: Option<PoolStats>,
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

impl Snapshot<'_> {
    /// A registry of this moment's values, to be rendered once.
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix(PREFIX);
        gauge(
            &mut r,
            "database_up",
            "Whether the database answered this scrape (1) or not (0)",
            i64::from(self.entries.is_some()),
        );
        if let Some(entries) = &self.entries {
            let family = Family::<StatusLabel, Gauge>::default();
            for (status, n) in entries {
                family
                    .get_or_create(&StatusLabel {
                        status: status.as_str(),
                    })
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
            }
            r.register("entries", "Registry entries by health status", family);
        }
        if let Some(h) = self.health {
            counter(
                &mut r,
                "probes",
                "Health probes finished",
                h.probes.load(Ordering::Relaxed),
            );
            counter(
                &mut r,
                "probe_failures",
                "Health probes whose outcome was not healthy (degraded or down)",
                h.probe_failures.load(Ordering::Relaxed),
            );
            r.register_with_unit(
                "probe_duration",
                "Time a health probe took",
                Unit::Seconds,
                h.probe_seconds.clone(),
            );
            let transitions = Family::<ToLabel, Counter>::default();
            for status in HealthStatus::ALL {
                transitions
                    .get_or_create(&ToLabel {
                        to: status.as_str(),
                    })
                    .inc_by(h.transitions_to(status));
            }
            r.register(
                "status_transitions",
                "Entry status transitions, by the status entered",
                transitions,
            );
            counter(
                &mut r,
                "deregistrations",
                "Entries removed after staying down longer than --deregister-after",
                h.deregistered.load(Ordering::Relaxed),
            );
            gauge(
                &mut r,
                "ttl_expiry_suspended",
                "Whether the expiry guard has suspended TTL expiry (1) or not (0)",
                i64::from(h.expiry_suspended.load(Ordering::Relaxed)),
            );
            replica_metrics(&mut r, h);
        }
        if let Some(a) = &self.alerts {
            counter(
                &mut r,
                "webhook_deliveries",
                "Transition events a webhook accepted with a 2xx (one per event per webhook)",
                a.delivered,
            );
            counter(
                &mut r,
                "webhook_delivery_failures",
                "Webhook delivery attempts that did not end in a 2xx (retried, or rejected)",
                a.failed_attempts,
            );
            counter(
                &mut r,
                "webhook_dropped",
                "Transition events never sent to a webhook because its queue was full",
                a.dropped,
            );
        }
        if let Some(p) = self.pool {
            let family = Family::<StateLabel, Gauge>::default();
            let idle = p.idle.min(p.size);
            family
                .get_or_create(&StateLabel { state: "idle" })
                .set(i64::from(idle));
            family
                .get_or_create(&StateLabel { state: "in_use" })
                .set(i64::from(p.size - idle));
            r.register(
                "db_pool_connections",
                "Open database connections, idle or in use",
                family,
            );
            gauge(
                &mut r,
                "db_pool_max_connections",
                "Most connections the database pool opens",
                i64::from(p.max),
            );
        }
        r
    }
}

/// The health work this replica does among the others on the database (`mcp_fleet_replica_*`).
fn replica_metrics(r: &mut Registry, h: &HealthStats) {
    let load = |n: &std::sync::atomic::AtomicU64| i64::try_from(n.load(Ordering::Relaxed));
    let info = Family::<ReplicaLabel, Gauge>::default();
    info.get_or_create(&ReplicaLabel {
        replica: h.replica.get().cloned().unwrap_or_default(),
    })
    .set(1);
    r.register(
        "replica_info",
        "This replica's id in the health leases (the value is always 1)",
        info,
    );
    gauge(
        r,
        "replica_leases_held",
        "Health-work shards this replica holds a lease on (of 64)",
        load(&h.leases_held).unwrap_or(i64::MAX),
    );
    gauge(
        r,
        "replica_replicas",
        "Replicas sharing the health work, this one included",
        load(&h.replicas).unwrap_or(i64::MAX),
    );
    gauge(
        r,
        "replica_entries_owned",
        "Entries in the shards this replica holds: the ones it probes",
        load(&h.entries_owned).unwrap_or(i64::MAX),
    );
    counter(
        r,
        "replica_takeovers",
        "Entries this replica took over from replicas whose leases expired",
        h.takeovers.load(Ordering::Relaxed),
    );
    counter(
        r,
        "catalogs_listed",
        "Catalogs (tools, prompts, resources) this replica's probes listed",
        h.catalogs_listed.load(Ordering::Relaxed),
    );
    counter(
        r,
        "tools_changed",
        "Tools this replica found changed under an unchanged version (tool-changed events)",
        h.tools_changed.load(Ordering::Relaxed),
    );
}

/// Checks that a rendering is what Prometheus expects at its edges; the full parse is in the
/// integration tests.
#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn renders_openmetrics_with_units_and_eof() {
        let m = Metrics::new();
        m.observe_http(
            &Method::GET,
            Some("/servers/{id}"),
            StatusCode::OK,
            Duration::from_millis(3),
        );
        m.observe_http(
            &Method::from_bytes(b"BREW").expect("method"),
            None,
            StatusCode::NOT_FOUND,
            Duration::from_millis(1),
        );
        let text = m.render(&Snapshot::default()).expect("render");
        let mut want = String::new();
        let _ = writeln!(
            want,
            "mcp_fleet_http_requests_total{{method=\"GET\",route=\"/servers/{{id}}\",status=\"200\"}} 1"
        );
        assert!(text.contains(&want), "{text}");
        assert!(
            text.contains("mcp_fleet_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(text.contains("# UNIT mcp_fleet_http_request_duration_seconds seconds"));
        assert!(text.contains("mcp_fleet_database_up 0"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn subscriber_guards_count_while_held() {
        let m = Metrics::new();
        let a = m.feed_subscriber();
        let b = m.feed_subscriber();
        assert_eq!(m.feed_subscribers.get(), 2);
        drop(a);
        drop(b);
        assert_eq!(m.feed_subscribers.get(), 0);
    }
}
