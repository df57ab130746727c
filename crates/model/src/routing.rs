//! A service's routing policy: how its traffic splits across versions, and when a canary is
//! rolled back automatically. Pure: parsing, checking and the rollback rule, no I/O.
//!
//! Over 500 lines: the policy's parser names every invalid field, and the unit tests sit next to
//! the code they check (378 of 953 lines).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use chrono::SubsecRound;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::contract::{BreakingAllowed, ContractBreak, ContractCheck, RoutingContract};
use crate::duration::parse_duration;
use crate::error::{FieldError, ValidationErrors};
use crate::ids::{ServerId, Version};
use crate::time::{Timestamp, serde_ts};

/// Most versions one policy may weigh.
pub const MAX_ROUTED_VERSIONS: usize = 32;
/// Shortest and longest rollback window.
pub const ROLLBACK_WINDOW: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(3600);
/// Fewest and most requests a rollback rule may ask for before it judges.
pub const ROLLBACK_MIN_REQUESTS: RangeInclusive<u32> = 1..=1_000_000;
/// Longest `allowBreaking.reason`, in characters.
pub const MAX_ALLOW_REASON_CHARS: usize = 1000;

/// When the gateway rolls a version back on its own: once a version has served at least
/// `min_requests` calls within `window`, and its error rate exceeds the best other version's by
/// more than `max_error_rate_delta`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRule {
    /// Largest tolerated excess of error rate over the other versions', in (0, 1].
    #[cfg_attr(
        feature = "openapi",
        schema(exclusive_minimum = 0, maximum = 1, example = 0.05)
    )]
    pub max_error_rate_delta: f64,
    /// How far back the error rates are measured (`1500ms`, `60s`, `5m`; 1 s to 1 h). Rendered
    /// in whole seconds (`300s`), or in milliseconds when it is not a whole number of seconds.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "60s"))]
    #[serde(with = "window_text")]
    pub window: Duration,
    /// Fewest calls within the window before the rule judges, 1 to 1,000,000.
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 1, maximum = 1000000, example = 50)
    )]
    pub min_requests: u32,
}

/// The body of `PUT /services/{service}/routing`, already checked: weights (percentages adding
/// up to 100) per version, and an optional automatic-rollback rule. Read by
/// [`RoutingPolicy::from_json`], which names every invalid field.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoutingPolicy {
    /// Percent of the service's traffic per version: integers 0–100 adding up to 100, 1 to 32
    /// versions.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, u8>, example = json!({"2.0.0": 90, "2.1.0": 10})))]
    pub weights: BTreeMap<Version, u8>,
    /// Automatic rollback; absent for none.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub rollback: Option<RollbackRule>,
    /// Send traffic to versions whose catalog breaks the stable version's contract all the
    /// same, for this reason (recorded with who gave it); without it such a policy is refused.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_breaking: Option<AllowBreaking>,
}

/// `allowBreaking` of a routing policy: why versions that break the stable version's contract
/// may have traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AllowBreaking {
    /// Why, 1 to 1,000 characters; recorded in the document's `breakingAllowed`.
    pub reason: String,
}

/// A rollback that happened: which version, why, and the weights before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RollbackRecord {
    /// The version whose weight was set to 0.
    pub version: Version,
    /// Why, as the caller put it (e.g. the gateway's canary analysis).
    pub reason: String,
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "serde_ts")]
    pub at: Timestamp,
    /// The weights just before the rollback.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, u8>))]
    pub previous_weights: BTreeMap<Version, u8>,
}

/// A service's stored routing document: what `GET /services/{service}/routing` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// The service the policy routes.
    pub service: ServerId,
    /// Percent of traffic per version, adding up to 100.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, u8>))]
    pub weights: BTreeMap<Version, u8>,
    /// Automatic rollback, when set.
    #[serde(default)]
    pub rollback: Option<RollbackRule>,
    /// When the policy last changed (set or rolled back).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "serde_ts")]
    pub updated_at: Timestamp,
    /// The last rollback since the policy was set; cleared by setting a policy.
    #[serde(default)]
    pub rolled_back: Option<RollbackRecord>,
    /// Who last set the policy or rolled it back: a token id or OIDC subject, as an entry's
    /// `updatedBy` (`null` while writes are open).
    #[serde(default)]
    pub updated_by: Option<String>,
    /// How the versions with traffic stand against the stable version's catalog, as found when
    /// the policy was set; absent from documents set before contracts were checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<RoutingContract>,
    /// The breaking versions sent traffic on purpose (`allowBreaking`), with who and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaking_allowed: Vec<BreakingAllowed>,
}

