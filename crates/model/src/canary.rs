//! Canary counts shared across gateway replicas: what a replica reports of its calls per version
//! and window slot (`POST /services/{service}/routing/observations`), and the cluster-wide
//! totals the registry answers with. Pure: parsing and checking, no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{FieldError, ValidationErrors};
use crate::ids::{ServerId, Version};
use crate::time::Timestamp;

/// Slots a rollback window is cut into: it slides by a sixtieth of its length.
pub const WINDOW_SLOTS: u64 = 60;
/// Longest replica id, in characters.
pub const MAX_REPLICA_CHARS: usize = 128;
/// Most versions one report may carry.
pub const MAX_OBSERVED_VERSIONS: usize = 32;
/// Most slots one report may carry, all versions together.
pub const MAX_OBSERVED_SLOTS: usize = 1_000;
/// Most calls one slot may count.
pub const MAX_SLOT_CALLS: u64 = 1_000_000_000;
/// Longest slot, in milliseconds: that of the longest window (1 h).
pub const MAX_SLOT_MS: u64 = 60_000;

/// The slot length, in milliseconds, of a rollback window of `window`: a sixtieth of it, in
/// whole milliseconds, so that every replica cuts wall-clock time at the same instants.
pub fn slot_ms(window: Duration) -> u64 {
    (u64::try_from(window.as_millis()).unwrap_or(u64::MAX) / WINDOW_SLOTS).clamp(1, MAX_SLOT_MS)
}

/// The slot of wall-clock time `at` for slots of `slot_ms`: milliseconds since the Unix epoch
/// divided by the slot length.
pub fn slot_of(at: Timestamp, slot_ms: u64) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0) / slot_ms.max(1)
}

/// One version's calls in one slot, as a replica counted them so far (a report carries the
/// slot's whole count, not what was added since the last one, so a report sent twice counts
/// once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlotCounts {
    /// The slot: milliseconds since the Unix epoch divided by `slotMs`.
    pub slot: u64,
    /// Calls that ended in the slot.
    pub calls: u64,
    /// Of those, calls without a result (transport failure, timeout, JSON-RPC error).
    #[serde(default)]
    pub errors: u64,
    /// Of those, results with `isError: true`.
    #[serde(default)]
    pub tool_errors: u64,
}

/// A gateway replica's report: its counts per version and slot. Read by
/// [`Observations::from_json`], which names every invalid field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Observations {
    /// Which gateway replica counted (letters, digits, `.`, `_`, `-`, `:`; 1–128 characters).
    #[cfg_attr(feature = "openapi", schema(example = "gateway-7d9f-x2k4p"))]
    pub replica: String,
    /// The slot length, in milliseconds: a sixtieth of the rollback window (1 to 60,000).
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 60000, example = 1000)
    )]
    pub slot_ms: u64,
    /// Counts per version, per slot.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, Vec<SlotCounts>>))]
    pub versions: BTreeMap<Version, Vec<SlotCounts>>,
}

/// One version's calls over the window, every replica together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VersionTotals {
    /// Calls.
    pub calls: u64,
    /// Calls without a result.
    pub errors: u64,
    /// Results with `isError: true`.
    pub tool_errors: u64,
}

/// The answer to a report: every replica's counts of `service` over the window of
/// [`WINDOW_SLOTS`] slots of `slot_ms` ending now, by version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObservedTotals {
    /// The service.
    pub service: ServerId,
    /// The slot length, in milliseconds.
    pub slot_ms: u64,
    /// The window's last slot (the registry's current one).
    pub slot: u64,
    /// How many replicas reported counts within the window.
    pub replicas: u64,
    /// Totals by version (versions without weight in the policy are not counted).
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, VersionTotals>))]
    pub versions: BTreeMap<Version, VersionTotals>,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Whether `s` is a replica id: 1–128 of letters, digits, `.`, `_`, `-`, `:`.
fn replica_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_REPLICA_CHARS
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

/// Checks a gateway replica id as reports carry it (1–128 of letters, digits, `.`, `_`, `-`,
/// `:`), saying what is wrong otherwise.
pub fn parse_replica(s: &str) -> Result<String, String> {
    if replica_ok(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "must be 1 to {MAX_REPLICA_CHARS} letters, digits, '.', '_', '-' or ':', got {s:?}"
        ))
    }
}

