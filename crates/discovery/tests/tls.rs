//! `https://` servers, with a certificate made in the test and trusted through
//! `root_certificate`: connected and called over the library's own path and over rmcp's alone.

use std::time::Duration;

use mcp_fleet_discovery::Discovery;
use mcp_fleet_test_support::TestCert;
use serde_json::json;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, registration, request_id};

#[tokio::test]
async fn https_servers_are_called_over_both_paths() {
    let registry = TestRegistry::start().await;
    let cert = TestCert::loopback();
    let server = TestServer::start_tls("secure", &["search"], &cert).await;
    assert!(
        server.base_url.starts_with("https://"),
        "{}",
        server.base_url
    );
    registry
        .register(&registration(
            "secure",
            &server.base_url,
            &["tls"],
            json!({"type": "none"}),
        ))
        .await;
    let root = reqwest::Certificate::from_pem(cert.pem.as_bytes()).expect("a PEM certificate");

    for rmcp_only in [false, true] {
        let fleet = Discovery::builder(&registry.url)
            .tags(["tls"])
            .call_timeout(Duration::from_secs(5))
            .root_certificate(root.clone())
            .rmcp_only(rmcp_only)
            .build()
            .expect("builds");
        let report = fleet.connect().await.expect("connects");
        assert_eq!(
            report.connected.len(),
            1,
            "rmcp_only {rmcp_only}: {report:?}"
        );
        let calls = server.calls();
        let result = fleet
            .call_tool("secure__search", json!({"query": "q"}))
            .await
            .expect("a call over TLS");
        assert_eq!(echoed(&result)["tool"], "search");
        assert_eq!(server.calls(), calls + 1);
        // The library's own path sends string ids; rmcp's client, numbers.
        let id = request_id(&result);
        if rmcp_only {
            assert!(id.is_u64(), "request id {id}: not rmcp's");
        } else {
            assert!(
                id.as_str().is_some_and(|s| s.starts_with("fleet-")),
                "request id {id}: not the library's"
            );
        }
        fleet.shutdown().await;
    }

    // Without the certificate the server is not trusted: nothing connects.
    let untrusting = Discovery::builder(&registry.url)
        .tags(["tls"])
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("builds");
    let report = untrusting.connect().await.expect("the registry answers");
    assert!(report.connected.is_empty(), "{report:?}");
    let (server_id, error) = report.failed.first().expect("a failure");
    assert_eq!(server_id, "secure");
    let text = error.to_string().to_lowercase();
    assert!(text.contains("certificate"), "{text}");
    untrusting.shutdown().await;
}
