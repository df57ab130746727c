//! Parsing a registration body (`POST /servers`, `PUT /servers/{id}`) into a valid [`Registration`].
//!
//! The body is read as a JSON value and checked field by field so that every problem is
//! reported at once, each naming its field, and wrong types read as well as bad values.
//!
//! Over 500 lines with its unit tests, which sit next to the code they check (144 of 604 lines).

use serde_json::{Map, Value};

use crate::entry::HealthCheckMode;
use crate::error::{FieldError, ValidationErrors};
use crate::ids::{AuthSpec, AuthType, HttpUrl, ServerId, Tag, Version};

/// Largest `metadata` object, in bytes of compact JSON.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Most tags an entry may carry.
pub const MAX_TAGS: usize = 32;
pub(crate) const MAX_NAME_CHARS: usize = 200;
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Shortest and longest heartbeat TTL, in seconds.
pub const TTL_SECONDS: std::ops::RangeInclusive<u64> = 5..=86_400;

/// The fields a registration body may set.
pub const REGISTRATION_FIELDS: [&str; 12] = [
    "id",
    "service",
    "name",
    "description",
    "url",
    "version",
    "tags",
    "auth",
    "healthUrl",
    "metadata",
    "healthCheck",
    "ttlSeconds",
];

/// Fields the registry owns: accepted from clients (seed clients echo them) but ignored. Every
/// bookkeeping field of a rendered [`crate::Entry`] is here, so an entry read with `GET` can be
/// sent back with `PUT` as it is.
pub const REGISTRY_OWNED: [&str; 10] = [
    "status",
    "lastSeen",
    "registeredAt",
    "updatedAt",
    "lastCheckedAt",
    "lastError",
    "lastErrorDetail",
    "latencyMs",
    "statusSince",
    "updatedBy",
];

/// What a client may set on an entry, already validated. Its schema is the body of
/// `POST /servers` and `PUT /servers/{id}` (read by [`Registration::from_json`], not serde).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "camelCase")
)]
pub struct Registration {
    /// Unique slug.
    pub id: ServerId,
    /// The logical server this entry is an instance of (a slug like `id`; default: the `id`).
    /// Entries sharing a service are instances of one server, possibly at different versions.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub service: ServerId,
    /// Human-readable name, 1–200 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// At most 2,000 characters; empty when not given.
    #[cfg_attr(feature = "openapi", schema(required = false, max_length = 2000))]
    pub description: String,
    /// Base URL of the server.
    pub url: HttpUrl,
    /// Semantic version.
    pub version: Version,
    /// Unique tags, at most 32, in the order given.
    #[cfg_attr(feature = "openapi", schema(required = false, max_items = 32))]
    pub tags: Vec<Tag>,
    /// Authentication requirements; `none` when not given.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub auth: AuthSpec,
    /// Health-check URL.
    pub health_url: Option<HttpUrl>,
    /// Free-form object, at most 8 KiB.
    #[cfg_attr(feature = "openapi", schema(required = false, value_type = Object))]
    pub metadata: Map<String, Value>,
    /// How the registry checks the entry (`healthCheck.mode`, default `auto`).
    #[cfg_attr(feature = "openapi", schema(required = false, value_type = crate::entry::HealthCheck))]
    pub health_check: HealthCheckMode,
    /// Heartbeat TTL in seconds (5–86,400), when the entry heartbeats.
    #[cfg_attr(feature = "openapi", schema(minimum = 5, maximum = 86400))]
    pub ttl_seconds: Option<u32>,
    /// Who makes the write (a token id or OIDC subject), set by the registry after
    /// authentication, never read from the body.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub updated_by: Option<String>,
}

