//! Each kind of server (healthy, failing, slow, silent, refusing, MCP, guarded, TLS faults)
//! gets its status, short cause, whole chain and latency from its first probe.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::{any, get};
use mcp_fleet_sample_servers::Sample;
use mcp_fleet_test_support::sqlite;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{SLOW, entry, entry_when, quick, register, serve, time};
use crate::common::{black_hole, live_server, refused_url, start_checked};

/// A self-signed certificate for 127.0.0.1 that expired on 2020-01-02, and its key: test data,
/// made with Python's `cryptography` (not valid before 2020-01-01, P-256).
const EXPIRED_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBUDCB96ADAgECAhQ+MnMgKADtzahriMaCJSL6SqaIojAKBggqhkjOPQQDAjAX
MRUwEwYDVQQDDAxleHBpcmVkLnRlc3QwHhcNMjAwMTAxMDAwMDAwWhcNMjAwMTAy
MDAwMDAwWjAXMRUwEwYDVQQDDAxleHBpcmVkLnRlc3QwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAAR+mk5jQo5nwZ06B562RYWKn3mBVeX3J9hEEVr0uw7Bwzd2V8jP
JmQgZ5OnT/vZP/IUTsRD1ud8Y8NMUkcrtm+GoyEwHzAPBgNVHREECDAGhwR/AAAB
MAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0EAwIDSAAwRQIhALbWA/XKj4ZKX4I5823W
ZTcq3JP/frqX6ipKx63F9PfIAiA5V7HHFpEeqMw3ZUqi8Zkg6g7WBwbBzTAbN+3c
aSEy2A==
-----END CERTIFICATE-----
";
const EXPIRED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/jsS5xnyNYcV5yzr
r5FAOLkr6ySKrGTZiIk4iXTC1lqhRANCAAR+mk5jQo5nwZ06B562RYWKn3mBVeX3
J9hEEVr0uw7Bwzd2V8jPJmQgZ5OnT/vZP/IUTsRD1ud8Y8NMUkcrtm+G
-----END PRIVATE KEY-----
";

/// A fault: a TLS server on 127.0.0.1:0 presenting [`EXPIRED_CERT`], which only shakes hands
/// (the client gives up on the certificate) until `shutdown`; returns its `https://` base URL.
async fn expired_tls_server(shutdown: CancellationToken) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(EXPIRED_CERT.as_bytes()).expect("test cert");
    let key = PrivateKeyDer::from_pem_slice(EXPIRED_KEY.as_bytes()).expect("test key");
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok(stream) = accepted.and_then(|(s, _)| s.into_std()) else {
                return;
            };
            let config = config.clone();
            // Blocking rustls on its own thread: the handshake ends when the client refuses the
            // certificate and closes, or at the read timeout.
            tokio::task::spawn_blocking(move || {
                let mut stream = stream;
                if stream.set_nonblocking(false).is_err()
                    || stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .is_err()
                {
                    return;
                }
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                while conn.is_handshaking() {
                    if conn.complete_io(&mut stream).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// A fault: reads each connection's request and closes it without an answer, until
/// `shutdown`; returns its base URL. (Reading first makes the close a FIN: unread data would
/// make it a reset.)
async fn hang_up(shutdown: CancellationToken) -> String {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((mut socket, _)) = accepted else {
                return;
            };
            tokio::spawn(async move {
                let mut request = [0; 4096];
                let _ = socket.read(&mut request).await;
            });
        }
    });
    url
}

