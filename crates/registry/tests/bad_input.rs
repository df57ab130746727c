//! Bad input, one table row per case: every mistake gets a 4xx problem+json naming its field,
//! and none of it is stored, on every backend.
//!
//! Over 500 lines: a corpus, one row per bad input, each row read on its own.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, TestRegistry};

/// The id the near-valid bodies use, and the path of the `PUT` rows.
const ID: &str = "bad-input";
const JSON: Option<&str> = Some("application/json");

/// What a row sends as its body.
enum Body {
    /// No body at all.
    None,
    /// Exactly these bytes.
    Raw(Vec<u8>),
    /// This value, serialised compactly.
    Json(Value),
}

/// One bad request and what the registry must answer.
struct Row {
    desc: String,
    method: Method,
    /// Path and query, from the root.
    path: String,
    body: Body,
    content_type: Option<&'static str>,
    status: u16,
    /// The `errors[].field` the problem must name; `None` when the problem has no `errors`.
    field: Option<String>,
}

fn row(
    desc: impl Into<String>,
    method: Method,
    path: impl Into<String>,
    body: Body,
    content_type: Option<&'static str>,
    status: u16,
    field: Option<&str>,
) -> Row {
    Row {
        desc: desc.into(),
        method,
        path: path.into(),
        body,
        content_type,
        status,
        field: field.map(str::to_owned),
    }
}

/// The valid body every field row starts from.
fn valid() -> Value {
    common::seed_body(ID, &["products", "catalog"])
}

/// The valid body with `key` set to `value`.
fn with(key: &str, value: Value) -> Value {
    let mut body = valid();
    body[key] = value;
    body
}

/// The valid body without `key`.
fn without(key: &str) -> Value {
    let mut body = valid();
    body.as_object_mut().expect("object").remove(key);
    body
}

/// `POST /servers` of a JSON body that must fail validation on `field`.
fn post_field(desc: &str, body: Value, field: &str) -> Row {
    row(
        format!("POST {desc}"),
        Method::POST,
        "/servers",
        Body::Json(body),
        JSON,
        400,
        Some(field),
    )
}

/// `POST /servers` of raw bytes.
fn post_raw(desc: &str, bytes: impl Into<Vec<u8>>, ct: Option<&'static str>, status: u16) -> Row {
    row(
        format!("POST {desc}"),
        Method::POST,
        "/servers",
        Body::Raw(bytes.into()),
        ct,
        status,
        None,
    )
}

/// `GET /servers?{query}` that must fail on `field`.
fn list_query(query: &str, field: &str) -> Row {
    row(
        format!("GET /servers?{query}"),
        Method::GET,
        format!("/servers?{query}"),
        Body::None,
        None,
        400,
        Some(field),
    )
}

/// A request to `/servers/{raw_id}` whose path id is invalid.
fn bad_path_id(method: Method, raw_id: &str, what: &str) -> Row {
    let (body, ct) = if method == Method::PUT {
        (Body::Json(valid()), JSON)
    } else {
        (Body::None, None)
    };
    row(
        format!("{method} /servers/{{{what}}}"),
        method,
        format!("/servers/{raw_id}"),
        body,
        ct,
        400,
        Some("id"),
    )
}

/// A JSON body over the default 64 KiB limit, valid in every other way.
fn oversized() -> Vec<u8> {
    let body = with("metadata", json!({"pad": "x".repeat(64 * 1024)}));
    let bytes = serde_json::to_vec(&body).expect("serialise");
    assert!(bytes.len() > mcp_fleet_registry::DEFAULT_MAX_BODY_BYTES);
    bytes
}

