//! Property tests of registration parsing: valid bodies are accepted and survive the entry
//! rendering, every per-field mutation is rejected naming its field, nothing panics.
//!
//! Each property runs proptest's default 256 cases; `PROPTEST_CASES=100000 cargo test -p
//! mcp-fleet-model --test properties` runs longer. A failing case is shrunk and saved under
//! `proptest-regressions/`, which is meant to be committed.
//!
//! Over 500 lines: one property per rule of registration parsing, with the generators they share.

use mcp_fleet_model::{
    Entry, HttpUrl, MAX_METADATA_BYTES, MAX_TAGS, REGISTRATION_FIELDS, REGISTRY_OWNED,
    Registration, ServerId, TTL_SECONDS, Timestamp,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// A valid server id.
fn id() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?"
}

/// A valid tag.
fn tag() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,63}"
}

/// A valid `http`/`https` URL: DNS names, IPv4 and IPv6 hosts, ports, paths, queries.
fn url() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        // No label starts with `x`: `xn--…` would be punycode, which has rules of its own.
        "([a-w0-9]([a-z0-9-]{0,10}[a-z0-9])?\\.){0,3}[a-w]{2,6}",
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        Just("[::1]".to_owned()),
        Just("[2001:db8::17]".to_owned()),
    ];
    (
        prop_oneof!["http", "https", "HTTP"],
        host,
        proptest::option::of(0u16..),
        "(/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,8}){0,3}",
        "(\\?[a-z]{1,4}=[a-zA-Z0-9]{0,6}(&[a-z]{1,4}=[a-z0-9]{0,4})?)?",
    )
        .prop_map(|(scheme, host, port, path, query)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{host}{port}{path}{query}")
        })
}

/// A semver identifier of a pre-release: numeric without leading zeros, or alphanumeric.
fn pre_ident() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        "[a-zA-Z-][0-9a-zA-Z-]{0,6}",
    ]
}

/// A semantic version, with optional pre-release and build metadata.
fn version() -> impl Strategy<Value = String> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(pre_ident(), 0..3),
        proptest::collection::vec("[0-9a-zA-Z-]{1,6}", 0..3),
    )
        .prop_map(|(major, minor, patch, pre, build)| {
            let mut v = format!("{major}.{minor}.{patch}");
            if !pre.is_empty() {
                v = format!("{v}-{}", pre.join("."));
            }
            if !build.is_empty() {
                v = format!("{v}+{}", build.join("."));
            }
            v
        })
}

/// Any JSON value, nested a few levels; strings hold any character (NUL, quotes, RTL, emoji).
fn json_value() -> impl Strategy<Value = Value> {
    json_value_of(any::<String>().boxed())
}

/// Any character but U+0000, which PostgreSQL cannot store (so free text refuses it).
fn text() -> BoxedStrategy<String> {
    "[^\\x00]{0,16}".boxed()
}

