//! Acceptance 5: bearer tokens and OAuth 2.0 client credentials against servers that require
//! them; wrong or missing credentials give a clear auth error.

use mcp_fleet_discovery::{
    ClientCredentials, CredentialKey, Discovery, DiscoveryError, UpstreamCredentials,
};
use mcp_fleet_test_support::{TokenEndpoint, accepting};
use serde_json::json;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, eventually, registration};

/// The only failure of `fleet`'s connect, as text.
async fn only_failure(fleet: &Discovery) -> DiscoveryError {
    let report = fleet.connect().await.expect("registry answers");
    assert!(report.connected.is_empty(), "{report:?}");
    let [(_, error)] = report.failed.as_slice() else {
        panic!("one failure expected: {report:?}");
    };
    error.clone()
}

#[tokio::test]
async fn bearer_tokens_are_sent_and_checked() {
    let registry = TestRegistry::start().await;
    let server = TestServer::start_with("vault", &["open"], Some(accepting(&["s3cret"]))).await;
    registry
        .register(&registration(
            "vault",
            &server.base_url,
            &["b"],
            json!({"type": "bearer"}),
        ))
        .await;

    let fleet = Discovery::builder(&registry.url)
        .tags(["b"])
        .bearer_token("vault", "s3cret")
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert_eq!(report.connected, [("vault".into(), 1)], "{report:?}");
    let result = fleet
        .call_tool("open", json!({}))
        .await
        .expect("authorized call");
    assert_eq!(echoed(&result)["server"], "vault");
    fleet.shutdown().await;

    // The callback form.
    let fleet = Discovery::builder(&registry.url)
        .tags(["b"])
        .bearer_token_fn(|id| (id == "vault").then(|| "s3cret".to_owned()))
        .build()
        .expect("builds");
    fleet.connect().await.expect("connects");
    fleet
        .call_tool("open", json!({}))
        .await
        .expect("authorized call");
    fleet.shutdown().await;

    // A wrong token: the server's 401, said plainly.
    let fleet = Discovery::builder(&registry.url)
        .tags(["b"])
        .bearer_token("vault", "wrong")
        .build()
        .expect("builds");
    let e = only_failure(&fleet).await;
    let text = e.to_string();
    assert!(matches!(e, DiscoveryError::Auth { .. }), "{e:?}");
    assert!(
        text.contains("HTTP 401") && text.contains("credentials were rejected"),
        "{text}"
    );
    fleet.shutdown().await;

    // No token at all: what to configure.
    let fleet = Discovery::builder(&registry.url)
        .tags(["b"])
        .build()
        .expect("builds");
    let e = only_failure(&fleet).await;
    let text = e.to_string();
    assert!(matches!(e, DiscoveryError::Auth { .. }), "{e:?}");
    assert!(text.contains("--upstream-token vault=TOKEN"), "{text}");
    fleet.shutdown().await;
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn oauth2_client_credentials_are_cached_and_refreshed_on_401() {
    let registry = TestRegistry::start().await;
    let endpoint = TokenEndpoint::start("agent", "hunter2", 3600).await;
    let server = TestServer::start_with("ledger", &["post"], Some(endpoint.accepted())).await;
    let auth = json!({"type": "oauth2", "tokenEndpoint": endpoint.url});
    registry
        .register(&registration("ledger", &server.base_url, &["o"], auth))
        .await;

    let fleet = Discovery::builder(&registry.url)
        .tags(["o"])
        .oauth2_client_credentials("ledger", ClientCredentials::new("agent", "hunter2"))
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert_eq!(report.connected, [("ledger".into(), 1)], "{report:?}");
    for _ in 0..3 {
        fleet
            .call_tool("post", json!({}))
            .await
            .expect("authorized call");
    }
    assert_eq!(
        endpoint.issued(),
        1,
        "one token for the session and every call"
    );

    // The server stops accepting it: the next request gets a 401, a new token, and succeeds.
    endpoint.revoke_all();
    let result = fleet
        .call_tool("post", json!({"query": "after revoke"}))
        .await
        .expect("refreshed after 401");
    assert_eq!(echoed(&result)["arguments"]["query"], "after revoke");
    assert_eq!(endpoint.issued(), 2);
    fleet.shutdown().await;

    // A wrong secret: the token endpoint's refusal, said plainly.
    let fleet = Discovery::builder(&registry.url)
        .tags(["o"])
        .default_oauth2_client_credentials(ClientCredentials::new("agent", "wrong"))
        .build()
        .expect("builds");
    let e = only_failure(&fleet).await;
    let text = e.to_string();
    assert!(matches!(e, DiscoveryError::Auth { .. }), "{e:?}");
    assert!(
        text.contains("refused client id \"agent\"")
            && text.contains("invalid_client")
            && text.contains("check the client id and secret"),
        "{text}"
    );
    fleet.shutdown().await;
}

#[tokio::test]
async fn oauth2_tokens_are_renewed_before_they_expire() {
    let registry = TestRegistry::start().await;
    // One-second tokens: renewed a tenth of a second before expiry.
    let endpoint = TokenEndpoint::start("agent", "hunter2", 1).await;
    let server = TestServer::start_with("ledger", &["post"], Some(endpoint.accepted())).await;
    let auth = json!({"type": "oauth2", "tokenEndpoint": endpoint.url});
    registry
        .register(&registration("ledger", &server.base_url, &["o"], auth))
        .await;
    let fleet = Discovery::builder(&registry.url)
        .tags(["o"])
        .default_oauth2_client_credentials(ClientCredentials::new("agent", "hunter2"))
        .build()
        .expect("builds");
    fleet.connect().await.expect("connects");
    assert_eq!(endpoint.issued(), 1);
    eventually("a renewed token", || async {
        fleet.call_tool("post", json!({})).await.expect("call");
        (endpoint.issued() >= 2).then_some(())
    })
    .await;
    fleet.shutdown().await;
}

/// Credentials by service reach every instance of it; a server id's beat its service's; a
/// missing one is named with the options that give it.
#[tokio::test]
async fn credentials_by_service_reach_its_instances_and_server_ids_win() {
    let registry = TestRegistry::start().await;
    let endpoint = TokenEndpoint::start("agent", "hunter2", 3600).await;
    let vault = TestServer::start_with("vault-1", &["open"], Some(accepting(&["s3cret"]))).await;
    let ledger = TestServer::start_with("ledger-1", &["post"], Some(endpoint.accepted())).await;
    let mut entry = registration(
        "vault-1",
        &vault.base_url,
        &["s"],
        json!({"type": "bearer"}),
    );
    entry["service"] = json!("vault");
    registry.register(&entry).await;
    let auth = json!({"type": "oauth2", "tokenEndpoint": endpoint.url});
    let mut entry = registration("ledger-1", &ledger.base_url, &["s"], auth);
    entry["service"] = json!("ledger");
    registry.register(&entry).await;

    let mut by_service = UpstreamCredentials::new();
    by_service
        .bearer(CredentialKey::Service("vault".into()), "s3cret")
        .oauth2(
            CredentialKey::ServerOrService("ledger".into()),
            ClientCredentials::new("agent", "hunter2"),
        );
    let fleet = Discovery::builder(&registry.url)
        .tags(["s"])
        .upstream_credentials(by_service.clone())
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert_eq!(report.failed.len(), 0, "{report:?}");
    fleet.call_tool("open", json!({})).await.expect("bearer");
    fleet.call_tool("post", json!({})).await.expect("oauth2");
    fleet.shutdown().await;

    // The server id's wrong token beats the service's right one.
    let mut wrong = by_service;
    wrong.bearer(CredentialKey::Server("vault-1".into()), "wrong");
    let fleet = Discovery::builder(&registry.url)
        .tags(["s"])
        .upstream_credentials(wrong)
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("registry answers");
    let [(server, e)] = report.failed.as_slice() else {
        panic!("vault-1 alone fails: {report:?}");
    };
    assert_eq!(server, "vault-1");
    assert!(e.to_string().contains("HTTP 401"), "{e}");
    fleet.shutdown().await;

    // None at all: each message names the option, by service.
    let fleet = Discovery::builder(&registry.url)
        .tags(["s"])
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("registry answers");
    let text: Vec<String> = report.failed.iter().map(|(_, e)| e.to_string()).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    let all = text.join("\n");
    for want in [
        "server id \"vault-1\" or service \"vault\"; give one with --upstream-token vault=TOKEN",
        "--upstream-oauth2 ledger=CLIENT_ID:CLIENT_SECRET",
        "MCP_FLEET_UPSTREAM_TOKENS",
        "--credentials-file",
    ] {
        assert!(all.contains(want), "{want}: {all}");
    }
    fleet.shutdown().await;

    // An entry that says `none` gets no credentials, whatever is configured: said so.
    let mut entry = registration("vault-9", &vault.base_url, &["n"], json!({"type": "none"}));
    entry["service"] = json!("vault");
    registry.register(&entry).await;
    let mut creds = UpstreamCredentials::new();
    creds.bearer(CredentialKey::Service("vault".into()), "s3cret");
    let fleet = Discovery::builder(&registry.url)
        .tags(["n"])
        .upstream_credentials(creds)
        .build()
        .expect("builds");
    let text = only_failure(&fleet).await.to_string();
    assert!(
        text.contains("HTTP 401")
            && text.contains("so no credentials are sent; set the entry's auth.type"),
        "{text}"
    );
    fleet.shutdown().await;
}