fn rows() -> Vec<Row> {
    let s = |v: &str| json!(v);
    let long_id = "a".repeat(65);
    let many_tags: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let nested_in_metadata = format!(
        r#"{{"id":"{ID}","name":"N","url":"http://127.0.0.1:3001","version":"1.0.0","metadata":{{"deep":{nested}}}}}"#
    );

    let mut rows = vec![
        // id
        post_field("id empty", with("id", s("")), "id"),
        post_field("id uppercase", with("id", s("Bad-Id")), "id"),
        post_field("id with underscore", with("id", s("bad_id")), "id"),
        post_field("id leading dash", with("id", s("-bad")), "id"),
        post_field("id trailing dash", with("id", s("bad-")), "id"),
        post_field("id 65 chars", with("id", json!(long_id)), "id"),
        post_field("id a number", with("id", json!(7)), "id"),
        post_field("id missing", without("id"), "id"),
        // service
        post_field("service empty", with("service", s("")), "service"),
        post_field(
            "service uppercase",
            with("service", s("Catalog")),
            "service",
        ),
        post_field(
            "service with a dot",
            with("service", s("cat.alog")),
            "service",
        ),
        post_field(
            "service trailing dash",
            with("service", s("catalog-")),
            "service",
        ),
        post_field(
            "service 65 chars",
            with("service", json!(long_id)),
            "service",
        ),
        post_field("service a number", with("service", json!(7)), "service"),
        post_field("service an object", with("service", json!({})), "service"),
        // name
        post_field("name missing", without("name"), "name"),
        post_field("name null", with("name", Value::Null), "name"),
        post_field("name empty", with("name", s("")), "name"),
        post_field("name blank", with("name", s("   ")), "name"),
        post_field(
            "name 201 chars",
            with("name", json!("n".repeat(201))),
            "name",
        ),
        post_field("name a number", with("name", json!(42)), "name"),
        // description
        post_field(
            "description 2001 chars",
            with("description", json!("d".repeat(2001))),
            "description",
        ),
        post_field(
            "description an array",
            with("description", json!(["a"])),
            "description",
        ),
        // url
        post_field("url missing", without("url"), "url"),
        post_field("url relative", with("url", s("/mcp")), "url"),
        post_field("url ftp scheme", with("url", s("ftp://127.0.0.1/x")), "url"),
        post_field(
            "url with credentials",
            with("url", s("http://user:pw@127.0.0.1:3001")),
            "url",
        ),
        post_field(
            "url with fragment",
            with("url", s("http://127.0.0.1:3001/#x")),
            "url",
        ),
        post_field("url not a string", with("url", json!(3001)), "url"),
        post_field("url empty", with("url", s("")), "url"),
        post_field("url without host", with("url", s("http://")), "url"),
        // url: authorities parsers read differently (issue #25)
        post_field(
            "url backslash before @",
            with("url", s("http://10.0.0.5\\@169.254.169.254/")),
            "url",
        ),
        post_field(
            "url backslash in host",
            with("url", s("http://127.0.0.1\\127.0.0.2:3001")),
            "url",
        ),
        post_field(
            "url @ without credentials",
            with("url", s("http://@127.0.0.1:3001")),
            "url",
        ),
        post_field(
            "url backslashes for slashes",
            with("url", s("http:\\\\127.0.0.1:3001")),
            "url",
        ),
        post_field(
            "url without slashes",
            with("url", s("http:127.0.0.1:3001")),
            "url",
        ),
        post_field("url hex IPv4", with("url", s("http://0x7f.1:3001")), "url"),
        post_field("url short IPv4", with("url", s("http://127.1:3001")), "url"),
        post_field(
            "url integer IPv4",
            with("url", s("http://2130706433:3001")),
            "url",
        ),
        post_field(
            "url escaped host",
            with("url", s("http://%31%32%37.0.0.1:3001")),
            "url",
        ),
        post_field(
            "url ideographic dots in host",
            with("url", s("http://127\u{3002}0\u{3002}0\u{3002}1:3001")),
            "url",
        ),
        post_field(
            "url empty port",
            with("url", s("http://127.0.0.1:/")),
            "url",
        ),
        post_field(
            "url IPv6 zone",
            with("url", s("http://[fe80::1%25eth0]:3001")),
            "url",
        ),
        // healthUrl
        post_field(
            "healthUrl relative",
            with("healthUrl", s("/health")),
            "healthUrl",
        ),
        post_field(
            "healthUrl ftp scheme",
            with("healthUrl", s("ftp://127.0.0.1/health")),
            "healthUrl",
        ),
        post_field(
            "healthUrl with credentials",
            with("healthUrl", s("http://u:p@127.0.0.1/health")),
            "healthUrl",
        ),
        post_field(
            "healthUrl with fragment",
            with("healthUrl", s("http://127.0.0.1/health#x")),
            "healthUrl",
        ),
        post_field(
            "healthUrl not a string",
            with("healthUrl", json!({"url": "http://h"})),
            "healthUrl",
        ),
        post_field("healthUrl empty", with("healthUrl", s("")), "healthUrl"),
        post_field(
            "healthUrl without host",
            with("healthUrl", s("https://")),
            "healthUrl",
        ),
        post_field(
            "healthUrl backslash before @",
            with("healthUrl", s("http://127.0.0.1\\@169.254.169.254/health")),
            "healthUrl",
        ),
        post_field(
            "healthUrl userinfo-like @",
            with(
                "healthUrl",
                s("http://127.0.0.1:3001@169.254.169.254/health"),
            ),
            "healthUrl",
        ),
        post_field(
            "healthUrl octal IPv4",
            with("healthUrl", s("http://0177.0.0.1/health")),
            "healthUrl",
        ),
        // version
        post_field("version missing", without("version"), "version"),
        post_field(
            "version \"latest\"",
            with("version", s("latest")),
            "version",
        ),
        post_field(
            "version range ^1.0.0",
            with("version", s("^1.0.0")),
            "version",
        ),
        post_field("version 1.2", with("version", s("1.2")), "version"),
        post_field("version v1.2.3", with("version", s("v1.2.3")), "version"),
        post_field("version a number", with("version", json!(1.2)), "version"),
        // tags
        post_field("tags not an array", with("tags", s("products")), "tags"),
        post_field(
            "tags non-string item",
            with("tags", json!(["ok", 1])),
            "tags[1]",
        ),
        post_field(
            "tags uppercase",
            with("tags", json!(["Products"])),
            "tags[0]",
        ),
        post_field(
            "tags leading dot",
            with("tags", json!(["ok", ".hidden"])),
            "tags[1]",
        ),
        post_field(
            "tags 65-char tag",
            with("tags", json!(["t".repeat(65)])),
            "tags[0]",
        ),
        post_field(
            "tags duplicates",
            with("tags", json!(["a", "b", "a"])),
            "tags[2]",
        ),
        post_field("tags 33 tags", with("tags", json!(many_tags)), "tags"),
        post_field("tags comma inside", with("tags", json!(["a,b"])), "tags[0]"),
        // auth
        post_field("auth not an object", with("auth", s("none")), "auth"),
        post_field("auth missing type", with("auth", json!({})), "auth.type"),
        post_field(
            "auth unknown type",
            with("auth", json!({"type": "basic"})),
            "auth.type",
        ),
        post_field(
            "auth oauth2 without tokenEndpoint",
            with("auth", json!({"type": "oauth2"})),
            "auth.tokenEndpoint",
        ),
        post_field(
            "auth bearer with tokenEndpoint",
            with(
                "auth",
                json!({"type": "bearer", "tokenEndpoint": "https://auth.example/token"}),
            ),
            "auth.tokenEndpoint",
        ),
        post_field(
            "auth oauth2 tokenEndpoint with backslash before @",
            with(
                "auth",
                json!({"type": "oauth2", "tokenEndpoint": "https://auth.example\\@169.254.169.254/t"}),
            ),
            "auth.tokenEndpoint",
        ),
        post_field(
            "auth oauth2 with a bad tokenEndpoint URL",
            with(
                "auth",
                json!({"type": "oauth2", "tokenEndpoint": "not a url"}),
            ),
            "auth.tokenEndpoint",
        ),
        post_field(
            "auth unknown key",
            with("auth", json!({"type": "none", "scope": "read"})),
            "auth.scope",
        ),
        // metadata
        post_field(
            "metadata an array",
            with("metadata", json!([1, 2])),
            "metadata",
        ),
        post_field("metadata a string", with("metadata", s("k=v")), "metadata"),
        post_field(
            "metadata over 8 KiB",
            with("metadata", json!({"k": "v".repeat(9000)})),
            "metadata",
        ),
        // unknown fields
        post_field("unknown top-level field", with("color", s("blue")), "color"),
        post_field(
            "misspelt healthURL",
            with("healthURL", s("http://h/health")),
            "healthURL",
        ),
        // a parseable body that is not an object
        post_field("JSON array body", json!([valid()]), "body"),
        post_field("JSON string body", s("{\"id\":\"x\"}"), "body"),
        post_field("JSON null body", Value::Null, "body"),
        // malformed JSON
        post_raw(
            "truncated JSON",
            &br#"{"id": "bad-input", "name": "#[..],
            JSON,
            400,
        ),
        post_raw(
            "trailing garbage",
            [
                serde_json::to_vec(&valid()).expect("json"),
                b" trailing".to_vec(),
            ]
            .concat(),
            JSON,
            400,
        ),
        post_raw("empty body", Vec::new(), JSON, 400),
        post_raw("not JSON at all", "hello", JSON, 400),
        post_raw("single quotes", r#"{'id': 'bad-input'}"#, JSON, 400),
        post_raw("200 nested arrays", nested.clone(), JSON, 400),
        post_raw(
            "200 nested arrays in metadata",
            nested_in_metadata,
            JSON,
            400,
        ),
        post_raw(
            "invalid UTF-8 in a string",
            [
                &br#"{"id":"bad-input","name":"N"#[..],
                &[0xff, 0xfe],
                &br#""}"#[..],
            ]
            .concat(),
            JSON,
            400,
        ),
        // content type
        post_raw(
            "valid JSON as text/plain",
            serde_json::to_vec(&valid()).expect("json"),
            Some("text/plain"),
            415,
        ),
        post_raw(
            "form-urlencoded",
            "id=bad-input&name=N",
            Some("application/x-www-form-urlencoded"),
            415,
        ),
        post_raw(
            "valid JSON without Content-Type",
            serde_json::to_vec(&valid()).expect("json"),
            None,
            415,
        ),
        post_raw(
            "application/jsonx",
            serde_json::to_vec(&valid()).expect("json"),
            Some("application/jsonx"),
            415,
        ),
        // size
        post_raw("body over 64 KiB", oversized(), JSON, 413),
        row(
            "PUT body over 64 KiB",
            Method::PUT,
            format!("/servers/{ID}"),
            Body::Raw(oversized()),
            JSON,
            413,
            None,
        ),
        // list query parameters
        list_query("tags=Products", "tags"),
        list_query("tags=ok,.bad", "tags"),
        list_query("status=sick", "status"),
        list_query("service=Bad_Service", "service"),
        list_query("limit=0", "limit"),
        list_query("limit=1001", "limit"),
        list_query("limit=abc", "limit"),
        list_query("limit=-1", "limit"),
        list_query("limit=", "limit"),
        list_query("cursor=garbage!", "cursor"),
        // base64url of "Not An Id": decodes, but not to an id.
        list_query("cursor=Tm90IEFuIElk", "cursor"),
        list_query("tag=x", "tag"),
        list_query("status=healthy&status=down", "status"),
        list_query("limit=5&limit=6", "limit"),
        list_query(
            &format!(
                "tags={}",
                (0..33)
                    .map(|i| format!("t{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "tags",
        ),
    ];

    // bad ids in paths
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        rows.push(bad_path_id(method.clone(), "Bad_Id", "Bad_Id"));
        rows.push(bad_path_id(method.clone(), "-x", "-x"));
        rows.push(bad_path_id(method.clone(), &long_id, "65-char id"));
        rows.push(bad_path_id(method.clone(), "a%20b", "a%20b"));
        rows.push(bad_path_id(method, "%FF", "%FF, not UTF-8"));
    }

    // PUT bodies
    let put = |desc: &str, body: Value, field: &str| {
        row(
            format!("PUT {desc}"),
            Method::PUT,
            format!("/servers/{ID}"),
            Body::Json(body),
            JSON,
            400,
            Some(field),
        )
    };
    rows.extend([
        put(
            "body id differs from path id",
            with("id", s("other-id")),
            "id",
        ),
        put("body id invalid", with("id", s("Other")), "id"),
        put(
            "version \"latest\"",
            with("version", s("latest")),
            "version",
        ),
        put("missing url", without("url"), "url"),
        put("unknown field", with("owner", s("team-a")), "owner"),
        put("JSON array body", json!([]), "body"),
        row(
            "PUT malformed JSON",
            Method::PUT,
            format!("/servers/{ID}"),
            Body::Raw(b"{\"id\":".to_vec()),
            JSON,
            400,
            None,
        ),
        row(
            "PUT as text/plain",
            Method::PUT,
            format!("/servers/{ID}"),
            Body::Raw(serde_json::to_vec(&valid()).expect("json")),
            Some("text/plain"),
            415,
            None,
        ),
        row(
            "PUT without Content-Type",
            Method::PUT,
            format!("/servers/{ID}"),
            Body::Raw(serde_json::to_vec(&valid()).expect("json")),
            None,
            415,
            None,
        ),
    ]);

    // wrong routes and methods: still a problem document
    rows.extend([
        row(
            "GET unknown id",
            Method::GET,
            format!("/servers/{ID}"),
            Body::None,
            None,
            404,
            None,
        ),
        row(
            "PUT heartbeat of an unknown id",
            Method::PUT,
            format!("/servers/{ID}/heartbeat"),
            Body::None,
            None,
            404,
            None,
        ),
        row(
            "GET the routing policy of an unknown service",
            Method::GET,
            format!("/services/{ID}/routing"),
            Body::None,
            None,
            404,
            None,
        ),
        row(
            "DELETE the routing policy of an unknown service",
            Method::DELETE,
            format!("/services/{ID}/routing"),
            Body::None,
            None,
            404,
            None,
        ),
        row(
            "DELETE unknown id",
            Method::DELETE,
            format!("/servers/{ID}"),
            Body::None,
            None,
            404,
            None,
        ),
        row(
            "PATCH /servers/{id}",
            Method::PATCH,
            format!("/servers/{ID}"),
            Body::Json(valid()),
            JSON,
            405,
            None,
        ),
        row(
            "DELETE /servers",
            Method::DELETE,
            "/servers",
            Body::None,
            None,
            405,
            None,
        ),
        row(
            "POST to an unknown route",
            Method::POST,
            "/server",
            Body::Json(valid()),
            JSON,
            404,
            None,
        ),
    ]);
    rows
}

/// Sends `row` as raw bytes with exactly its Content-Type; returns status, Content-Type, body.
async fn send(reg: &TestRegistry, row: &Row) -> (u16, Option<String>, Vec<u8>) {
    let mut req = reg
        .http
        .request(row.method.clone(), format!("{}{}", reg.url, row.path));
    if let Some(ct) = row.content_type {
        req = req.header(reqwest::header::CONTENT_TYPE, ct);
    }
    req = match &row.body {
        Body::None => req,
        Body::Raw(bytes) => req.body(bytes.clone()),
        Body::Json(v) => req.body(serde_json::to_vec(v).expect("serialise")),
    };
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("[{}] {}: request failed: {e}", reg.backend, row.desc));
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("<not text>").to_owned());
    let body = res
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("[{}] {}: reading body: {e}", reg.backend, row.desc))
        .to_vec();
    (status, ct, body)
}