/// One row per kind of server: the status its first probe gives, the short cause `lastError`
/// says, what the whole chain in `lastErrorDetail` holds, and `latencyMs` (null for a server
/// that never answered: refused, black-holed).
#[tokio::test]
async fn every_kind_of_server_gets_its_status() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let healthy = live_server(servers.clone()).await;
    let failing = serve(
        Router::new().route("/health", get(|| async { StatusCode::SERVICE_UNAVAILABLE })),
        servers.clone(),
    )
    .await;
    let slow = serve(
        Router::new().route(
            "/health",
            get(|| async {
                tokio::time::sleep(SLOW).await;
                "ok"
            }),
        ),
        servers.clone(),
    )
    .await;
    let hanging = black_hole(servers.clone()).await;
    let refused = refused_url();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mcp = mcp_fleet_sample_servers::start(Sample::Catalog, listener, servers.clone())
        .await
        .expect("sample server starts");
    // An MCP endpoint that wants credentials the registry does not hold.
    let guarded = serve(
        Router::new().route(
            "/mcp",
            any(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, r#"Bearer realm="mcp""#)],
                )
            }),
        ),
        servers.clone(),
    )
    .await;

    // TLS spoken to a server that speaks plain HTTP, and a certificate that expired.
    let tls = healthy.replacen("http://", "https://", 1);
    let expired = expired_tls_server(servers.clone()).await;
    let hangs_up = hang_up(servers.clone()).await;
    let reg = start_checked(sqlite(), quick()).await;
    let h = |base: &str| format!("{base}/health");
    // (id, registration, status, lastError (None: null; a trailing `…` matches a prefix),
    // text in lastErrorDetail, lastSeen set, latencyMs in this range (None: null))
    type Row<'a> = (
        &'a str,
        Value,
        &'a str,
        Option<&'a str>,
        &'a str,
        bool,
        Option<std::ops::Range<u64>>,
    );
    let fast = Some(0..250);
    let rows: Vec<Row> = vec![
        (
            "healthy",
            entry("healthy", &healthy, Some(&h(&healthy)), "none"),
            "healthy",
            None,
            "",
            true,
            fast.clone(),
        ),
        (
            "failing",
            entry("failing", &failing, Some(&h(&failing)), "none"),
            "degraded",
            Some("HTTP 503"),
            "answered HTTP 503 Service Unavailable",
            false,
            fast.clone(),
        ),
        (
            "slow",
            entry("slow", &slow, Some(&h(&slow)), "none"),
            "degraded",
            Some("slow: answered in …"),
            "slower than --degraded-latency (250 ms)",
            false,
            Some(500..1000),
        ),
        (
            "hanging",
            entry("hanging", &hanging, Some(&h(&hanging)), "none"),
            "down",
            Some("timed out after 1 s"),
            "GET health check: ",
            false,
            None,
        ),
        (
            "refused",
            entry("refused", &refused, Some(&h(&refused)), "none"),
            "down",
            Some("connection refused"),
            "GET health check: error sending request: client error (Connect): tcp connect error: Connection refused",
            false,
            None,
        ),
        (
            "tls",
            entry("tls", &healthy, Some(&h(&tls)), "none"),
            "down",
            Some("TLS: not a TLS server"),
            "GET health check: error sending request",
            false,
            None,
        ),
        (
            "expired",
            entry("expired", &expired, Some(&h(&expired)), "none"),
            "down",
            Some("TLS: certificate expired"),
            "invalid peer certificate",
            false,
            None,
        ),
        (
            "hangs-up",
            entry("hangs-up", &hangs_up, Some(&h(&hangs_up)), "none"),
            "down",
            Some("connection closed"),
            "GET health check: error sending request",
            false,
            None,
        ),
        (
            "mcp-refused",
            entry("mcp-refused", &refused, None, "none"),
            "down",
            Some("connection refused"),
            "send discover request: ",
            false,
            None,
        ),
        (
            "mcp",
            entry("mcp", &mcp.base_url, None, "none"),
            "healthy",
            None,
            "",
            true,
            fast.clone(),
        ),
        (
            "wants-token",
            entry("wants-token", &guarded, None, "bearer"),
            "healthy",
            None,
            "",
            true,
            fast.clone(),
        ),
        (
            "no-auth",
            entry("no-auth", &guarded, None, "none"),
            "degraded",
            Some("HTTP 401 (auth.type is none)"),
            "answered HTTP 401 but the entry's auth.type is none",
            false,
            fast,
        ),
    ];
    for (_, body, ..) in &rows {
        register(&reg, body).await;
    }
    for (id, _, status, error, detail, seen, latency) in rows {
        let e = entry_when(&reg, id, "to be probed", |e| !e["lastCheckedAt"].is_null()).await;
        assert_eq!(e["status"], status, "{id}: {e}");
        match error {
            None => assert!(
                e["lastError"].is_null() && e["lastErrorDetail"].is_null(),
                "{id}: {e}"
            ),
            Some(want) => {
                let got = e["lastError"].as_str().unwrap_or_default();
                match want.strip_suffix('…') {
                    Some(prefix) => assert!(got.starts_with(prefix), "{id}: lastError {got:?}"),
                    None => assert_eq!(got, want, "{id}: lastError"),
                }
                let chain = e["lastErrorDetail"].as_str().unwrap_or_default();
                assert!(
                    chain.contains(detail),
                    "{id}: lastErrorDetail {chain:?} lacks {detail:?}"
                );
            }
        }
        assert_eq!(e["lastSeen"].is_string(), seen, "{id}: {e}");
        match latency {
            None => assert!(e["latencyMs"].is_null(), "{id}: never answered: {e}"),
            Some(range) => {
                let ms = e["latencyMs"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{id}: latencyMs in {e}"));
                assert!(range.contains(&ms), "{id}: {ms} ms, not in {range:?}");
            }
        }
        assert!(
            time(&e["lastCheckedAt"]) >= time(&e["registeredAt"]),
            "{id}: {e}"
        );
    }

    // An entry read with its error detail goes back with PUT as it is (seed clients echo
    // entries): lastErrorDetail is the registry's own field, ignored, not an unknown one.
    let (_, echoed) = reg.get("/servers/refused").await;
    assert!(echoed["lastErrorDetail"].is_string(), "{echoed}");
    let res = reg
        .http
        .put(format!("{}/servers/refused", reg.url))
        .json(&echoed)
        .send()
        .await
        .expect("PUT");
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
}
