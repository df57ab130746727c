//! Upstreams that need credentials: the gateway reaches a bearer upstream and an OAuth 2.0 one
//! (behind a loopback token endpoint) with the credentials configured by service.

use mcp_fleet_discovery::{ClientCredentials, CredentialKey, UpstreamCredentials};
use mcp_fleet_test_support::{TokenEndpoint, accepting};
use serde_json::json;

use crate::common::{TestGateway, TestRegistry, Upstream, call, connect, eventually, names};

/// Registers `id` of `service` at `base_url`, tagged for the gateway, with `auth`.
async fn register(registry: &TestRegistry, id: &str, service: &str, base_url: &str, auth: &str) {
    let auth: serde_json::Value = serde_json::from_str(auth).expect("auth JSON");
    let body = json!({
        "id": id, "service": service, "name": id, "url": base_url,
        "version": "1.0.0", "tags": ["gw"], "auth": auth,
    });
    let res = registry
        .http
        .post(format!("{}/servers", registry.url))
        .json(&body)
        .send()
        .await
        .expect("POST /servers");
    assert!(res.status().is_success(), "{}", res.status());
}

#[tokio::test]
async fn upstreams_needing_credentials_are_reached_with_those_configured() {
    let registry = TestRegistry::start().await;
    let endpoint = TokenEndpoint::start("agent", "hunter2", 3600).await;
    let vault = Upstream::start_guarded("vault-1", &["open"], accepting(&["s3cret"])).await;
    let ledger = Upstream::start_guarded("ledger-1", &["post"], endpoint.accepted()).await;
    register(
        &registry,
        "vault-1",
        "vault",
        &vault.base_url,
        r#"{"type": "bearer"}"#,
    )
    .await;
    let oauth2 = format!(
        r#"{{"type": "oauth2", "tokenEndpoint": "{}"}}"#,
        endpoint.url
    );
    register(&registry, "ledger-1", "ledger", &ledger.base_url, &oauth2).await;

    let mut credentials = UpstreamCredentials::new();
    credentials
        .bearer(CredentialKey::Service("vault".into()), "s3cret")
        .oauth2(
            CredentialKey::ServerOrService("ledger".into()),
            ClientCredentials::new("agent", "hunter2"),
        );
    let mut config = TestGateway::config(&registry);
    config.upstream_credentials = credentials;
    let gw = TestGateway::start(config).await;
    let (session, _client) = connect(&gw.url).await;
    eventually("both upstreams' tools", || async {
        (names(&session).await == ["ledger__post", "vault__open"]).then_some(())
    })
    .await;
    for tool in ["vault__open", "ledger__post"] {
        let result = call(&session, tool).await.expect("call");
        assert_ne!(result.is_error, Some(true), "{tool}: {result:?}");
    }
    assert_eq!((vault.calls(), ledger.calls()), (1, 1));
    assert_eq!(
        endpoint.issued(),
        1,
        "one token for the session and the call"
    );
    session.cancel().await.expect("close the session");
}