/// Collects field errors while the body is read.
struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    fn string<'a>(&mut self, field: &str, v: &'a Value) -> Option<&'a str> {
        match v {
            Value::String(s) => Some(s),
            other => {
                self.fail(field, format!("must be a string, got {}", kind(other)));
                None
            }
        }
    }

    fn parsed<T: std::str::FromStr<Err = String>>(&mut self, field: &str, v: &Value) -> Option<T> {
        let s = self.string(field, v)?;
        match s.parse() {
            Ok(t) => Some(t),
            Err(e) => {
                self.fail(field, e);
                None
            }
        }
    }

    fn text(&mut self, field: &str, v: &Value, min: usize, max: usize) -> Option<String> {
        let s = self.string(field, v)?;
        let n = s.chars().count();
        if n < min || (min > 0 && s.trim().is_empty()) {
            self.fail(field, "must not be empty");
            None
        } else if n > max {
            self.fail(field, format!("must be at most {max} characters, got {n}"));
            None
        } else if s.contains('\0') {
            self.fail(field, NUL_MESSAGE);
            None
        } else {
            Some(s.to_owned())
        }
    }
}

/// PostgreSQL cannot store U+0000 in `TEXT` or `JSONB`: refused here, for every backend alike,
/// rather than failing in the database (a `503` that invited retrying the same body).
const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// Whether any string in `v`, key or value, holds U+0000. Iterative: bodies built in code are
/// not bounded by the JSON parser's nesting limit.
fn holds_nul(v: &Value) -> bool {
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        match v {
            Value::String(s) if s.contains('\0') => return true,
            Value::Array(items) => todo.extend(items),
            Value::Object(m) => {
                if m.keys().any(|k| k.contains('\0')) {
                    return true;
                }
                todo.extend(m.values());
            }
            _ => {}
        }
    }
    false
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

/// `None` for an absent or `null` field.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

