//! Hostile input over raw TCP, one generated table row per request: malformed and deeply
//! nested JSON, huge strings, invalid UTF-8, wrong types, injection strings in every field and
//! query parameter, junk in path ids, oversized heads and URLs, slow clients. Each gets a 4xx
//! or a closed connection, never a 5xx, and the stored entries are unchanged.
//!
//! Over 500 lines: a corpus, one generated row per hostile request, over one raw-TCP client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcp_fleet_registry::{AppState, Config, ServeLimits};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::common;

/// Short slow-client limits, so the slowloris rows finish in seconds.
const LIMITS: ServeLimits = ServeLimits {
    max_header_bytes: mcp_fleet_registry::DEFAULT_MAX_HEADER_BYTES,
    max_uri_bytes: mcp_fleet_registry::DEFAULT_MAX_URI_BYTES,
    header_read_timeout: Duration::from_secs(1),
    request_timeout: Duration::from_secs(2),
};
/// How long any one request may take to be answered or cut off.
const BOUND: Duration = Duration::from_secs(10);

/// A registry on 127.0.0.1:0 over SQLite, served with [`LIMITS`]; stops when dropped.
struct Hostile {
    addr: SocketAddr,
    shutdown: CancellationToken,
    _db: mcp_fleet_test_support::TestDb,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A registry over SQLite.
async fn start() -> Hostile {
    start_over(mcp_fleet_test_support::sqlite()).await
}

async fn start_over(db: mcp_fleet_test_support::TestDb) -> Hostile {
    let store = mcp_fleet_store::connect(&db.url).await.expect("open store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let state = AppState::new(store, Config::default());
    tokio::spawn(mcp_fleet_registry::serve_with(
        listener,
        state,
        LIMITS,
        shutdown.clone(),
    ));
    Hostile {
        addr,
        shutdown,
        _db: db,
    }
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// An answer with this status, these headers (lowercased names) and this body.
    Answer(u16, String, Vec<u8>),
    /// The connection was closed (or reset) without an answer.
    Closed,
}

/// Sends `bytes` on a new connection and reads until the server closes it, within [`BOUND`].
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Outcome {
    let run = async {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        // The server may answer and close before the whole request is written (a 413 or 431):
        // a failed write is not an outcome, what is read afterwards is.
        let _ = socket.write_all(bytes).await;
        read_answer(&mut socket).await
    };
    tokio::time::timeout(BOUND, run)
        .await
        .unwrap_or_else(|_| panic!("no answer nor close within {BOUND:?}"))
}

/// Reads an answer until EOF (every request asks for `Connection: close`).
async fn read_answer(socket: &mut TcpStream) -> Outcome {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if out.len() > 4 << 20 {
            break;
        }
    }
    parse_answer(&out)
}

fn parse_answer(raw: &[u8]) -> Outcome {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Outcome::Closed;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    Outcome::Answer(status, head, raw[end + 4..].to_vec())
}

/// A request with `Host`, `Connection: close` and, with a body, its length and type.
fn request(method: &str, target: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// What a row must get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly this status.
    Status(u16),
    /// This status, or a closed connection: the answer to a request the server stops reading
    /// half way may be lost to the reset its close causes.
    StatusOrClosed(u16),
    /// Some 4xx, or a closed connection.
    Refused,
}

struct Row {
    desc: String,
    bytes: Vec<u8>,
    expect: Expect,
}

fn row(desc: impl Into<String>, bytes: Vec<u8>, expect: Expect) -> Row {
    Row {
        desc: desc.into(),
        bytes,
        expect,
    }
}

/// Strings meant to break out of SQL, HTML, paths, strings, headers and logs.
fn injections() -> Vec<(&'static str, String)> {
    vec![
        ("sql", "'; DROP TABLE servers;--".into()),
        ("sql-or", "x' OR '1'='1".into()),
        (
            "sql-union",
            "\" UNION SELECT * FROM sqlite_master --".into(),
        ),
        ("html", "<script>alert(1)</script>".into()),
        ("path", "../../etc/passwd".into()),
        ("nul", "a\0b".into()),
        ("crlf", "a\r\nSet-Cookie: pwned=1".into()),
        ("format", "%s%n%x{}{0}${jndi:ldap://x}".into()),
        ("unicode", "\u{202e}\u{feff}\u{1f4a3}\u{fffd}".into()),
        ("long", "x".repeat(60_000)),
    ]
}

/// URLs one parser reads with one host and another with another, or that hide a host.
fn differential_urls() -> Vec<(&'static str, &'static str)> {
    vec![
        ("backslash before @", "http://10.0.0.5\\@169.254.169.254/"),
        ("backslash in host", "http://10.0.0.5\\169.254.169.254/"),
        ("userinfo without credentials", "http://@169.254.169.254/"),
        ("port then @", "http://127.0.0.1:80@169.254.169.254/"),
        ("backslashes for slashes", "http:\\\\169.254.169.254/"),
        ("one slash", "http:/169.254.169.254/"),
        ("three slashes", "http:///169.254.169.254/"),
        ("hex IPv4", "http://0xa9.0xfe.0xa9.0xfe/"),
        ("integer IPv4", "http://2852039166/"),
        ("octal IPv4", "http://0251.0376.0251.0376/"),
        ("short IPv4", "http://169.16689662/"),
        ("escaped host", "http://%31%36%39.254.169.254/"),
        (
            "unicode dots",
            "http://169\u{3002}254\u{3002}169\u{3002}254/",
        ),
        (
            "fullwidth digits",
            "http://\u{ff11}\u{ff16}\u{ff19}.254.169.254/",
        ),
        ("IPv6 zone", "http://[fe80::1%25eth0]/"),
        ("empty port", "http://169.254.169.254:/"),
    ]
}

/// The registration fields the base body gives a valid value: all but `service`.
fn fields() -> impl Iterator<Item = &'static str> {
    mcp_fleet_model::REGISTRATION_FIELDS
        .into_iter()
        .filter(|f| *f != "service")
}