impl Observations {
    /// Parses a report, reporting every invalid field at once (`replica`, `slotMs`,
    /// `versions.2.1.0[3].calls`, …). A slot more than a window ahead of `now` is refused (a
    /// clock that far off would keep its counts in every window); unknown fields are rejected.
    pub fn from_json(body: &Value, now: Timestamp) -> Result<Self, ValidationErrors> {
        let Value::Object(obj) = body else {
            return Err(ValidationErrors::one(
                "body",
                format!("must be a JSON object, got {}", kind(body)),
            ));
        };
        let mut errors: Vec<FieldError> = obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "replica" | "slotMs" | "versions"))
            .map(|k| FieldError::new(k, "unknown field"))
            .collect();
        let replica = match obj.get("replica") {
            Some(Value::String(s)) if replica_ok(s) => Some(s.clone()),
            Some(Value::String(s)) => {
                errors.extend(
                    parse_replica(s)
                        .err()
                        .map(|e| FieldError::new("replica", e)),
                );
                None
            }
            Some(v) => {
                errors.push(FieldError::new(
                    "replica",
                    format!("must be a string, got {}", kind(v)),
                ));
                None
            }
            None => {
                errors.push(FieldError::new("replica", "is required"));
                None
            }
        };
        let slot_ms = match obj.get("slotMs") {
            Some(v) => match v.as_u64().filter(|n| (1..=MAX_SLOT_MS).contains(n)) {
                Some(n) => Some(n),
                None => {
                    errors.push(FieldError::new(
                        "slotMs",
                        format!("must be an integer from 1 to {MAX_SLOT_MS}, got {v}"),
                    ));
                    None
                }
            },
            None => {
                errors.push(FieldError::new("slotMs", "is required"));
                None
            }
        };
        // Without a valid slot length the slots cannot be checked against the clock.
        let latest = slot_ms.map(|ms| slot_of(now, ms) + WINDOW_SLOTS);
        let versions = match obj.get("versions") {
            Some(v) => parse_versions(&mut errors, v, latest),
            None => {
                errors.push(FieldError::new("versions", "is required"));
                None
            }
        };
        match (replica, slot_ms, versions) {
            (Some(replica), Some(slot_ms), Some(versions)) if errors.is_empty() => Ok(Self {
                replica,
                slot_ms,
                versions,
            }),
            _ => Err(ValidationErrors(errors)),
        }
    }
}

fn parse_versions(
    errors: &mut Vec<FieldError>,
    v: &Value,
    latest: Option<u64>,
) -> Option<BTreeMap<Version, Vec<SlotCounts>>> {
    let Value::Object(obj) = v else {
        errors.push(FieldError::new(
            "versions",
            format!(
                "must be an object of version to a list of slots, got {}",
                kind(v)
            ),
        ));
        return None;
    };
    if obj.len() > MAX_OBSERVED_VERSIONS {
        errors.push(FieldError::new(
            "versions",
            format!(
                "must name at most {MAX_OBSERVED_VERSIONS} versions, got {}",
                obj.len()
            ),
        ));
        return None;
    }
    let slots: usize = obj.values().filter_map(Value::as_array).map(Vec::len).sum();
    if slots > MAX_OBSERVED_SLOTS {
        errors.push(FieldError::new(
            "versions",
            format!("must carry at most {MAX_OBSERVED_SLOTS} slots in all, got {slots}"),
        ));
        return None;
    }
    let before = errors.len();
    let mut out = BTreeMap::new();
    for (key, list) in obj {
        let field = format!("versions.{key}");
        let version = key
            .parse::<Version>()
            .map_err(|e| errors.push(FieldError::new(&field, e)))
            .ok();
        let Value::Array(items) = list else {
            errors.push(FieldError::new(
                &field,
                format!("must be a list of slots, got {}", kind(list)),
            ));
            continue;
        };
        let mut counts = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{field}[{i}]");
            if let Some(c) = parse_slot(errors, &at, item, latest) {
                if counts.iter().any(|s: &SlotCounts| s.slot == c.slot) {
                    errors.push(FieldError::new(
                        format!("{at}.slot"),
                        "names a slot given twice",
                    ));
                }
                counts.push(c);
            }
        }
        if let Some(version) = version {
            out.insert(version, counts);
        }
    }
    (errors.len() == before).then_some(out)
}