impl Registration {
    /// Parses a registration body. `path_id` is the id of `PUT /servers/{id}`: the body's `id`
    /// may then be absent, and must equal it when present.
    pub fn from_json(body: &Value, path_id: Option<&ServerId>) -> Result<Self, ValidationErrors> {
        let Value::Object(obj) = body else {
            return Err(ValidationErrors::one(
                "body",
                format!("must be a JSON object, got {}", kind(body)),
            ));
        };
        let mut c = Check { errors: Vec::new() };

        for key in obj.keys() {
            let known = REGISTRATION_FIELDS.contains(&key.as_str());
            if !known && !REGISTRY_OWNED.contains(&key.as_str()) {
                c.fail(key, "unknown field; put custom data in \"metadata\"");
            }
        }

        let id = match (present(obj, "id"), path_id) {
            (None, Some(p)) => Some(p.clone()),
            (None, None) => {
                c.fail("id", "is required");
                None
            }
            (Some(v), p) => {
                let id: Option<ServerId> = c.parsed("id", v);
                match (id, p) {
                    (Some(id), Some(p)) if &id != p => {
                        c.fail("id", format!("is \"{id}\" but the path names \"{p}\""));
                        None
                    }
                    (id, _) => id,
                }
            }
        };

        let service = match present(obj, "service") {
            Some(v) => c.parsed::<ServerId>("service", v),
            None => id.clone(),
        };
        let name = match present(obj, "name") {
            Some(v) => c.text("name", v, 1, MAX_NAME_CHARS),
            None => {
                c.fail("name", "is required");
                None
            }
        };
        let description = match present(obj, "description") {
            Some(v) => c.text("description", v, 0, MAX_DESCRIPTION_CHARS),
            None => Some(String::new()),
        };
        let url = match present(obj, "url") {
            Some(v) => c.parsed::<HttpUrl>("url", v),
            None => {
                c.fail("url", "is required");
                None
            }
        };
        let version = match present(obj, "version") {
            Some(v) => c.parsed::<Version>("version", v),
            None => {
                c.fail("version", "is required");
                None
            }
        };
        let health_url = match present(obj, "healthUrl") {
            Some(v) => c.parsed::<HttpUrl>("healthUrl", v).map(Some),
            None => Some(None),
        };
        let tags = match present(obj, "tags") {
            Some(v) => parse_tags(&mut c, v),
            None => Some(Vec::new()),
        };
        let auth = match present(obj, "auth") {
            Some(v) => parse_auth(&mut c, v),
            None => Some(AuthSpec::default()),
        };
        let metadata = match present(obj, "metadata") {
            Some(Value::Object(m)) => {
                let size = serde_json::to_string(m).map_or(usize::MAX, |s| s.len());
                if size > MAX_METADATA_BYTES {
                    c.fail(
                        "metadata",
                        format!("must be at most {MAX_METADATA_BYTES} bytes as JSON, got {size}"),
                    );
                    None
                } else if m.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)) {
                    c.fail("metadata", NUL_MESSAGE);
                    None
                } else {
                    Some(m.clone())
                }
            }
            Some(other) => {
                c.fail(
                    "metadata",
                    format!("must be an object, got {}", kind(other)),
                );
                None
            }
            None => Some(Map::new()),
        };

        let health_check = match present(obj, "healthCheck") {
            Some(v) => parse_health_check(&mut c, v),
            None => Some(HealthCheckMode::Auto),
        };
        let ttl_seconds = match present(obj, "ttlSeconds") {
            Some(v) => match v.as_u64() {
                Some(n) if TTL_SECONDS.contains(&n) => Some(u32::try_from(n).ok()),
                _ => {
                    c.fail(
                        "ttlSeconds",
                        format!(
                            "must be an integer from {} to {}, got {v}",
                            TTL_SECONDS.start(),
                            TTL_SECONDS.end()
                        ),
                    );
                    None
                }
            },
            None => Some(None),
        };
        if health_check == Some(HealthCheckMode::Ttl) && ttl_seconds == Some(None) {
            c.fail("ttlSeconds", "is required when healthCheck.mode is \"ttl\"");
        }
        if health_check == Some(HealthCheckMode::Http) && health_url == Some(None) {
            c.fail("healthUrl", "is required when healthCheck.mode is \"http\"");
        }

        match (
            (id, service),
            name,
            description,
            url,
            version,
            tags,
            auth,
            health_url,
            metadata,
            health_check,
            ttl_seconds,
        ) {
            (
                (Some(id), Some(service)),
                Some(name),
                Some(description),
                Some(url),
                Some(version),
                Some(tags),
                Some(auth),
                Some(health_url),
                Some(metadata),
                Some(health_check),
                Some(ttl_seconds),
            ) if c.errors.is_empty() => Ok(Self {
                id,
                service,
                name,
                description,
                url,
                version,
                tags,
                auth,
                health_url,
                metadata,
                health_check,
                ttl_seconds,
                updated_by: None,
            }),
            _ => Err(ValidationErrors(c.errors)),
        }
    }
}

fn parse_tags(c: &mut Check, v: &Value) -> Option<Vec<Tag>> {
    let Value::Array(items) = v else {
        c.fail(
            "tags",
            format!("must be an array of strings, got {}", kind(v)),
        );
        return None;
    };
    if items.len() > MAX_TAGS {
        c.fail(
            "tags",
            format!("must have at most {MAX_TAGS} tags, got {}", items.len()),
        );
        return None;
    }
    let before = c.errors.len();
    let mut tags: Vec<Tag> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("tags[{i}]");
        if let Some(tag) = c.parsed::<Tag>(&field, item) {
            if tags.contains(&tag) {
                c.fail(&field, format!("duplicate tag {:?}", tag.as_str()));
            } else {
                tags.push(tag);
            }
        }
    }
    (c.errors.len() == before).then_some(tags)
}

