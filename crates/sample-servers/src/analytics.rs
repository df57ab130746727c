//! The `analytics` sample: running aggregates of named numeric events and tools to query them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rmcp::{
    Json, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    schemars, tool, tool_handler, tool_router,
};
use serde::{Deserialize, Serialize};

/// Events recorded when a router is built, so `top_events` has something to show.
const SEED_EVENTS: &[(&str, f64)] = &[
    ("page_view", 1.0),
    ("page_view", 1.0),
    ("page_view", 1.0),
    ("page_view", 1.0),
    ("checkout", 129.9),
    ("checkout", 49.0),
    ("search_latency_ms", 42.0),
    ("search_latency_ms", 17.5),
    ("search_latency_ms", 88.0),
];

/// Distinct event names kept; aggregates (not raw values) are stored, so memory stays bounded.
const MAX_EVENT_NAMES: usize = 1024;
/// Longest accepted event name, in bytes.
const MAX_NAME_BYTES: usize = 128;
/// Default and ceiling for `top_events`'s `limit`.
const DEFAULT_TOP_LIMIT: u32 = 5;
const MAX_TOP_LIMIT: u32 = 100;

/// Running aggregate of one event name.
#[derive(Debug, Clone, Copy)]
struct Aggregate {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Aggregate {
    fn first(value: f64) -> Self {
        Self {
            count: 1,
            sum: value,
            min: value,
            max: value,
        }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }
}

/// Aggregates shared by every MCP session of one router.
#[derive(Debug, Clone)]
pub(crate) struct Events(Arc<Mutex<BTreeMap<String, Aggregate>>>);

impl Events {
    /// A store holding [`SEED_EVENTS`].
    pub(crate) fn seeded() -> Self {
        let events = Self(Arc::new(Mutex::new(BTreeMap::new())));
        for (name, value) in SEED_EVENTS {
            // The seed is valid by construction; a failure here would only drop a demo event.
            let _ = events.record(name, *value);
        }
        events
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Aggregate>> {
        // Every critical section leaves the map consistent, so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, name: &str, value: f64) -> Result<Recorded, String> {
        let name = name.trim();
        if name.is_empty() {
            return Err("name must not be empty".to_owned());
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(format!("name must be at most {MAX_NAME_BYTES} bytes"));
        }
        if !value.is_finite() {
            return Err("value must be a finite number".to_owned());
        }
        let mut events = self.lock();
        let distinct = events.len();
        let count = match events.get_mut(name) {
            Some(aggregate) => {
                aggregate.add(value);
                aggregate.count
            }
            None if distinct >= MAX_EVENT_NAMES => {
                return Err(format!(
                    "too many distinct event names (limit {MAX_EVENT_NAMES}); record under an existing name"
                ));
            }
            None => {
                events.insert(name.to_owned(), Aggregate::first(value));
                1
            }
        };
        Ok(Recorded {
            name: name.to_owned(),
            count,
        })
    }

    fn summary(&self, name: &str) -> Result<Summary, String> {
        let name = name.trim();
        let a = *self
            .lock()
            .get(name)
            .ok_or_else(|| format!("no events recorded under name {name:?}"))?;
        Ok(Summary {
            name: name.to_owned(),
            count: a.count,
            sum: a.sum,
            // count is at least 1 for every stored aggregate.
            mean: a.sum / a.count as f64,
            min: a.min,
            max: a.max,
        })
    }

    /// Names by descending count, ties by name.
    fn top(&self, limit: u32) -> TopEvents {
        let mut events: Vec<EventCount> = self
            .lock()
            .iter()
            .map(|(name, a)| EventCount {
                name: name.clone(),
                count: a.count,
                sum: a.sum,
            })
            .collect();
        events.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        events.truncate(usize::try_from(limit.min(MAX_TOP_LIMIT)).unwrap_or(usize::MAX));
        TopEvents { events }
    }
}

/// Arguments of `record_event`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct RecordParams {
    /// Event name, e.g. "checkout" (1-128 bytes).
    name: String,
    /// The event's numeric value (finite).
    value: f64,
}

/// Arguments naming one event.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct NameParams {
    /// Event name, e.g. "checkout".
    name: String,
}