/// Why [`Routing::roll_back`] cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// The version has no weight in the policy.
    #[error("version {0} is not in the policy's weights")]
    UnknownVersion(Version),
    /// The version is the only one weighed: there is nowhere to send its traffic.
    #[error(
        "version {0} is the only version in the policy's weights; there is nothing to roll back to"
    )]
    OnlyVersion(Version),
}

impl Routing {
    /// The document a newly set `policy` makes, set `by` a principal as of `now` (no rollback
    /// recorded). Times are kept to the millisecond, as the document renders them.
    pub fn new(service: ServerId, policy: RoutingPolicy, by: Option<&str>, now: Timestamp) -> Self {
        let now = now.trunc_subsecs(3);
        Self {
            service,
            weights: policy.weights,
            rollback: policy.rollback,
            updated_at: now,
            rolled_back: None,
            updated_by: by.map(str::to_owned),
            contract: None,
            breaking_allowed: Vec::new(),
        }
    }

    /// The document held to `check`'s contract: refused, with every breaking change, when a
    /// version with traffic breaks the stable version's catalog and `allow` is `None`; with
    /// `allow`, each breaking version is recorded in `breakingAllowed` with who set the policy
    /// and when.
    pub fn held_to(
        mut self,
        check: Option<ContractCheck>,
        allow: Option<&AllowBreaking>,
    ) -> Result<Self, Vec<ContractBreak>> {
        let Some(check) = check else {
            return Ok(self);
        };
        if !check.contract.breaking.is_empty() {
            let Some(allow) = allow else {
                return Err(check.breaks);
            };
            self.breaking_allowed = check
                .contract
                .breaking
                .iter()
                .map(|version| BreakingAllowed {
                    version: version.clone(),
                    by: self.updated_by.clone(),
                    reason: allow.reason.clone(),
                    at: self.updated_at,
                })
                .collect();
        }
        self.contract = Some(check.contract);
        Ok(self)
    }

    /// The versions with traffic whose catalog breaks the stable version's, as recorded when
    /// the policy was set.
    pub fn breaking_canaries(&self) -> impl Iterator<Item = &Version> {
        self.contract
            .iter()
            .flat_map(|c| &c.breaking)
            .filter(|v| self.weights.get(*v).is_some_and(|w| *w > 0))
    }

    /// Rolls `version` back, `by` a principal as of `now`: its weight goes to 0 and to the other
    /// version with the highest weight (the lowest such version on a tie), and the rollback is
    /// recorded with the weights before it. `Ok(false)`, changing nothing, when the version's
    /// weight is already 0.
    pub fn roll_back(
        &mut self,
        version: &Version,
        reason: &str,
        by: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, RollbackError> {
        let Some(&weight) = self.weights.get(version) else {
            return Err(RollbackError::UnknownVersion(version.clone()));
        };
        if weight == 0 {
            return Ok(false);
        }
        let now = now.trunc_subsecs(3);
        let heir = self
            .weights
            .iter()
            .filter(|(v, _)| *v != version)
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(v, _)| v.clone())
            .ok_or_else(|| RollbackError::OnlyVersion(version.clone()))?;
        let previous_weights = self.weights.clone();
        self.weights.insert(version.clone(), 0);
        if let Some(w) = self.weights.get_mut(&heir) {
            *w = w.saturating_add(weight);
        }
        self.contract = self.contract.take().map(|c| self.contract_after(c));
        self.updated_at = now;
        self.updated_by = by.map(str::to_owned);
        self.rolled_back = Some(RollbackRecord {
            version: version.clone(),
            reason: reason.to_owned(),
            at: now,
            previous_weights,
        });
        Ok(true)
    }
}

impl Routing {
    /// `contract` once the weights changed by a rollback: the version rolled back leaves its
    /// lists; when another version became stable, the others were never compared with it and
    /// are unknown.
    fn contract_after(&self, mut contract: RoutingContract) -> RoutingContract {
        let with_traffic = |v: &Version| self.weights.get(v).is_some_and(|w| *w > 0);
        let Some(stable) = crate::contract::stable_version(&self.weights) else {
            return contract;
        };
        if *stable == contract.stable {
            contract.breaking.retain(with_traffic);
            contract.unknown.retain(with_traffic);
            return contract;
        }
        RoutingContract {
            stable: stable.clone(),
            breaking: Vec::new(),
            unknown: self
                .weights
                .keys()
                .filter(|v| *v != stable && with_traffic(v))
                .cloned()
                .collect(),
        }
    }
}