fn parse_slot(
    errors: &mut Vec<FieldError>,
    at: &str,
    item: &Value,
    latest: Option<u64>,
) -> Option<SlotCounts> {
    let Value::Object(obj) = item else {
        errors.push(FieldError::new(
            at,
            format!(
                "must be an object {{slot, calls, errors, toolErrors}}, got {}",
                kind(item)
            ),
        ));
        return None;
    };
    let before = errors.len();
    for key in obj
        .keys()
        .filter(|k| !matches!(k.as_str(), "slot" | "calls" | "errors" | "toolErrors"))
    {
        errors.push(FieldError::new(format!("{at}.{key}"), "unknown field"));
    }
    let mut number = |name: &str, required: bool| -> u64 {
        match obj.get(name) {
            None if !required => 0,
            None => {
                errors.push(FieldError::new(format!("{at}.{name}"), "is required"));
                0
            }
            Some(v) => match v.as_u64() {
                Some(n) if name == "slot" || n <= MAX_SLOT_CALLS => n,
                _ => {
                    errors.push(FieldError::new(
                        format!("{at}.{name}"),
                        format!("must be an integer from 0 to {MAX_SLOT_CALLS}, got {v}"),
                    ));
                    0
                }
            },
        }
    };
    let slot = number("slot", true);
    let calls = number("calls", true);
    let failed = number("errors", false);
    let tool_errors = number("toolErrors", false);
    if errors.len() > before {
        return None;
    }
    if failed.saturating_add(tool_errors) > calls {
        errors.push(FieldError::new(
            format!("{at}.calls"),
            format!("must be at least errors + toolErrors ({failed} + {tool_errors}), got {calls}"),
        ));
        return None;
    }
    if let Some(latest) = latest
        && slot > latest
    {
        errors.push(FieldError::new(
            format!("{at}.slot"),
            format!(
                "is more than a window ahead of the registry's clock (slot {slot}, now {})",
                latest - WINDOW_SLOTS
            ),
        ));
        return None;
    }
    Some(SlotCounts {
        slot,
        calls,
        errors: failed,
        tool_errors,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        chrono::DateTime::from_timestamp_millis(1_800_000_000_000).expect("time")
    }

    #[test]
    fn slots_are_sixtieths_of_the_window_on_the_wall_clock() {
        assert_eq!(slot_ms(Duration::from_secs(60)), 1000);
        assert_eq!(slot_ms(Duration::from_secs(1)), 16);
        assert_eq!(slot_ms(Duration::from_secs(3600)), 60_000);
        assert_eq!(slot_of(now(), 1000), 1_800_000_000);
    }

    /// One row per body: the fields its problem names (none for a valid body).
    #[test]
    fn reports() {
        let slot = 1_800_000_000u64;
        let good = json!({"slot": slot, "calls": 10, "errors": 1, "toolErrors": 2});
        let many: Vec<Value> = (0..=MAX_OBSERVED_SLOTS as u64)
            .map(|i| json!({"slot": i, "calls": 1}))
            .collect();
        let rows: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"replica": "gw-a", "slotMs": 1000, "versions": {"1.0.0": [good]}}),
                vec![],
            ),
            (
                json!({"replica": "gw-a", "slotMs": 1000, "versions": {}}),
                vec![],
            ),
            (
                json!({"replica": "", "slotMs": 1000, "versions": {}}),
                vec!["replica"],
            ),
            (
                json!({"replica": "a b", "slotMs": 1000, "versions": {}}),
                vec!["replica"],
            ),
            (
                json!({"replica": 7, "slotMs": 1000, "versions": {}}),
                vec!["replica"],
            ),
            (json!({"slotMs": 1000, "versions": {}}), vec!["replica"]),
            (
                json!({"replica": "a", "slotMs": 0, "versions": {}}),
                vec!["slotMs"],
            ),
            (
                json!({"replica": "a", "slotMs": 60001, "versions": {}}),
                vec!["slotMs"],
            ),
            (json!({"replica": "a", "versions": {}}), vec!["slotMs"]),
            (json!({"replica": "a", "slotMs": 1000}), vec!["versions"]),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": []}),
                vec!["versions"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": {"latest": []}}),
                vec!["versions.latest"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": {"1.0.0": {}}}),
                vec!["versions.1.0.0"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": {"1.0.0": [{"slot": slot}]}}),
                vec!["versions.1.0.0[0].calls"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000,
                       "versions": {"1.0.0": [{"slot": slot, "calls": -1}]}}),
                vec!["versions.1.0.0[0].calls"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000,
                       "versions": {"1.0.0": [{"slot": slot, "calls": 1, "errors": 2}]}}),
                vec!["versions.1.0.0[0].calls"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000,
                       "versions": {"1.0.0": [{"slot": slot, "calls": 1, "x": 2}]}}),
                vec!["versions.1.0.0[0].x"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000,
                       "versions": {"1.0.0": [{"slot": slot + 61, "calls": 1}]}}),
                vec!["versions.1.0.0[0].slot"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000,
                       "versions": {"1.0.0": [{"slot": slot, "calls": 1}, {"slot": slot, "calls": 2}]}}),
                vec!["versions.1.0.0[1].slot"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": {"1.0.0": many}}),
                vec!["versions"],
            ),
            (
                json!({"replica": "a", "slotMs": 1000, "versions": {}, "extra": 1}),
                vec!["extra"],
            ),
            (json!([]), vec!["body"]),
        ];
        for (body, fields) in rows {
            let got = Observations::from_json(&body, now())
                .err()
                .map(|e| e.fields().join(","));
            let want = (!fields.is_empty()).then(|| fields.join(","));
            assert_eq!(got, want, "{body}");
        }
        let ok = Observations::from_json(
            &json!({"replica": "gw-a", "slotMs": 1000,
                    "versions": {"1.0.0": [{"slot": slot, "calls": 10, "errors": 1, "toolErrors": 2}]}}),
            now(),
        )
        .expect("valid");
        let v: Version = "1.0.0".parse().expect("version");
        assert_eq!(
            ok.versions[&v],
            vec![SlotCounts {
                slot,
                calls: 10,
                errors: 1,
                tool_errors: 2
            }]
        );
    }
}