/// Checks one answer; returns what is wrong with it.
fn check(row: &Row, status: u16, ct: Option<&str>, body: &[u8]) -> Vec<String> {
    let mut wrong = Vec::new();
    let text = String::from_utf8_lossy(body);
    if status != row.status {
        wrong.push(format!("status {status}, expected {}", row.status));
    }
    if !(400..500).contains(&status) {
        wrong.push(format!("status {status} is not a 4xx"));
    }
    if ct != Some("application/problem+json") {
        wrong.push(format!(
            "Content-Type {ct:?}, expected application/problem+json"
        ));
    }
    let problem: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            wrong.push(format!("body is not JSON ({e}): {text}"));
            return wrong;
        }
    };
    for key in ["type", "title", "detail"] {
        if problem[key].as_str().is_none_or(str::is_empty) {
            wrong.push(format!("`{key}` is not a non-empty string"));
        }
    }
    if problem["status"].as_u64() != Some(u64::from(status)) {
        wrong.push(format!(
            "`status` is {}, the HTTP status is {status}",
            problem["status"]
        ));
    }
    match &row.field {
        Some(field) => {
            let errors = problem["errors"].as_array().map_or(&[][..], Vec::as_slice);
            if !errors.iter().any(|e| e["field"].as_str() == Some(field)) {
                wrong.push(format!("no errors[].field == {field:?}"));
            }
            for e in errors {
                if !(e["field"].is_string() && e["message"].as_str().is_some_and(|m| !m.is_empty()))
                {
                    wrong.push(format!("error entry without field and message: {e}"));
                }
            }
        }
        None => {
            if problem.get("errors").is_some() {
                wrong.push("has `errors`, expected none".to_string());
            }
        }
    }
    if let Some(debug) = rust_debug_text(&text) {
        wrong.push(format!("shows Rust Debug text {debug:?} to the client"));
    }
    if !wrong.is_empty() {
        wrong.push(format!("body: {text}"));
    }
    wrong
}