/// The name of a version's subset in an Istio `DestinationRule`: `v` and the version with `.`
/// and `+` replaced by `-` (`2.1.0` → `v2-1-0`).
pub fn subset_name(version: &Version) -> String {
    format!("v{}", version.to_string().replace(['.', '+'], "-"))
}

/// Parses a window: a whole number of `ms`, `s`, `m` or `h`.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let window = parse_duration(text, false)
        .ok_or_else(|| format!("must be a duration such as 1500ms, 60s or 5m, got {text:?}"))?;
    if !ROLLBACK_WINDOW.contains(&window) {
        return Err(format!("must be from 1s to 1h, got {text:?}"));
    }
    Ok(window)
}

/// Renders a window as [`parse_window`] reads it: whole seconds when it is, else milliseconds.
pub fn format_window(window: Duration) -> String {
    let millis = window.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

mod window_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_window(*d))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_window(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for RollbackRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "roll back when the error rate exceeds the others' by more than {} over {} (at least {} calls)",
            self.max_error_rate_delta,
            format_window(self.window),
            self.min_requests
        )
    }
}

/// The JSON type of a value, for messages.
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

impl RoutingPolicy {
    /// Parses a `PUT /services/{service}/routing` body, reporting every invalid field at once
    /// (`weights.2.1.0`, `rollback.window`, …). Unknown fields are rejected.
    pub fn from_json(body: &Value) -> Result<Self, ValidationErrors> {
        let Value::Object(obj) = body else {
            return Err(ValidationErrors::one(
                "body",
                format!("must be a JSON object, got {}", kind(body)),
            ));
        };
        let mut errors = Vec::new();
        for key in obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "weights" | "rollback" | "allowBreaking"))
        {
            errors.push(FieldError::new(key, "unknown field"));
        }
        let weights = match obj.get("weights").filter(|v| !v.is_null()) {
            Some(v) => parse_weights(&mut errors, v),
            None => {
                errors.push(FieldError::new("weights", "is required"));
                None
            }
        };
        let rollback = match obj.get("rollback").filter(|v| !v.is_null()) {
            Some(v) => parse_rule(&mut errors, v).map(Some),
            None => Some(None),
        };
        let allow_breaking = match obj.get("allowBreaking").filter(|v| !v.is_null()) {
            Some(v) => parse_allow(&mut errors, v).map(Some),
            None => Some(None),
        };
        match (weights, rollback, allow_breaking) {
            (Some(weights), Some(rollback), Some(allow_breaking)) if errors.is_empty() => {
                Ok(Self {
                    weights,
                    rollback,
                    allow_breaking,
                })
            }
            _ => Err(ValidationErrors(errors)),
        }
    }
}

fn parse_weights(errors: &mut Vec<FieldError>, v: &Value) -> Option<BTreeMap<Version, u8>> {
    let Value::Object(obj) = v else {
        errors.push(FieldError::new(
            "weights",
            format!("must be an object of version to percent, got {}", kind(v)),
        ));
        return None;
    };
    if obj.is_empty() || obj.len() > MAX_ROUTED_VERSIONS {
        errors.push(FieldError::new(
            "weights",
            format!(
                "must weigh 1 to {MAX_ROUTED_VERSIONS} versions, got {}",
                obj.len()
            ),
        ));
        return None;
    }
    let before = errors.len();
    let mut weights = BTreeMap::new();
    for (key, value) in obj {
        let field = format!("weights.{key}");
        let version = key
            .parse::<Version>()
            .map_err(|e| errors.push(FieldError::new(&field, e)))
            .ok();
        let weight = match value.as_u64().and_then(|n| u8::try_from(n).ok()) {
            Some(n) if n <= 100 => Some(n),
            _ => {
                errors.push(FieldError::new(
                    &field,
                    format!("must be an integer from 0 to 100, got {value}"),
                ));
                None
            }
        };
        if let (Some(version), Some(weight)) = (version, weight)
            && weights.insert(version, weight).is_some()
        {
            errors.push(FieldError::new(&field, "names a version given twice"));
        }
    }
    if errors.len() > before {
        return None;
    }
    let sum: u32 = weights.values().map(|&w| u32::from(w)).sum();
    if sum != 100 {
        errors.push(FieldError::new(
            "weights",
            format!("must add up to 100, got {sum}"),
        ));
        return None;
    }
    Some(weights)
}