fn parse_health_check(c: &mut Check, v: &Value) -> Option<HealthCheckMode> {
    let Value::Object(obj) = v else {
        c.fail("healthCheck", format!("must be an object, got {}", kind(v)));
        return None;
    };
    let before = c.errors.len();
    for key in obj.keys().filter(|k| *k != "mode") {
        c.fail(&format!("healthCheck.{key}"), "unknown field");
    }
    let mode = match present(obj, "mode") {
        Some(v) => c.parsed::<HealthCheckMode>("healthCheck.mode", v),
        None => Some(HealthCheckMode::Auto),
    };
    (c.errors.len() == before).then_some(mode).flatten()
}

fn parse_auth(c: &mut Check, v: &Value) -> Option<AuthSpec> {
    let Value::Object(obj) = v else {
        c.fail("auth", format!("must be an object, got {}", kind(v)));
        return None;
    };
    let before = c.errors.len();
    for key in obj.keys() {
        if key != "type" && key != "tokenEndpoint" {
            c.fail(&format!("auth.{key}"), "unknown field");
        }
    }
    let kind = match present(obj, "type") {
        Some(v) => c.parsed::<AuthType>("auth.type", v),
        None => {
            c.fail("auth.type", "is required");
            None
        }
    };
    let endpoint = present(obj, "tokenEndpoint");
    let token_endpoint = match (kind, endpoint) {
        (Some(AuthType::Oauth2), Some(v)) => c.parsed::<HttpUrl>("auth.tokenEndpoint", v),
        (Some(AuthType::Oauth2), None) => {
            c.fail(
                "auth.tokenEndpoint",
                "is required when auth.type is \"oauth2\"",
            );
            None
        }
        (Some(t), Some(_)) => {
            c.fail(
                "auth.tokenEndpoint",
                format!(
                    "is only allowed when auth.type is \"oauth2\", not {:?}",
                    t.as_str()
                ),
            );
            None
        }
        _ => None,
    };
    let kind = kind?;
    (c.errors.len() == before).then_some(AuthSpec {
        kind,
        token_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed_body() -> Value {
        json!({
            "id": "product-catalog",
            "name": "Product Catalog",
            "description": "Search products",
            "url": "http://127.0.0.1:3001",
            "version": "1.2.0",
            "tags": ["products", "catalog"],
            "auth": {"type": "none"},
            "healthUrl": "http://127.0.0.1:3001/health",
            "lastSeen": "2024-01-01T00:00:00.000Z",
            "status": "down"
        })
    }

    #[test]
    fn accepts_a_seed_body_and_ignores_registry_fields() {
        let r = Registration::from_json(&seed_body(), None).expect("valid");
        assert_eq!(r.id.as_str(), "product-catalog");
        assert_eq!(r.service, r.id, "the service defaults to the id");
        assert_eq!(r.tags.len(), 2);
        assert_eq!(r.auth.kind, AuthType::None);
    }

    #[test]
    fn minimal_body_gets_defaults() {
        let body = json!({"id": "a", "name": "A", "url": "https://a.example", "version": "0.1.0"});
        let r = Registration::from_json(&body, None).expect("valid");
        assert!(r.tags.is_empty());
        assert_eq!(r.description, "");
        assert_eq!(r.auth, AuthSpec::default());
        assert!(r.metadata.is_empty());
    }

    /// One row per violation: (what to change, expected field).
    #[test]
    fn each_violation_names_its_field() {
        let rows: Vec<(&str, Value, &str)> = vec![
            ("id", json!("Bad_Id"), "id"),
            ("id", json!(7), "id"),
            ("service", json!("Catalog"), "service"),
            ("service", json!("-catalog"), "service"),
            ("service", json!("x".repeat(65)), "service"),
            ("service", json!(3), "service"),
            ("name", json!(""), "name"),
            ("name", json!("x".repeat(201)), "name"),
            ("description", json!("x".repeat(2001)), "description"),
            ("url", json!("ftp://x"), "url"),
            ("url", json!("http://u:p@h"), "url"),
            ("url", json!("http://10.0.0.5\\@169.254.169.254/"), "url"),
            (
                "healthUrl",
                json!("http://127.0.0.1\\@169.254.169.254/h"),
                "healthUrl",
            ),
            ("healthUrl", json!("http://h/#x"), "healthUrl"),
            ("version", json!("latest"), "version"),
            ("version", json!("^1.0.0"), "version"),
            ("tags", json!("products"), "tags"),
            ("tags", json!(["ok", "Bad"]), "tags[1]"),
            ("tags", json!(["a", "a"]), "tags[1]"),
            (
                "tags",
                json!((0..33).map(|i| format!("t{i}")).collect::<Vec<_>>()),
                "tags",
            ),
            ("auth", json!({"type": "basic"}), "auth.type"),
            ("auth", json!({"type": "oauth2"}), "auth.tokenEndpoint"),
            (
                "auth",
                json!({"type": "bearer", "tokenEndpoint": "https://t"}),
                "auth.tokenEndpoint",
            ),
            ("auth", json!({"type": "none", "x": 1}), "auth.x"),
            ("metadata", json!([1]), "metadata"),
            ("metadata", json!({"k": "v".repeat(9000)}), "metadata"),
            ("metadata", json!({"k": [{"n": "a\u{0}b"}]}), "metadata"),
            ("metadata", json!({"a\u{0}": 1}), "metadata"),
            ("name", json!("a\u{0}b"), "name"),
            ("description", json!("\u{0}"), "description"),
            ("url", json!("http://h/a\u{0}b"), "url"),
            ("healthUrl", json!("http://h/\r\nX: y"), "healthUrl"),
            ("color", json!("blue"), "color"),
            ("healthCheck", json!({"mode": "tcp"}), "healthCheck.mode"),
            ("healthCheck", json!("ttl"), "healthCheck"),
            ("healthCheck", json!({"mode": "ttl"}), "ttlSeconds"),
            ("ttlSeconds", json!(4), "ttlSeconds"),
            ("ttlSeconds", json!(86_401), "ttlSeconds"),
            ("ttlSeconds", json!("30"), "ttlSeconds"),
        ];
        for (key, value, field) in rows {
            let mut body = seed_body();
            body[key] = value;
            let err = Registration::from_json(&body, None).expect_err(key);
            assert_eq!(err.fields(), vec![field], "{key}: {err}");
        }
    }

    /// Found by the round-trip property test: the health fields added to entries after the
    /// seed's four made an echoed entry (`GET` then `PUT`) fail as unknown fields.
    #[test]
    fn accepts_an_echoed_entry() {
        let reg = Registration::from_json(&seed_body(), None).expect("valid");
        let now = "2024-01-02T03:04:05.678Z".parse().expect("time");
        let entry = serde_json::to_value(crate::Entry::new(reg.clone(), now)).expect("render");
        for field in REGISTRY_OWNED {
            assert!(entry.get(field).is_some(), "entries render {field}");
        }
        assert_eq!(Registration::from_json(&entry, None), Ok(reg));
    }

    #[test]
    fn a_service_groups_entries() {
        let mut body = seed_body();
        body["service"] = json!("catalog");
        let r = Registration::from_json(&body, None).expect("valid");
        assert_eq!(r.service.as_str(), "catalog");
        assert_eq!(r.id.as_str(), "product-catalog");
    }

    #[test]
    fn path_id_wins_only_when_body_agrees() {
        let path: ServerId = "product-catalog".parse().expect("id");
        let mut body = seed_body();
        assert!(Registration::from_json(&body, Some(&path)).is_ok());
        body.as_object_mut().expect("object").remove("id");
        assert!(Registration::from_json(&body, Some(&path)).is_ok());
        body["id"] = json!("other");
        let err = Registration::from_json(&body, Some(&path)).expect_err("mismatch");
        assert_eq!(err.fields(), vec!["id"]);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = Registration::from_json(&json!({"tags": 1}), None).expect_err("invalid");
        assert_eq!(err.fields(), vec!["id", "name", "url", "version", "tags"]);
    }
}
