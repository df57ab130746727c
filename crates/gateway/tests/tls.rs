//! `https://` upstreams, with a certificate made in the test and trusted through
//! `upstream_root_certificates`: listed and called through the gateway over its fast path and
//! over rmcp's alone.

use mcp_fleet_gateway::GatewayConfig;
use mcp_fleet_test_support::TestCert;
use serde_json::Value;

use crate::common::{
    JsonSession, TestGateway, TestRegistry, Upstream, call, connect, eventually, server_of,
    upstream_request_id,
};

#[tokio::test]
async fn https_upstreams_are_called_over_both_paths() {
    let registry = TestRegistry::start().await;
    let cert = TestCert::loopback();
    let secure = Upstream::start_tls("secure", &["search"], &cert).await;
    assert!(
        secure.base_url.starts_with("https://"),
        "{}",
        secure.base_url
    );
    registry
        .register("secure", "secure", "1.0.0", &secure.base_url)
        .await;
    let root = reqwest::Certificate::from_pem(cert.pem.as_bytes()).expect("a PEM certificate");

    for rmcp_only in [false, true] {
        let gw = TestGateway::start(GatewayConfig {
            rmcp_only: Some(rmcp_only),
            upstream_root_certificates: vec![root.clone()],
            ..TestGateway::config(&registry)
        })
        .await;
        eventually("the gateway to offer secure__search", || async {
            gw.gateway
                .tools()
                .iter()
                .any(|t| t.name == "secure__search")
                .then_some(())
        })
        .await;
        // A 2025-11-25 session: the fast path answers JSON unless rmcp answers everything.
        let session = JsonSession::open(&gw.url).await;
        gw.wait_for_sessions(1).await;
        let (content_type, _) = session.call_answer("secure__search").await;
        let expected = if rmcp_only {
            "text/event-stream"
        } else {
            "application/json"
        };
        assert!(
            content_type.starts_with(expected),
            "rmcp_only {rmcp_only}: {content_type}"
        );
        let result = session.call("secure__search").await.expect("a call");
        assert_eq!(result["structuredContent"]["server"], "secure", "{result}");
        let upstream_id = upstream_request_id(&result);
        if rmcp_only {
            assert!(upstream_id.is_u64(), "upstream request id {upstream_id}");
        } else {
            assert!(
                upstream_id
                    .as_str()
                    .is_some_and(|s| s.starts_with("fleet-")),
                "upstream request id {upstream_id}"
            );
        }
        // The stock rmcp client, through rmcp's server side of the gateway.
        let (rmcp, _client) = connect(&gw.url).await;
        let result = call(&rmcp, "secure__search").await.expect("a call");
        assert_eq!(server_of(&result), "secure");
        let _ = rmcp.cancel().await;
    }

    // Without the certificate the upstream is not trusted: the gateway offers none of it.
    let untrusting = TestGateway::start(TestGateway::config(&registry)).await;
    let session = JsonSession::open(&untrusting.url).await;
    let error: Value = session
        .call("secure__search")
        .await
        .expect_err("an untrusted upstream");
    assert!(error["message"].is_string(), "{error}");
    assert!(
        untrusting.gateway.tools().is_empty(),
        "{:?}",
        untrusting.gateway.tools()
    );
}