fn parse_allow(errors: &mut Vec<FieldError>, v: &Value) -> Option<AllowBreaking> {
    let Value::Object(obj) = v else {
        errors.push(FieldError::new(
            "allowBreaking",
            format!(
                "must be an object such as {{\"reason\": \"…\"}}, got {}",
                kind(v)
            ),
        ));
        return None;
    };
    let before = errors.len();
    for key in obj.keys().filter(|k| k.as_str() != "reason") {
        errors.push(FieldError::new(
            format!("allowBreaking.{key}"),
            "unknown field",
        ));
    }
    let reason = match obj.get("reason") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(FieldError::new("allowBreaking.reason", "must not be empty"));
            None
        }
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if n > MAX_ALLOW_REASON_CHARS {
                errors.push(FieldError::new(
                    "allowBreaking.reason",
                    format!("must be at most {MAX_ALLOW_REASON_CHARS} characters, got {n}"),
                ));
            }
            Some(s.clone())
        }
        Some(Value::Null) | None => {
            errors.push(FieldError::new(
                "allowBreaking.reason",
                "is required: say why versions that break the stable version's contract may \
                 have traffic",
            ));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                "allowBreaking.reason",
                format!("must be a string, got {}", kind(other)),
            ));
            None
        }
    };
    match reason {
        Some(reason) if errors.len() == before => Some(AllowBreaking { reason }),
        _ => None,
    }
}

