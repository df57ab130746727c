//! The gateway's Prometheus metrics (`GET /metrics`), named `mcp_fleet_gateway_*`: calls,
//! errors and latency per upstream and version, ejections, rollbacks, sessions, withheld tools.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// What `GET /metrics` answers with.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Call latency buckets, in seconds: loopback calls up to the call timeout.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    pub(crate) service: String,
    pub(crate) version: String,
    pub(crate) upstream: String,
    pub(crate) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VersionLabels {
    pub(crate) service: String,
    pub(crate) version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpstreamLabels {
    pub(crate) service: String,
    pub(crate) upstream: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The gateway's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) calls: Family<CallLabels, Counter>,
    pub(crate) durations: HistogramFamily<VersionLabels>,
    pub(crate) ejections: Family<UpstreamLabels, Counter>,
    pub(crate) rollbacks: Family<VersionLabels, Counter>,
    pub(crate) sessions: Gauge,
    pub(crate) sessions_taken_up: Counter,
    pub(crate) fast_calls: Counter,
    pub(crate) list_changed: Counter,
    pub(crate) tools_withheld: Gauge,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_fleet_gateway");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Tool calls forwarded (each attempt), by service, version, upstream and outcome (ok, tool_error, error; unreachable: no connection, nothing sent)",
            calls.clone(),
        );
        let durations: HistogramFamily<VersionLabels> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register_with_unit(
            "call_duration",
            "Time of forwarded tool calls, upstream included, by service and version",
            Unit::Seconds,
            durations.clone(),
        );
        let ejections = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "ejections",
            "Outlier ejections, by service and upstream",
            ejections.clone(),
        );
        let rollbacks = Family::<VersionLabels, Counter>::default();
        registry.register(
            "rollbacks",
            "Automatic canary rollbacks, by service and rolled-back version",
            rollbacks.clone(),
        );
        let sessions = Gauge::default();
        registry.register("sessions", "Open MCP sessions", sessions.clone());
        let sessions_taken_up = Counter::default();
        registry.register(
            "sessions_taken_up",
            "Sessions opened by another replica (or before a restart) taken up from their id",
            sessions_taken_up.clone(),
        );
        let fast_calls = Counter::default();
        registry.register(
            "fast_calls",
            "Tool calls answered in front of rmcp's session machinery (the hot path)",
            fast_calls.clone(),
        );
        let list_changed = Counter::default();
        registry.register(
            "tool_list_changes",
            "Catalog changes announced to clients with notifications/tools/list_changed",
            list_changed.clone(),
        );
        let tools_withheld = Gauge::default();
        registry.register(
            "tools_withheld",
            "Upstream tools withheld because their definition differs from the one the registry trusts (--pin-tool-hashes), counted per instance",
            tools_withheld.clone(),
        );
        Self {
            registry,
            calls,
            durations,
            ejections,
            rollbacks,
            sessions,
            sessions_taken_up,
            fast_calls,
            list_changed,
            tools_withheld,
        }
    }

    /// The OpenMetrics text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