/// The first trace of a model type's Rust `Debug` form in `text` (`ServerId("x")`,
/// `Version { major: 1, … }`), which no message a person or client reads may hold.
pub(crate) fn rust_debug_text(text: &str) -> Option<&'static str> {
    const DEBUG_FORMS: [&str; 9] = [
        "ServerId(",
        "Tag(",
        "Version(",
        "Version {",
        "HttpUrl(",
        "Url {",
        "IdPattern(",
        "Scope::",
        "Some(",
    ];
    DEBUG_FORMS.into_iter().find(|form| text.contains(form))
}

/// Runs every row against `reg`, then checks nothing was stored; returns one line per failing
/// row (its backend and description first).
async fn run_table(reg: &TestRegistry, rows: &[Row]) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows {
        let (status, ct, body) = send(reg, row).await;
        let wrong = check(row, status, ct.as_deref(), &body);
        if !wrong.is_empty() {
            failures.push(format!(
                "[{}] {} ({} {}): {}",
                reg.backend,
                row.desc,
                row.method,
                row.path,
                wrong.join("; ")
            ));
        }
    }
    let stored = reg.count().await;
    if stored != 0 {
        failures.push(format!(
            "[{}] after all rows: {stored} entries stored, expected none",
            reg.backend
        ));
    }
    failures
}