fn parse_rule(errors: &mut Vec<FieldError>, v: &Value) -> Option<RollbackRule> {
    let Value::Object(obj) = v else {
        errors.push(FieldError::new(
            "rollback",
            format!("must be an object, got {}", kind(v)),
        ));
        return None;
    };
    let before = errors.len();
    for key in obj
        .keys()
        .filter(|k| !matches!(k.as_str(), "maxErrorRateDelta" | "window" | "minRequests"))
    {
        errors.push(FieldError::new(format!("rollback.{key}"), "unknown field"));
    }
    let field = |obj: &Map<String, Value>, errors: &mut Vec<FieldError>, key: &str| {
        let v = obj.get(key).filter(|v| !v.is_null()).cloned();
        if v.is_none() {
            errors.push(FieldError::new(format!("rollback.{key}"), "is required"));
        }
        v
    };
    let delta = field(obj, errors, "maxErrorRateDelta").and_then(|v| match v.as_f64() {
        Some(x) if x > 0.0 && x <= 1.0 => Some(x),
        _ => {
            errors.push(FieldError::new(
                "rollback.maxErrorRateDelta",
                format!("must be a number greater than 0 and at most 1, got {v}"),
            ));
            None
        }
    });
    let window = field(obj, errors, "window").and_then(|v| {
        let parsed = match &v {
            Value::String(s) => parse_window(s),
            other => Err(format!(
                "must be a string such as \"60s\", got {}",
                kind(other)
            )),
        };
        parsed
            .map_err(|e| errors.push(FieldError::new("rollback.window", e)))
            .ok()
    });
    let min_requests = field(obj, errors, "minRequests").and_then(|v| {
        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if ROLLBACK_MIN_REQUESTS.contains(&n) => Some(n),
            _ => {
                errors.push(FieldError::new(
                    "rollback.minRequests",
                    format!(
                        "must be an integer from {} to {}, got {v}",
                        ROLLBACK_MIN_REQUESTS.start(),
                        ROLLBACK_MIN_REQUESTS.end()
                    ),
                ));
                None
            }
        }
    });
    match (delta, window, min_requests) {
        (Some(max_error_rate_delta), Some(window), Some(min_requests))
            if errors.len() == before =>
        {
            Some(RollbackRule {
                max_error_rate_delta,
                window,
                min_requests,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect("version")
    }

    fn body() -> Value {
        json!({
            "weights": {"2.0.0": 90, "2.1.0": 10},
            "rollback": {"maxErrorRateDelta": 0.05, "window": "60s", "minRequests": 50},
        })
    }

    #[test]
    fn accepts_the_documented_body_and_renders_it_back() {
        let p = RoutingPolicy::from_json(&body()).expect("valid");
        assert_eq!(
            p.weights,
            BTreeMap::from([(v("2.0.0"), 90), (v("2.1.0"), 10)])
        );
        let rule = p.rollback.expect("rule");
        assert_eq!(rule.window, Duration::from_secs(60));
        assert_eq!(rule.min_requests, 50);
        assert_eq!(serde_json::to_value(&p).expect("render"), body());
    }

    #[test]
    fn rollback_is_optional() {
        for rollback in [None, Some(Value::Null)] {
            let mut b = json!({"weights": {"1.0.0": 100}});
            if let Some(r) = rollback {
                b["rollback"] = r;
            }
            let p = RoutingPolicy::from_json(&b).expect("valid");
            assert_eq!(p.rollback, None);
        }
    }

    /// One row per violation: (JSON pointer to change, new value or `None` to remove, field).
    #[test]
    fn each_violation_names_its_field() {
        let rows: Vec<(&str, Option<Value>, &str)> = vec![
            ("/weights", None, "weights"),
            ("/weights", Some(json!([90, 10])), "weights"),
            ("/weights", Some(json!({})), "weights"),
            (
                "/weights",
                Some(json!({"2.0.0": 90, "2.1.0": 20})),
                "weights",
            ),
            (
                "/weights",
                Some(json!({"2.0.0": 50, "2.1.0": 10})),
                "weights",
            ),
            (
                "/weights",
                Some(json!({"2.0.0": 90, "latest": 10})),
                "weights.latest",
            ),
            (
                "/weights",
                Some(json!({"2.0.0": 90, "2.1.0": 10.5})),
                "weights.2.1.0",
            ),
            (
                "/weights",
                Some(json!({"2.0.0": 110, "2.1.0": 0})),
                "weights.2.0.0",
            ),
            (
                "/weights",
                Some(json!({"2.0.0": 100, "2.1.0": -10})),
                "weights.2.1.0",
            ),
            (
                "/weights",
                Some(json!({"2.0.0": 90, "2.1.0": "10"})),
                "weights.2.1.0",
            ),
            ("/weights", Some(json!({"2.0.0": 300})), "weights.2.0.0"),
            ("/color", Some(json!("blue")), "color"),
            ("/rollback", Some(json!(true)), "rollback"),
            (
                "/rollback/maxErrorRateDelta",
                Some(json!(0)),
                "rollback.maxErrorRateDelta",
            ),
            (
                "/rollback/maxErrorRateDelta",
                Some(json!(1.5)),
                "rollback.maxErrorRateDelta",
            ),
            (
                "/rollback/maxErrorRateDelta",
                Some(json!(-0.1)),
                "rollback.maxErrorRateDelta",
            ),
            (
                "/rollback/maxErrorRateDelta",
                Some(json!("0.1")),
                "rollback.maxErrorRateDelta",
            ),
            (
                "/rollback/maxErrorRateDelta",
                None,
                "rollback.maxErrorRateDelta",
            ),
            ("/rollback/window", Some(json!("500ms")), "rollback.window"),
            ("/rollback/window", Some(json!("61m")), "rollback.window"),
            ("/rollback/window", Some(json!("60")), "rollback.window"),
            ("/rollback/window", Some(json!("1d")), "rollback.window"),
            ("/rollback/window", Some(json!(60)), "rollback.window"),
            ("/rollback/window", None, "rollback.window"),
            (
                "/rollback/minRequests",
                Some(json!(0)),
                "rollback.minRequests",
            ),
            (
                "/rollback/minRequests",
                Some(json!(1_000_001)),
                "rollback.minRequests",
            ),
            (
                "/rollback/minRequests",
                Some(json!(2.5)),
                "rollback.minRequests",
            ),
            ("/rollback/minRequests", None, "rollback.minRequests"),
            ("/rollback/extra", Some(json!(1)), "rollback.extra"),
            ("/allowBreaking", Some(json!("ship it")), "allowBreaking"),
            ("/allowBreaking", Some(json!({})), "allowBreaking.reason"),
            (
                "/allowBreaking",
                Some(json!({"reason": " "})),
                "allowBreaking.reason",
            ),
            (
                "/allowBreaking",
                Some(json!({"reason": 5})),
                "allowBreaking.reason",
            ),
            (
                "/allowBreaking",
                Some(json!({"reason": "r".repeat(MAX_ALLOW_REASON_CHARS + 1)})),
                "allowBreaking.reason",
            ),
            (
                "/allowBreaking",
                Some(json!({"reason": "ok", "by": "me"})),
                "allowBreaking.by",
            ),
        ];
        for (pointer, value, field) in rows {
            let mut b = body();
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            let target = b
                .pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .expect("parent object");
            match value {
                Some(value) => target.insert(key.to_owned(), value),
                None => target.remove(key),
            };
            let err = RoutingPolicy::from_json(&b).expect_err(pointer);
            assert_eq!(err.fields(), vec![field], "{pointer}: {err}");
        }
        let many: Map<String, Value> = (0..33).map(|i| (format!("1.0.{i}"), json!(0))).collect();
        let err = RoutingPolicy::from_json(&json!({ "weights": many })).expect_err("33");
        assert_eq!(err.fields(), vec!["weights"]);
        let err = RoutingPolicy::from_json(&json!([])).expect_err("array");
        assert_eq!(err.fields(), vec!["body"]);
    }

    #[test]
    fn windows_parse_and_render() {
        for (text, secs_ms, back) in [
            ("1s", 1000, "1s"),
            ("1500ms", 1500, "1500ms"),
            ("60s", 60_000, "60s"),
            ("5m", 300_000, "300s"),
            ("1h", 3_600_000, "3600s"),
        ] {
            let d = parse_window(text).expect(text);
            assert_eq!(d, Duration::from_millis(secs_ms), "{text}");
            assert_eq!(format_window(d), back, "{text}");
        }
        for bad in ["", "999ms", "3601s", "2h", "s", "1 s", "-1s", "1.5s"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    fn routing(weights: &[(&str, u8)]) -> Routing {
        let weights = weights.iter().map(|(k, w)| (v(k), *w)).collect();
        Routing::new(
            "catalog".parse().expect("id"),
            RoutingPolicy {
                weights,
                rollback: None,
                allow_breaking: None,
            },
            Some("tok_setter"),
            Timestamp::default(),
        )
    }

    /// One row per case: (weights, version rolled back, weights after, or `None` for a no-op).
    #[test]
    fn a_rollback_gives_the_weight_to_the_heaviest_other_version() {
        type Row<'a> = (&'a [(&'a str, u8)], &'a str, Option<&'a [(&'a str, u8)]>);
        let rows: [Row; 4] = [
            (
                &[("2.0.0", 90), ("2.1.0", 10)],
                "2.1.0",
                Some(&[("2.0.0", 100), ("2.1.0", 0)]),
            ),
            (
                &[("1.0.0", 20), ("2.0.0", 50), ("2.1.0", 30)],
                "2.0.0",
                Some(&[("1.0.0", 20), ("2.0.0", 0), ("2.1.0", 80)]),
            ),
            (
                &[("1.0.0", 25), ("2.0.0", 25), ("2.1.0", 50)],
                "2.1.0",
                Some(&[("1.0.0", 75), ("2.0.0", 25), ("2.1.0", 0)]),
            ),
            (&[("2.0.0", 100), ("2.1.0", 0)], "2.1.0", None),
        ];
        let at = Timestamp::default() + chrono::Duration::seconds(5);
        for (before, version, after) in rows {
            let mut r = routing(before);
            let changed = r
                .roll_back(&v(version), "errors", Some("tok_gateway"), at)
                .expect("applies");
            match after {
                Some(after) => {
                    assert!(changed, "{before:?}");
                    assert_eq!(r.weights, routing(after).weights, "{before:?}");
                    let record = r.rolled_back.as_ref().expect("recorded");
                    assert_eq!(record.previous_weights, routing(before).weights);
                    assert_eq!(record.version, v(version));
                    assert_eq!(r.updated_at, at);
                    assert_eq!(r.updated_by.as_deref(), Some("tok_gateway"));
                }
                None => assert_eq!((changed, r), (false, routing(before)), "{before:?}"),
            }
        }
        let mut r = routing(&[("2.0.0", 100)]);
        let now = Timestamp::default();
        assert!(matches!(
            r.roll_back(&v("2.0.0"), "x", None, now),
            Err(RollbackError::OnlyVersion(_))
        ));
        assert!(matches!(
            r.roll_back(&v("3.0.0"), "x", None, now),
            Err(RollbackError::UnknownVersion(_))
        ));
    }

    fn contract(stable: &str, breaking: &[&str], unknown: &[&str]) -> RoutingContract {
        RoutingContract {
            stable: v(stable),
            breaking: breaking.iter().map(|s| v(s)).collect(),
            unknown: unknown.iter().map(|s| v(s)).collect(),
        }
    }

    /// A breaking version is refused without `allowBreaking` and recorded with who and why
    /// with it; a compatible policy is recorded as it is.
    #[test]
    fn a_document_is_held_to_its_contract() {
        let check = |c: RoutingContract| {
            let breaks = c
                .breaking
                .iter()
                .map(|version| ContractBreak {
                    version: version.clone(),
                    stable: c.stable.clone(),
                    tool: "stock".into(),
                    location: None,
                    path: String::new(),
                    message: "Tool `stock` was removed.".into(),
                })
                .collect();
            Some(ContractCheck {
                contract: c,
                breaks,
            })
        };
        let doc = routing(&[("2.0.0", 90), ("2.1.0", 10)]);
        let refused = doc
            .clone()
            .held_to(check(contract("2.0.0", &["2.1.0"], &[])), None)
            .expect_err("breaking");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].version, v("2.1.0"));

        let allow = AllowBreaking {
            reason: "clients upgraded".into(),
        };
        let allowed = doc
            .clone()
            .held_to(check(contract("2.0.0", &["2.1.0"], &[])), Some(&allow))
            .expect("allowed");
        assert_eq!(
            allowed.breaking_allowed,
            [BreakingAllowed {
                version: v("2.1.0"),
                by: Some("tok_setter".into()),
                reason: "clients upgraded".into(),
                at: doc.updated_at,
            }]
        );
        assert_eq!(
            allowed.breaking_canaries().collect::<Vec<_>>(),
            [&v("2.1.0")]
        );
        let text = serde_json::to_string(&allowed).expect("render");
        assert!(
            text.contains(r#""breakingAllowed":[{"version":"2.1.0""#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<Routing>(&text).expect("parse"),
            allowed
        );

        let fine = doc
            .clone()
            .held_to(check(contract("2.0.0", &[], &["2.1.0"])), Some(&allow))
            .expect("compatible");
        assert!(fine.breaking_allowed.is_empty());
        assert_eq!(fine.contract, Some(contract("2.0.0", &[], &["2.1.0"])));
        assert_eq!(fine.breaking_canaries().count(), 0);
        assert_eq!(doc.clone().held_to(None, None).expect("unchecked"), doc);
    }

    /// Rolling a breaking canary back takes it off the contract's lists; rolling the stable
    /// version back makes the others unknown against the new one.
    #[test]
    fn a_rollback_keeps_the_contract_true() {
        let mut r = routing(&[("1.0.0", 80), ("2.0.0", 10), ("3.0.0", 10)]);
        r.contract = Some(contract("1.0.0", &["2.0.0"], &["3.0.0"]));
        let mut canary = r.clone();
        canary
            .roll_back(&v("2.0.0"), "errors", None, Timestamp::default())
            .expect("rolled back");
        assert_eq!(canary.contract, Some(contract("1.0.0", &[], &["3.0.0"])));
        assert_eq!(canary.breaking_canaries().count(), 0);
        r.roll_back(&v("1.0.0"), "errors", None, Timestamp::default())
            .expect("rolled back");
        assert_eq!(r.weights[&v("2.0.0")], 90);
        assert_eq!(r.contract, Some(contract("2.0.0", &[], &["3.0.0"])));
    }

    #[test]
    fn documents_round_trip_and_name_subsets() {
        let mut r = routing(&[("2.0.0", 90), ("2.1.0+b.1", 10)]);
        r.rollback = RoutingPolicy::from_json(&body()).expect("valid").rollback;
        r.roll_back(&v("2.1.0+b.1"), "errors", None, Timestamp::default())
            .expect("rolled back");
        let text = serde_json::to_string(&r).expect("render");
        assert!(
            text.contains(r#""rolledBack":{"version":"2.1.0+b.1""#),
            "{text}"
        );
        assert!(text.contains(r#""previousWeights""#), "{text}");
        assert!(text.contains(r#""updatedBy":null"#), "{text}");
        let back: Routing = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, r);
        assert_eq!(subset_name(&v("2.1.0+b.1")), "v2-1-0-b-1");
        assert_eq!(subset_name(&v("2.0.0-rc.1")), "v2-0-0-rc-1");
    }
}