/// A valid body for an id that is never stored (every row must fail).
fn base() -> Value {
    let mut body = common::seed_body("hostile", &["products"]);
    body["metadata"] = json!({"team": "a"});
    body["healthCheck"] = json!({"mode": "http"});
    body["ttlSeconds"] = json!(60);
    body
}

/// `value` put where `field` reads a string (inside `auth`, `healthCheck`, `tags`, `metadata`).
fn at_field(field: &str, value: Value) -> Value {
    match field {
        "auth" => json!({"type": value}),
        "healthCheck" => json!({"mode": value}),
        "tags" => json!([value]),
        "metadata" => json!({ "k": value }),
        _ => value,
    }
}

fn post(body: &[u8]) -> Vec<u8> {
    request("POST", "/servers", Some("application/json"), body)
}

fn put(id: &str, body: &[u8]) -> Vec<u8> {
    request(
        "PUT",
        &format!("/servers/{id}"),
        Some("application/json"),
        body,
    )
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let body = |v: &Value| serde_json::to_vec(v).expect("json");

    // Injection strings in every field. Free text (`name`, `description`, `metadata`) accepts
    // them, so those rows carry a bad `version` too: the answer must be a 400 naming `version`
    // alone, which shows the text went through the checks without disturbing them.
    for field in fields() {
        for (what, s) in injections() {
            let mut b = base();
            b[field] = at_field(field, json!(s));
            let free = matches!(field, "name" | "description" | "metadata");
            let too_long_anyway = what == "long" && field != "metadata";
            if free && !too_long_anyway {
                b["version"] = json!("latest");
            }
            rows.push(row(
                format!("POST {field} {what}"),
                post(&body(&b)),
                Expect::Status(400),
            ));
            if field == "id" {
                continue;
            }
            rows.push(row(
                format!("PUT {field} {what}"),
                put("hostile", &body(&b)),
                Expect::Status(400),
            ));
        }
    }
    // URLs whose authority parsers read differently (issue #25): refused in every URL field.
    for (what, url) in differential_urls() {
        for field in ["url", "healthUrl", "auth"] {
            let mut b = base();
            b[field] = match field {
                "auth" => json!({"type": "oauth2", "tokenEndpoint": url}),
                _ => json!(url),
            };
            rows.push(row(
                format!("POST {field} {what}"),
                post(&body(&b)),
                Expect::Status(400),
            ));
        }
    }
    // Wrong types in every field.
    let wrong: [(&str, Value); 6] = [
        ("number", json!(1e308)),
        ("negative", json!(-1)),
        ("bool", json!(true)),
        ("array", json!([[[]]])),
        ("object", json!({"$ne": null})),
        ("string", json!("1")),
    ];
    for field in fields() {
        for (what, v) in &wrong {
            let mut b = base();
            b[field] = v.clone();
            if is_valid(&b) {
                continue;
            }
            rows.push(row(
                format!("POST {field} as {what}"),
                post(&body(&b)),
                Expect::Status(400),
            ));
        }
    }
    // Malformed bodies.
    let deep = |n: usize| "[".repeat(n).into_bytes();
    let mut bad_utf8 = br#"{"id":"hostile","name":""#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
    bad_utf8.extend_from_slice(br#"","url":"http://h","version":"1.0.0"}"#);
    let raw_bodies: Vec<(&str, Vec<u8>, u16)> = vec![
        ("empty", Vec::new(), 400),
        ("truncated", br#"{"id":"hostile","name":"#.to_vec(), 400),
        ("trailing garbage", br#"{"id":"hostile"} {"#.to_vec(), 400),
        ("60,000 [", deep(60_000), 400),
        ("100,000 [", deep(100_000), 413),
        ("60,000 {\"a\":", "{\"a\":".repeat(12_000).into_bytes(), 400),
        ("invalid UTF-8 in a string", bad_utf8, 400),
        ("invalid UTF-8 alone", vec![0xff; 1000], 400),
        ("NUL bytes", vec![0; 1000], 400),
        ("UTF-16 BOM", b"\xff\xfe{\x00}\x00".to_vec(), 400),
        ("lone surrogate escape", br#"{"id":"\ud800"}"#.to_vec(), 400),
        (
            "huge number",
            format!("{{\"ttlSeconds\":1{}}}", "0".repeat(5000)).into_bytes(),
            400,
        ),
        ("JSON null", b"null".to_vec(), 400),
        ("JSON array", b"[1,2,3]".to_vec(), 400),
        ("JSON string", b"\"hostile\"".to_vec(), 400),
        (
            "100 KB string",
            format!("{{\"name\":\"{}\"}}", "x".repeat(100_000)).into_bytes(),
            413,
        ),
        (
            "5,000 unknown keys",
            {
                let keys: Vec<String> = (0..5000).map(|i| format!("\"k{i}\":1")).collect();
                format!("{{{}}}", keys.join(",")).into_bytes()
            },
            400,
        ),
    ];
    for (what, b, status) in raw_bodies {
        // A body over the limit is refused unread: its answer may be lost to the reset.
        let expect = match status {
            413 => Expect::StatusOrClosed(413),
            s => Expect::Status(s),
        };
        rows.push(row(format!("POST {what}"), post(&b), expect));
        rows.push(row(format!("PUT {what}"), put("hostile", &b), expect));
    }
    rows.push(row(
        "POST text/plain",
        request("POST", "/servers", Some("text/plain"), &body(&base())),
        Expect::Status(415),
    ));
    rows.push(row(
        "POST no content type",
        request("POST", "/servers", None, &body(&base())),
        Expect::Status(415),
    ));

    // Query parameters of GET /servers: injections in every parameter, percent-encoded junk.
    for param in ["tags", "status", "limit", "cursor", "wait", "timeout", "x"] {
        for (what, s) in injections() {
            if what == "long" {
                continue;
            }
            rows.push(row(
                format!("GET ?{param}= {what}"),
                request(
                    "GET",
                    &format!("/servers?{param}={}", encode(&s)),
                    None,
                    b"",
                ),
                Expect::Status(400),
            ));
        }
    }
    for q in [
        "%ZZ",
        "tags=%FF%FE",
        "tags=%00",
        "status=%0d%0aX:1",
        "limit=-1",
        "limit=1e3",
        "a&&&b=",
        "=",
        "tags=a&tags=%C0%AF",
    ] {
        rows.push(row(
            format!("GET ?{q}"),
            request("GET", &format!("/servers?{q}"), None, b""),
            Expect::Status(400),
        ));
    }

    // Junk in path ids, for every method on /servers/{id} and its sub-resources.
    let ids = [
        "..%2F..",
        "..%2f..%2fetc%2fpasswd",
        "%00",
        "%2e%2e",
        "%FF",
        "%C0%AE%C0%AE",
        "a%20b",
        "A",
        "-a",
        "%3Cscript%3E",
        "'%3B%20DROP%20TABLE%20servers%3B--",
        "a%0D%0AX:%201",
    ];
    for id in ids {
        for (method, suffix) in [
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/check"),
            ("PUT", "/heartbeat"),
        ] {
            rows.push(row(
                format!("{method} /servers/{id}{suffix}"),
                request(method, &format!("/servers/{id}{suffix}"), None, b""),
                Expect::Status(400),
            ));
        }
        rows.push(row(
            format!("PUT /servers/{id}"),
            put(id, &body(&base())),
            Expect::Status(400),
        ));
    }
    for path in [
        "/../../etc/passwd",
        "/servers/../../etc/passwd",
        "/servers/a/b/c",
        "//servers",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        rows.push(row(
            format!("GET {path}"),
            request("GET", path, None, b""),
            Expect::Status(404),
        ));
    }

    // Broken HTTP: heads too large, URLs too long, smuggling, bad framing, header injection.
    let long_query = format!("/servers?tags={}", "a,".repeat(4500));
    rows.push(row(
        "9 KB URL",
        request("GET", &long_query, None, b""),
        Expect::Status(414),
    ));
    let huge_query = format!("/servers?tags={}", "a".repeat(70_000));
    rows.push(row(
        "70 KB URL",
        request("GET", &huge_query, None, b""),
        Expect::Refused,
    ));
    let get = || request("GET", "/servers", None, b"");
    let big = with_header(get(), &format!("X-Big: {}", "a".repeat(20_000)));
    rows.push(row("20 KB header", big, Expect::StatusOrClosed(431)));
    let many: Vec<String> = (0..200).map(|i| format!("X-{i}: v")).collect();
    let many = with_header(get(), &many.join("\r\n"));
    rows.push(row("200 headers", many, Expect::StatusOrClosed(431)));
    let cookie = with_header(get(), &format!("Cookie: {}", "a=b; ".repeat(3500)));
    rows.push(row("17 KB cookie", cookie, Expect::StatusOrClosed(431)));
    let framing: Vec<(&str, &[u8])> = vec![
        ("CL and TE", b"POST /servers HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        ("two lengths", b"POST /servers HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        ("bad chunk size", b"POST /servers HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
        ("huge chunk size", b"POST /servers HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n{}\r\n0\r\n\r\n"),
        ("negative length", b"POST /servers HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n{}"),
        ("CRLF in target", b"GET /servers?x=\r\nSet-Cookie: a=b HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n"),
        ("bare CR in header", b"GET /servers HTTP/1.1\r\nHost: r\r\nX-A: a\rSet-Cookie: b\r\nConnection: close\r\n\r\n"),
        ("NUL in header", b"GET /servers HTTP/1.1\r\nHost: r\r\nX-A: a\0b\r\nConnection: close\r\n\r\n"),
        ("space before colon", b"GET /servers HTTP/1.1\r\nHost : r\r\nConnection: close\r\n\r\n"),
        ("no method", b" /servers HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n"),
        ("HTTP/9.9", b"GET /servers HTTP/9.9\r\nHost: r\r\nConnection: close\r\n\r\n"),
        ("binary junk", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
        ("bad method", b"G\x01T /servers HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n"),
        ("absolute-form elsewhere", b"GET http://evil.example/servers/%00 HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n"),
    ];
    for (what, bytes) in framing {
        rows.push(row(what, bytes.to_vec(), Expect::Refused));
    }
    rows
}

/// Whether a body is a valid registration (such wrong-type rows are skipped: `"1"` is a fine
/// name).
fn is_valid(body: &Value) -> bool {
    mcp_fleet_model::Registration::from_json(body, None).is_ok()
}

/// `req` with `line` (`Name: value`) added after its request line.
fn with_header(mut req: Vec<u8>, line: &str) -> Vec<u8> {
    let at = req
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("request line")
        + 2;
    req.splice(at..at, format!("{line}\r\n").into_bytes());
    req
}

/// Every entry and the fleet status, to compare before and after.
async fn snapshot(addr: SocketAddr) -> (Outcome, Outcome) {
    let list = exchange(
        addr,
        &request("GET", "/servers?status=any&limit=1000", None, b""),
    )
    .await;
    let status = exchange(addr, &request("GET", "/status", None, b"")).await;
    (strip(list), strip(status))
}

/// The status and body only (headers carry dates).
fn strip(o: Outcome) -> Outcome {
    match o {
        Outcome::Answer(s, _, b) => Outcome::Answer(s, String::new(), b),
        closed => closed,
    }
}

async fn seed(addr: SocketAddr) {
    for (i, id) in ["alpha", "beta", "gamma"].into_iter().enumerate() {
        let mut b = common::seed_body(id, &["products", "hostile-seed"]);
        b["metadata"] = json!({"n": i, "note": "seeded"});
        let body = serde_json::to_vec(&b).expect("json");
        match exchange(addr, &post(&body)).await {
            Outcome::Answer(201, ..) => {}
            other => panic!("seeding {id}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn hostile_requests_are_refused_and_change_nothing() {
    let reg = start().await;
    seed(reg.addr).await;
    let before = snapshot(reg.addr).await;
    assert!(
        matches!(&before.0, Outcome::Answer(200, _, b) if b.windows(5).any(|w| w == b"gamma")),
        "{before:?}"
    );

    let rows = rows();
    assert!(rows.len() >= 200, "only {} rows", rows.len());
    let mut failures = Vec::new();
    for r in &rows {
        let got = exchange(reg.addr, &r.bytes).await;
        let ok = match (&got, r.expect) {
            (Outcome::Answer(s, ..), Expect::Status(want) | Expect::StatusOrClosed(want)) => {
                *s == want
            }
            (Outcome::Closed, Expect::StatusOrClosed(_)) => true,
            (Outcome::Answer(s, ..), Expect::Refused) => (400..500).contains(s),
            (Outcome::Closed, Expect::Refused) => true,
            (Outcome::Closed, Expect::Status(_)) => false,
        };
        let leaked = matches!(&got, Outcome::Answer(_, head, _) if head.contains("set-cookie"));
        if !ok || leaked {
            let shown = match &got {
                Outcome::Answer(s, _, b) => {
                    format!("{s} {}", String::from_utf8_lossy(&b[..b.len().min(300)]))
                }
                Outcome::Closed => "closed".into(),
            };
            failures.push(format!("{}: expected {:?}, got {shown}", r.desc, r.expect));
        }
    }
    let after = snapshot(reg.addr).await;
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(after, before, "stored data changed");
}

/// Free text holds anything: injection strings in `name`, `description` and `metadata` are
/// stored and returned verbatim, and hurt nothing else, on every backend.
#[tokio::test]
async fn injection_strings_in_free_text_are_stored_verbatim() {
    for db in mcp_fleet_test_support::all_backends().await {
        free_text_on(db).await;
    }
}

async fn free_text_on(db: mcp_fleet_test_support::TestDb) {
    let backend = db.backend;
    let reg = start_over(db).await;
    seed(reg.addr).await;
    let before = snapshot(reg.addr).await;
    let texts: Vec<String> = injections()
        .into_iter()
        .filter(|(what, _)| !matches!(*what, "long" | "nul"))
        .map(|(_, s)| s)
        .collect();
    let mut b = common::seed_body("free-text", &[]);
    b["name"] = json!(texts.join(" | "));
    b["description"] = json!(texts.concat());
    b["metadata"] = json!({ "texts": texts, "'; DROP TABLE servers;--": "<script>" });
    let body = serde_json::to_vec(&b).expect("json");
    let created = exchange(reg.addr, &post(&body)).await;
    let Outcome::Answer(201, ..) = created else {
        panic!("{backend}: free text refused: {created:?}");
    };
    let Outcome::Answer(200, _, got) =
        exchange(reg.addr, &request("GET", "/servers/free-text", None, b"")).await
    else {
        panic!("GET free-text");
    };
    let got: Value = serde_json::from_slice(&got).expect("entry JSON");
    for key in ["name", "description", "metadata"] {
        assert_eq!(got[key], b[key], "{backend}: {key}");
    }
    // NUL is the one character refused (PostgreSQL cannot store it): a 400, not a 503.
    for key in ["name", "description", "metadata"] {
        let mut bad = b.clone();
        bad[key] = if key == "metadata" {
            json!({"k": "a\0b"})
        } else {
            json!("a\0b")
        };
        let body = serde_json::to_vec(&bad).expect("json");
        match exchange(reg.addr, &put("free-text", &body)).await {
            Outcome::Answer(400, _, problem) => {
                let problem: Value = serde_json::from_slice(&problem).expect("problem");
                assert_eq!(problem["errors"][0]["field"], key, "{backend}: {problem}");
            }
            other => panic!("{backend}: NUL in {key}: {other:?}"),
        }
    }
    let Outcome::Answer(204, ..) = exchange(
        reg.addr,
        &request("DELETE", "/servers/free-text", None, b""),
    )
    .await
    else {
        panic!("DELETE free-text");
    };
    assert_eq!(snapshot(reg.addr).await, before, "{backend}");
}

/// How a slow client sends its request.
enum Slow {
    /// Part of the head, then nothing.
    StalledHead,
    /// The head one byte per tick, never finishing.
    TrickledHead,
    /// The head and part of the body, then nothing.
    StalledBody,
    /// The head, then the body one byte per tick, never finishing.
    TrickledBody,
}

/// Slowloris: a client that sends its head or body slowly, or stops, is answered `408` or
/// cut off within the limit (plus scheduling slack), not held forever.
#[tokio::test]
async fn slow_clients_are_cut_off_in_bounded_time() {
    let reg = start().await;
    let head = b"POST /servers HTTP/1.1\r\nHost: registry\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    // (how, the limit that must cut it off, whether a 408 problem is the answer)
    let rows = [
        (Slow::StalledHead, LIMITS.header_read_timeout, false),
        (Slow::TrickledHead, LIMITS.header_read_timeout, false),
        (Slow::StalledBody, LIMITS.request_timeout, true),
        (Slow::TrickledBody, LIMITS.request_timeout, true),
    ];
    for (how, limit, answered) in rows {
        let started = Instant::now();
        let mut socket = TcpStream::connect(reg.addr).await.expect("connect");
        let (first, trickle): (&[u8], &[u8]) = match how {
            Slow::StalledHead => (&head[..30], b""),
            Slow::TrickledHead => (b"", &head[..]),
            Slow::StalledBody => (&head[..], b"{\"id\":\"slow\","),
            Slow::TrickledBody => (
                &head[..],
                b"{\"id\":\"slow\",\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ),
        };
        socket.write_all(first).await.expect("write");
        if matches!(how, Slow::StalledBody) {
            socket.write_all(trickle).await.expect("write");
        }
        let outcome = if matches!(how, Slow::TrickledHead | Slow::TrickledBody) {
            // One byte every 100 ms: each arrives well within any per-read timeout.
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            let mut bytes = trickle.iter().cycle();
            loop {
                let mut peek = [0u8; 1];
                tokio::select! {
                    _ = ticks.tick() => {
                        let byte = bytes.next().copied().unwrap_or(b'a');
                        if socket.write_all(&[byte]).await.is_err() {
                            break Outcome::Closed;
                        }
                    }
                    read = socket.peek(&mut peek) => {
                        break match read {
                            Ok(0) | Err(_) => Outcome::Closed,
                            Ok(_) => read_answer(&mut socket).await,
                        };
                    }
                }
                assert!(started.elapsed() < BOUND, "still connected after {BOUND:?}");
            }
        } else {
            tokio::time::timeout(BOUND, read_answer(&mut socket))
                .await
                .expect("cut off within the bound")
        };
        let took = started.elapsed();
        assert!(
            took >= limit,
            "cut off after {took:?}, before the limit {limit:?}"
        );
        assert!(
            took < limit + Duration::from_secs(3),
            "cut off only after {took:?}"
        );
        match (answered, outcome) {
            (true, Outcome::Answer(408, head, body)) => {
                assert!(head.contains("application/problem+json"), "{head}");
                let problem: Value = serde_json::from_slice(&body).expect("problem JSON");
                assert_eq!(problem["code"], "request-timeout");
            }
            (false, Outcome::Closed) => {}
            (_, other) => panic!("unexpected {other:?} after {took:?}"),
        }
    }
}

/// Issue #25: the answers hyper makes itself when it cannot parse a request (`431` for a head
/// over the limit, `414`, `400`) are problem+json like every other refusal, not empty bodies.
#[tokio::test]
async fn answers_from_below_the_router_are_problems() {
    let reg = start().await;
    let get = || request("GET", "/servers", None, b"");
    // Just over the head limit: small enough to be read whole before the answer, so no reset
    // loses it.
    let over = LIMITS.max_header_bytes + 100;
    let big = with_header(get(), &format!("X-Big: {}", "a".repeat(over)));
    let rows: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("head over the limit", big, 431, "header-too-large"),
        (
            "bad method",
            b"G\x01T /servers HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "bad-request",
        ),
        (
            "bad header",
            b"GET /servers HTTP/1.1\r\nHost : r\r\nConnection: close\r\n\r\n".to_vec(),
            400,
            "bad-request",
        ),
    ];
    for (what, bytes, status, code) in rows {
        // A reset can still lose an answer now and then: a few tries, each bounded.
        let mut answer = None;
        for _ in 0..5 {
            if let Outcome::Answer(s, head, body) = exchange(reg.addr, &bytes).await {
                answer = Some((s, head, body));
                break;
            }
        }
        let (s, head, body) = answer.unwrap_or_else(|| panic!("{what}: never answered"));
        assert_eq!(s, status, "{what}: {head}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{what}: {head}"
        );
        let problem: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{what}: body {:?} is not JSON: {e}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(problem["code"], code, "{what}: {problem}");
        assert_eq!(problem["status"], status, "{what}: {problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{problem}"
        );
    }
    // The connection keeps working for well-formed requests after such answers.
    assert!(matches!(
        exchange(reg.addr, &get()).await,
        Outcome::Answer(200, ..)
    ));
}