/// Any JSON value whose strings (keys too) come from `strings`.
fn json_value_of(strings: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    let keys = strings.clone();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        strings.prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// How an optional field that is not given is written: left out, or `null`.
#[derive(Debug, Clone, Copy)]
enum Presence {
    Absent,
    Null,
}

/// A generated valid body and the values it must parse to.
#[derive(Debug, Clone)]
struct Valid {
    body: Value,
    id: String,
    name: String,
    tags: Vec<String>,
}

/// Puts `value` at `key` or, when it is `None`, leaves the key out or writes `null`.
fn put(obj: &mut Map<String, Value>, key: &str, value: Option<Value>, absent: Presence) {
    match (value, absent) {
        (Some(v), _) => {
            obj.insert(key.to_owned(), v);
        }
        (None, Presence::Null) => {
            obj.insert(key.to_owned(), Value::Null);
        }
        (None, Presence::Absent) => {}
    }
}

/// Every valid shape of a registration body.
fn valid() -> impl Strategy<Value = Valid> {
    let presence = prop_oneof![Just(Presence::Absent), Just(Presence::Null)];
    let auth = prop_oneof![
        Just(None),
        Just(Some(json!({"type": "none"}))),
        Just(Some(json!({"type": "bearer"}))),
        url().prop_map(|u| Some(json!({"type": "oauth2", "tokenEndpoint": u}))),
    ];
    let mode = proptest::option::of(prop_oneof!["auto", "http", "mcp", "ttl", "none"]);
    let owned = proptest::option::of(json_value());
    (
        (
            id(),
            "[^\\s\\x00]\\PC{0,120}",
            proptest::option::of("[^\\x00]{0,200}"),
            url(),
            version(),
        ),
        (
            proptest::collection::vec(tag(), 0..=MAX_TAGS),
            auth,
            proptest::option::of(url()),
            proptest::option::of(proptest::collection::btree_map(
                text(),
                json_value_of(text()),
                0..6,
            )),
        ),
        (
            mode,
            proptest::option::of(TTL_SECONDS),
            owned,
            presence,
            url(),
        ),
    )
        .prop_map(
            |(
                (id, name, description, url, version),
                (mut tags, auth, health_url, metadata),
                (mode, ttl, owned, presence, fallback_url),
            )| {
                let mut seen = std::collections::HashSet::new();
                tags.retain(|t| seen.insert(t.clone()));
                // `ttl` needs `ttlSeconds` and `http` a `healthUrl`: give them what they need.
                let ttl = match (mode.as_deref(), ttl) {
                    (Some("ttl"), None) => Some(*TTL_SECONDS.start()),
                    (_, t) => t,
                };
                let health_url = match (mode.as_deref(), health_url) {
                    (Some("http"), None) => Some(fallback_url),
                    (_, h) => h,
                };
                let mut obj = Map::new();
                obj.insert("id".into(), json!(id));
                obj.insert("name".into(), json!(name));
                put(
                    &mut obj,
                    "description",
                    description.map(Value::from),
                    presence,
                );
                obj.insert("url".into(), json!(url));
                obj.insert("version".into(), json!(version));
                obj.insert("tags".into(), json!(tags));
                put(&mut obj, "auth", auth, presence);
                put(&mut obj, "healthUrl", health_url.map(Value::from), presence);
                let metadata = metadata.map(|m| Value::Object(m.into_iter().collect()));
                let metadata = metadata.filter(|m| m.to_string().len() <= MAX_METADATA_BYTES);
                put(&mut obj, "metadata", metadata, presence);
                put(
                    &mut obj,
                    "healthCheck",
                    mode.map(|m| json!({"mode": m})),
                    presence,
                );
                put(&mut obj, "ttlSeconds", ttl.map(Value::from), presence);
                // Fields the registry owns are accepted whatever they hold, and ignored.
                if let Some(v) = owned {
                    obj.insert("status".into(), v.clone());
                    obj.insert("lastSeen".into(), v);
                }
                Valid {
                    body: Value::Object(obj),
                    id,
                    name,
                    tags,
                }
            },
        )
}

/// The body with `key` set to `value`.
fn with(body: &Value, key: &str, value: Value) -> Value {
    let mut body = body.clone();
    body[key] = value;
    body
}

/// A JSON value that is not a string.
fn not_string() -> impl Strategy<Value = Value> {
    json_value().prop_filter("not a string", |v| !v.is_string() && !v.is_null())
}

/// A string that is not a valid `http`/`https` URL.
fn bad_url() -> BoxedStrategy<Value> {
    prop_oneof![
        url().prop_map(|u| format!("ftp{}", &u[u.find(':').unwrap_or(0)..])),
        url().prop_map(|u| u.replacen("://", "://user:pw@", 1)),
        url().prop_map(|u| format!("{u}#frag")),
        url().prop_map(|u| format!(" {u}")),
        (url(), "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]").prop_map(|(u, c)| format!("{u}/{c}")),
        url().prop_map(|u| format!("{u}/{}", "a".repeat(2048))),
        "/[a-z]{0,8}".prop_map(String::from),
        Just("javascript:alert(1)".to_owned()),
        Just("file:///etc/passwd".to_owned()),
        Just("http://".to_owned()),
        Just(String::new()),
    ]
    .prop_map(Value::from)
    .boxed()
    .prop_union(not_string().boxed())
    .boxed()
}

/// One invalid value for a top-level field, and the field the error must name.
fn mutation() -> impl Strategy<Value = (String, Value, String)> {
    let field = |key: &'static str, values: BoxedStrategy<Value>| {
        values.prop_map(move |v| (key.to_owned(), v, key.to_owned()))
    };
    let bad_id = prop_oneof![
        Just(String::new()),
        "[a-z0-9]{65,80}",
        "-[a-z0-9]{0,5}",
        "[a-z0-9]{1,5}-",
        "[a-z0-9]{0,4}[A-Z_. /%\\x00'<>][a-z0-9]{0,4}",
        "\\PC{0,3}[^a-z0-9-]\\PC{0,3}",
    ]
    .prop_map(Value::from)
    .boxed()
    .prop_union(not_string().boxed())
    .boxed();
    let bad_name = prop_oneof![
        Just(String::new()),
        "\\s{1,5}",
        "x{201,230}",
        "é{201,210}",
        "[a-z]{0,5}\\x00\\PC{0,5}"
    ]
    .prop_map(Value::from)
    .boxed()
    .prop_union(not_string().boxed())
    .boxed();
    let bad_description = prop_oneof!["x{2001,2010}", ".{0,5}\\x00.{0,5}"]
        .prop_map(Value::from)
        .boxed()
        .prop_union(not_string().boxed())
        .boxed();
    let bad_version = prop_oneof![
        version().prop_map(|v| format!("v{v}")),
        version().prop_map(|v| format!("^{v}")),
        version().prop_map(|v| format!(">={v}")),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| format!("{a}.{b}")),
        (1u32..100, any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| format!("0{a}.{b}.{c}")),
        Just("latest".to_owned()),
        Just("*".to_owned()),
        Just(String::new()),
    ]
    .prop_map(Value::from)
    .boxed()
    .prop_union(not_string().boxed())
    .boxed();
    let bad_metadata = prop_oneof![
        json_value().prop_filter("not an object", |v| !v.is_object() && !v.is_null()),
        "x{8200,8300}".prop_map(|s| json!({ "k": s })),
        ".{0,4}\\x00.{0,4}".prop_map(|s| json!({ "k": [{ "deep": s }] })),
        ".{0,4}\\x00.{0,4}".prop_map(|s| json!({ s: 1 })),
    ]
    .boxed();
    let bad_ttl = prop_oneof![
        (0..*TTL_SECONDS.start()).prop_map(Value::from),
        (*TTL_SECONDS.end() + 1..).prop_map(Value::from),
        (i64::MIN..0).prop_map(Value::from),
        (5.5f64..100.0).prop_map(Value::from),
        TTL_SECONDS.prop_map(|n| Value::from(n.to_string())),
    ]
    .boxed();
    let unknown = "[a-zA-Z_]{1,12}"
        .prop_filter("not a known field", |k| {
            !REGISTRATION_FIELDS.contains(&k.as_str()) && !REGISTRY_OWNED.contains(&k.as_str())
        })
        .prop_map(|k| (k.clone(), json!(1), k));
    prop_oneof![
        field("id", bad_id),
        field("name", bad_name),
        field("description", bad_description),
        field("url", bad_url()),
        field("healthUrl", bad_url()),
        field("version", bad_version),
        field("metadata", bad_metadata),
        field("ttlSeconds", bad_ttl),
        not_string()
            .prop_filter("not an array", |v| !v.is_array())
            .prop_map(|v| ("tags".to_owned(), v, "tags".to_owned())),
        not_string()
            .prop_filter("not an object", |v| !v.is_object())
            .prop_map(|v| ("auth".to_owned(), v, "auth".to_owned())),
        "[a-z]{1,8}"
            .prop_filter("not a scheme", |t| !matches!(
                t.as_str(),
                "none" | "bearer" | "oauth2"
            ))
            .prop_map(|t| (
                "auth".to_owned(),
                json!({ "type": t }),
                "auth.type".to_owned()
            )),
        Just((
            "auth".to_owned(),
            json!({"type": "oauth2"}),
            "auth.tokenEndpoint".to_owned()
        )),
        url().prop_map(|u| (
            "auth".to_owned(),
            json!({"type": "oauth2", "tokenEndpoint": format!("{u}#x")}),
            "auth.tokenEndpoint".to_owned()
        )),
        url().prop_map(|u| (
            "auth".to_owned(),
            json!({"type": "bearer", "tokenEndpoint": u}),
            "auth.tokenEndpoint".to_owned()
        )),
        "[a-zA-Z]{1,8}"
            .prop_filter("not a known key", |k| k != "type" && k != "tokenEndpoint")
            .prop_map(|k| (
                "auth".to_owned(),
                json!({"type": "none", &k: 1}),
                format!("auth.{k}")
            )),
        not_string()
            .prop_filter("not an object", |v| !v.is_object())
            .prop_map(|v| ("healthCheck".to_owned(), v, "healthCheck".to_owned())),
        "[a-z]{1,8}"
            .prop_filter("not a mode", |m| {
                !matches!(m.as_str(), "auto" | "http" | "mcp" | "ttl" | "none")
            })
            .prop_map(|m| (
                "healthCheck".to_owned(),
                json!({ "mode": m }),
                "healthCheck.mode".to_owned()
            )),
        unknown,
    ]
}