/// Arguments of `top_events`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct TopParams {
    /// Maximum number of event names to return (default 5, at most 100).
    #[serde(default)]
    limit: Option<u32>,
}

/// Result of `record_event`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct Recorded {
    /// The event name recorded under.
    name: String,
    /// Events recorded under that name so far, this one included.
    count: u64,
}

/// Result of `summary`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct Summary {
    /// The event name.
    name: String,
    /// Number of events.
    count: u64,
    /// Sum of their values.
    sum: f64,
    /// Arithmetic mean of their values.
    mean: f64,
    /// Smallest value.
    min: f64,
    /// Largest value.
    max: f64,
}

/// One row of `top_events`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct EventCount {
    /// The event name.
    name: String,
    /// Number of events.
    count: u64,
    /// Sum of their values.
    sum: f64,
}

/// Result of `top_events`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct TopEvents {
    /// Event names, most frequent first.
    events: Vec<EventCount>,
}

/// The `analytics` MCP server; clones share one [`Events`] store.
#[derive(Debug, Clone)]
pub(crate) struct AnalyticsServer {
    events: Events,
    tool_router: ToolRouter<Self>,
}

impl AnalyticsServer {
    pub(crate) fn new(events: Events) -> Self {
        Self {
            events,
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl AnalyticsServer {
    #[tool(
        description = "Record one numeric event under a name.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false
        )
    )]
    fn record_event(
        &self,
        Parameters(RecordParams { name, value }): Parameters<RecordParams>,
    ) -> Result<Json<Recorded>, String> {
        self.events.record(&name, value).map(Json)
    }

    #[tool(
        description = "Count, sum, mean, min and max of the values recorded under a name.",
        annotations(read_only_hint = true)
    )]
    fn summary(
        &self,
        Parameters(NameParams { name }): Parameters<NameParams>,
    ) -> Result<Json<Summary>, String> {
        self.events.summary(&name).map(Json)
    }

    #[tool(
        description = "Event names with the most recorded events (default 5).",
        annotations(read_only_hint = true)
    )]
    fn top_events(
        &self,
        Parameters(TopParams { limit }): Parameters<TopParams>,
    ) -> Json<TopEvents> {
        Json(self.events.top(limit.unwrap_or(DEFAULT_TOP_LIMIT)))
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "analytics",
    version = "1.0.0",
    instructions = "Numeric event analytics. record_event adds a value; summary and top_events report."
)]
impl ServerHandler for AnalyticsServer {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_aggregates_recorded_values() {
        let events = Events::seeded();
        for v in [2.0, -1.0, 5.0] {
            assert!(events.record("t", v).is_ok());
        }
        let s = events.summary("t").map_err(|e| e.clone());
        let s = s.as_ref().map(|s| (s.count, s.sum, s.mean, s.min, s.max));
        assert_eq!(s, Ok((3, 6.0, 2.0, -1.0, 5.0)));
    }

    #[test]
    fn bad_events_are_rejected() {
        let events = Events::seeded();
        // (name, value, error fragment)
        let cases = [
            ("  ", 1.0, "must not be empty"),
            ("x", f64::NAN, "finite"),
            ("x", f64::INFINITY, "finite"),
            (&*"n".repeat(MAX_NAME_BYTES + 1), 1.0, "at most"),
        ];
        for (name, value, fragment) in cases {
            match events.record(name, value) {
                Err(e) => assert!(e.contains(fragment), "{e}"),
                Ok(r) => panic!("{name:?} {value}: accepted as {r:?}"),
            }
        }
        assert!(events.summary("missing").is_err());
    }

    #[test]
    fn top_orders_by_count_then_name() {
        let top = Events::seeded().top(2);
        let names: Vec<&str> = top.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["page_view", "search_latency_ms"]);
    }
}