#[tokio::test]
async fn bad_input_is_a_4xx_problem_and_stores_nothing() {
    let rows = rows();
    assert!(rows.len() >= 70, "only {} rows", rows.len());
    let mut failures = Vec::new();
    let mut backends = Vec::new();
    for reg in common::start_all().await {
        backends.push(reg.backend);
        failures.extend(run_table(&reg, &rows).await);
    }
    assert!(
        failures.is_empty(),
        "{} failures over {} rows on {backends:?}:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// The table's base body and request path are accepted, so its rows fail for their one
/// mistake and not because every request fails.
#[tokio::test]
async fn bad_input_table_base_requests_are_accepted() {
    for reg in common::start_all().await {
        let post = row(
            "POST the valid base body",
            Method::POST,
            "/servers",
            Body::Json(valid()),
            JSON,
            201,
            None,
        );
        let (status, _, body) = send(&reg, &post).await;
        assert_eq!(
            status,
            201,
            "[{}] {}: {}",
            reg.backend,
            post.desc,
            String::from_utf8_lossy(&body)
        );
        assert_eq!(reg.count().await, 1, "[{}] not stored", reg.backend);

        let put = row(
            "PUT the valid base body without id",
            Method::PUT,
            format!("/servers/{ID}"),
            Body::Json(without("id")),
            JSON,
            200,
            None,
        );
        let (status, _, body) = send(&reg, &put).await;
        assert_eq!(
            status,
            200,
            "[{}] {}: {}",
            reg.backend,
            put.desc,
            String::from_utf8_lossy(&body)
        );

        let (status, body) = reg.get("/servers?tags=products&status=any&limit=5").await;
        assert_eq!(status, 200, "[{}] valid query: {body}", reg.backend);
        assert_eq!(body["servers"][0]["id"], ID, "[{}] {body}", reg.backend);
        assert_eq!(reg.count().await, 1, "[{}] one entry", reg.backend);
    }
}

/// Issue #25: the URL the probe found (`http://10.0.0.5\@169.254.169.254/`, host 10.0.0.5 to
/// us and 169.254.169.254 to RFC 3986 parsers) is refused naming its field and stores nothing;
/// an accepted URL is stored and returned in its normalized form, not as sent.
#[tokio::test]
async fn differential_urls_are_refused_and_urls_are_stored_normalized() {
    let reg = common::start_sqlite().await;
    for field in ["url", "healthUrl"] {
        let body = with(field, json!("http://10.0.0.5\\@169.254.169.254/"));
        let res = reg
            .http
            .post(format!("{}/servers", reg.url))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let problem: Value = res.json().await.expect("problem");
        assert_eq!(status, 400, "{field}: {problem}");
        assert_eq!(ct.as_deref(), Some("application/problem+json"));
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert_eq!(
            problem["errors"].as_array().map(Vec::len),
            Some(1),
            "{problem}"
        );
    }
    assert_eq!(reg.count().await, 0, "nothing stored");

    let mut body = valid();
    body["url"] = json!("HTTP://LocalHost:80/a/../mcp");
    body["healthUrl"] = json!("http://127.0.0.1:3001");
    assert_eq!(reg.post(&body).await.0, 201);
    let (_, entry) = reg.get(&format!("/servers/{ID}")).await;
    assert_eq!(entry["url"], "http://localhost/mcp", "{entry}");
    assert_eq!(entry["healthUrl"], "http://127.0.0.1:3001", "{entry}");
    let (_, list) = reg.get("/servers?status=any").await;
    assert_eq!(list["servers"][0]["url"], "http://localhost/mcp", "{list}");
}

/// URLs at denied addresses under the default policy and under `--probe-policy strict`, as
/// `url` and as `healthUrl`: a 400 problem naming the field, nothing stored (issue #25 items 4
/// and 11). The addresses are only validated, never connected to. Each registry publishes its
/// policy at `GET /address-policy`, and an address the policy allows is still accepted.
#[tokio::test]
async fn denied_addresses_are_refused_under_each_policy() {
    use mcp_fleet_model::PolicyMode;
    use mcp_fleet_registry::{Config, parse_cidr};

    // Denied by the defaults: IPv6 forms embedding the metadata address, and the usual ranges.
    let always = [
        "http://[::169.254.169.254]/",
        "http://[::a9fe:a9fe]:8080/mcp",
        "http://[64:ff9b::169.254.169.254]/",
        "http://[64:ff9b:1::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://[::]:3001",
        "http://0.0.0.0:3001",
    ];
    // Denied only by the strict policy: loopback and private ranges, in every spelling.
    let strict_only = [
        "http://127.0.0.1:3001",
        "http://127.8.9.10:3001",
        "http://localhost:3001",
        "http://api.localhost:3001",
        "http://[::1]:3001",
        "http://10.0.0.5/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[::127.0.0.1]/",
        "http://[::ffff:10.0.0.5]/",
        "http://[64:ff9b::10.0.0.1]/",
        "http://[2002:c0a8:101::]/",
    ];
    // Public (TEST-NET-3): allowed by both, so a healthUrl row fails for its healthUrl only.
    let public = "http://203.0.113.10:3001";
    let at = |url: &str, health_url: &str| {
        let mut body = with("url", json!(url));
        body["healthUrl"] = json!(health_url);
        body
    };
    let rows_for = |urls: &[&str]| -> Vec<Row> {
        let mut rows = Vec::new();
        for url in urls {
            rows.push(post_field(&format!("url {url}"), at(url, public), "url"));
            rows.push(post_field(
                &format!("healthUrl {url}"),
                at(public, url),
                "healthUrl",
            ));
        }
        rows
    };
    let default_rows = rows_for(&always);
    let strict_rows: Vec<Row> = rows_for(&always)
        .into_iter()
        .chain(rows_for(&strict_only))
        .collect();

    let mut failures = Vec::new();
    for db in mcp_fleet_test_support::all_backends().await {
        let backend = db.backend;
        let default = common::start_with(db, Config::default()).await;
        failures.extend(run_table(&default, &default_rows).await);
        let (status, policy) = default.get("/address-policy").await;
        assert_eq!(status, 200, "[{backend}] {policy}");
        assert_eq!(policy["mode"], "default", "[{backend}] {policy}");
        assert!(
            policy["deny"]
                .as_array()
                .is_some_and(|d| d.iter().any(|r| r == "169.254.0.0/16")),
            "[{backend}] {policy}"
        );
    }
    for db in mcp_fleet_test_support::all_backends().await {
        let backend = db.backend;
        let strict = common::start_with(
            db,
            Config {
                probe_policy: PolicyMode::Strict,
                probe_allow: vec![parse_cidr("10.1.0.0/16").expect("CIDR")],
                ..Config::default()
            },
        )
        .await;
        failures.extend(run_table(&strict, &strict_rows).await);
        let (status, policy) = strict.get("/address-policy").await;
        assert_eq!(status, 200, "[{backend}] {policy}");
        assert_eq!(policy["mode"], "strict", "[{backend}] {policy}");
        assert_eq!(
            policy["allow"],
            json!(["10.1.0.0/16"]),
            "[{backend}] {policy}"
        );
        // What --probe-allow-cidr names is accepted.
        let allowed = "http://10.1.2.3:3001";
        let (status, body) = strict.post(&at(allowed, allowed)).await;
        assert_eq!(status, 201, "[{backend}] allowed address: {body}");
    }
    assert!(
        failures.is_empty(),
        "{} failures over {} default-policy and {} strict-policy rows:\n{}",
        failures.len(),
        default_rows.len(),
        strict_rows.len(),
        failures.join("\n")
    );
}
