//! `serve --registry-namespace`: the names the official v0.1 API serves, and a namespace that is
//! not reverse-DNS refused at start.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{binary, run, run_command, serve_command, spawn_command};

/// `GET path` over a plain TCP connection: the body of a `200`.
async fn get(base: &str, path: &str) -> String {
    let addr = base.strip_prefix("http://").expect("http URL");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

#[tokio::test]
async fn registry_namespace_names_the_served_servers() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--no-health-worker", "--registry-namespace", "com.example"]);
    let server = spawn_command(cmd).await;
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        &server.url,
        "--id",
        "billing-1",
        "--service",
        "billing",
        "--name",
        "Billing",
        "--url",
        "http://127.0.0.1:9",
        "--server-version",
        "1.0.0",
    ])
    .await;
    assert!(ok, "{err}");
    let answer = get(&server.url, "/v0.1/servers?version=latest").await;
    assert!(
        answer.contains(r#""name":"com.example/billing""#),
        "{answer}"
    );
    get(
        &server.url,
        "/v0.1/servers/com.example%2Fbilling/versions/1.0.0",
    )
    .await;
    server.terminate().await;
}

#[tokio::test]
async fn a_namespace_that_is_not_reverse_dns_is_refused() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = binary();
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--registry-namespace",
        "example",
    ]);
    let (code, _, err) = run_command(cmd).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--registry-namespace"), "{err}");
    assert!(err.contains("reverse-DNS"), "{err}");
}