/// The entry the registry would store for `reg`, rendered as the store renders it.
fn rendered(reg: &Registration) -> Value {
    let now: Timestamp = "2024-05-06T07:08:09.123Z".parse().expect("timestamp");
    let entry = Entry::new(reg.clone(), now);
    let text = serde_json::to_string(&entry).expect("entries render");
    let back: Entry = serde_json::from_str(&text).expect("rendered entries read back");
    assert_eq!(back, entry, "entry round trip");
    serde_json::from_str(&text).expect("rendered entries are JSON")
}

proptest! {
    /// Every valid body is accepted with its values, and the stored entry's rendering, sent
    /// back as a body (a client echoing what it read), parses to the same registration.
    #[test]
    fn valid_bodies_are_accepted_and_round_trip(v in valid()) {
        let reg = Registration::from_json(&v.body, None)
            .map_err(|e| TestCaseError::fail(format!("rejected {}: {e}", v.body)))?;
        prop_assert_eq!(reg.id.as_str(), v.id.as_str());
        prop_assert_eq!(&reg.name, &v.name);
        let tags: Vec<&str> = reg.tags.iter().map(|t| t.as_str()).collect();
        prop_assert_eq!(tags, v.tags.iter().map(String::as_str).collect::<Vec<_>>());

        let echoed = rendered(&reg);
        let again = Registration::from_json(&echoed, None)
            .map_err(|e| TestCaseError::fail(format!("echo rejected {echoed}: {e}")))?;
        prop_assert_eq!(&again, &reg);
        // As the body of `PUT /servers/{id}`, with and without its own `id`.
        let path: ServerId = v.id.parse().expect("valid id");
        let put = Registration::from_json(&echoed, Some(&path));
        prop_assert_eq!(put.as_ref(), Ok(&reg));
        let mut no_id = echoed.clone();
        no_id.as_object_mut().expect("object").remove("id");
        let put = Registration::from_json(&no_id, Some(&path));
        prop_assert_eq!(put.as_ref(), Ok(&reg));
    }

    /// One bad value in an otherwise valid body is rejected, naming exactly that field.
    #[test]
    fn each_bad_field_is_rejected_by_name(v in valid(), (key, value, field) in mutation()) {
        let body = with(&v.body, &key, value);
        match Registration::from_json(&body, None) {
            Ok(reg) => prop_assert!(false, "accepted {body} as {reg:?}"),
            Err(e) => prop_assert_eq!(e.fields(), vec![field.as_str()], "{}", e),
        }
    }

    /// A bad tag at any position is named by its index.
    #[test]
    fn a_bad_tag_is_named_by_index(
        v in valid(),
        bad in "[A-Z._ -][a-z]{0,4}|[a-z]{65,70}|",
        at in any::<prop::sample::Index>(),
    ) {
        prop_assume!(v.tags.len() < MAX_TAGS);
        let mut tags = v.tags.clone();
        let i = at.index(tags.len() + 1);
        tags.insert(i, bad);
        let body = with(&v.body, "tags", json!(tags));
        let err = Registration::from_json(&body, None).expect_err("bad tag");
        prop_assert_eq!(err.fields(), vec![format!("tags[{i}]")]);
    }

    /// A repeated tag is named by the index of its second appearance; one tag too many names
    /// `tags`.
    #[test]
    fn duplicate_and_surplus_tags_are_rejected(v in valid(), at in any::<prop::sample::Index>()) {
        if !v.tags.is_empty() && v.tags.len() < MAX_TAGS {
            let mut tags = v.tags.clone();
            tags.push(v.tags[at.index(v.tags.len())].clone());
            let body = with(&v.body, "tags", json!(tags));
            let err = Registration::from_json(&body, None).expect_err("duplicate");
            prop_assert_eq!(err.fields(), vec![format!("tags[{}]", v.tags.len())]);
        }
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        let err = Registration::from_json(&with(&v.body, "tags", json!(many)), None)
            .expect_err("too many");
        prop_assert_eq!(err.fields(), vec!["tags"]);
    }

    /// Any JSON value at all is answered with a registration or a non-empty list of errors.
    #[test]
    fn arbitrary_json_never_panics(body in json_value()) {
        check_any(&body);
    }

    /// URL-like text made of the characters parsers disagree on never panics; what is
    /// accepted is kept in a normal form that reads back as itself, and a stored URL (read
    /// leniently) always normalizes to text the strict check accepts or refuses, never panics.
    #[test]
    fn url_authorities_never_panic_and_accepted_urls_are_fixed_points(
        s in "(https?|HTTP|http):(//)?[a-zA-Z0-9.:@\\\\%\\[\\]_\\-]{0,24}(/[a-z@\\\\]{0,4})?(\\?[a-z=]{0,4})?",
    ) {
        if let Ok(u) = s.parse::<HttpUrl>() {
            let again: HttpUrl = u.as_str().parse().expect("the normal form parses");
            prop_assert_eq!(again.as_str(), u.as_str());
            let rest = u.as_str().split_once("://").map_or("", |(_, rest)| rest);
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            prop_assert!(!authority.contains(['@', '\\']), "{}", u.as_str());
        }
        if let Ok(stored) = HttpUrl::from_stored(&s) {
            let _ = stored.as_str().parse::<HttpUrl>();
        }
    }

    /// Objects with the real keys holding anything, which get further into the checks.
    #[test]
    fn arbitrary_values_in_known_fields_never_panic(
        fields in proptest::collection::btree_map(
            prop_oneof![
                Just("id"), Just("name"), Just("description"), Just("url"), Just("version"),
                Just("tags"), Just("auth"), Just("healthUrl"), Just("metadata"),
                Just("healthCheck"), Just("ttlSeconds"), Just("status"),
            ].prop_map(str::to_owned),
            json_value(),
            0..12,
        ),
    ) {
        check_any(&Value::Object(fields.into_iter().collect()));
    }
}

/// Parses `body` with and without a path id: errors are never empty, and anything accepted
/// round-trips through its rendering.
fn check_any(body: &Value) {
    let path: ServerId = "path-id".parse().expect("id");
    for path in [None, Some(&path)] {
        match Registration::from_json(body, path) {
            Ok(reg) => {
                let echoed = rendered(&reg);
                assert_eq!(Registration::from_json(&echoed, path).as_ref(), Ok(&reg));
            }
            Err(e) => assert!(!e.0.is_empty(), "empty errors for {body}"),
        }
    }
}

/// Found by `valid_bodies_are_accepted_and_round_trip`: without serde_json's
/// `float_roundtrip`, this number read back one ULP off, so a stored entry's metadata changed.
#[test]
fn metadata_floats_read_back_exactly() {
    for f in [-5.183097882137787e-156, 0.1, 1e308, 5e-324, -0.0] {
        let body = json!({"id": "f", "name": "F", "url": "http://f", "version": "1.0.0",
            "metadata": {"f": f}});
        let reg = Registration::from_json(&body, None).expect("valid");
        let echoed = rendered(&reg);
        assert_eq!(echoed["metadata"]["f"].as_f64(), Some(f), "{f:e}");
    }
}
