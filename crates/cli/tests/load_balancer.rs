//! `serve` behind a load balancer: `--trusted-proxy` (and its variable) makes the client a
//! trusted peer names the one rate limits count, a bad range is refused at start-up, and the
//! read cache's byte bound is a flag like the others.

use crate::common::{run_code, serve_command, spawn_command};

#[tokio::test]
async fn trusted_proxies_name_the_client_and_bad_ranges_are_refused() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args([
        "--no-health-worker",
        "--read-rate-limit",
        "1",
        "--read-burst",
        "2",
        "--read-cache-max-bytes",
        "1048576",
    ])
    .env("MCP_FLEET_TRUSTED_PROXY", "10.0.0.0/8,127.0.0.1");
    let server = spawn_command(cmd).await;
    let http = reqwest::Client::new();
    let read = |client: &'static str| {
        let req = http
            .get(format!("{}/servers", server.url))
            .header("x-forwarded-for", client);
        async move { req.send().await.expect("GET").status().as_u16() }
    };
    let started = std::time::Instant::now();
    let spent = [
        read("198.51.100.1").await,
        read("198.51.100.1").await,
        read("198.51.100.1").await,
    ];
    // The budget refills by one a second: a slow machine may see the third admitted.
    assert!(
        spent[..2] == [200, 200]
            && (spent[2] == 429 || started.elapsed() >= std::time::Duration::from_secs(1)),
        "{spent:?}"
    );
    assert_eq!(
        read("198.51.100.2").await,
        200,
        "another client behind the proxy"
    );
    server.terminate().await;

    let (code, _, err) = run_code(&[
        "serve",
        "--database-url",
        &db.url,
        "--listen",
        "127.0.0.1:0",
        "--trusted-proxy",
        "10.0.0.1/8",
    ])
    .await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--trusted-proxy") && err.contains("did you mean 10.0.0.0/8"),
        "{err}"
    );
}
