//! The address policy on every connection the library makes for an entry: a server the policy
//! denies is never connected to, whether its URL names it or its literal address, and the
//! others work as before.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use mcp_fleet_discovery::{
    AddressPolicy, Backoff, Discovery, DiscoveryError, PolicyMode, RegistryClient, ServerState,
};
use mcp_fleet_model::parse_cidr;
use mcp_fleet_test_support::Trap;
use serde_json::json;

use crate::common::server::TestServer;
use crate::common::{TestRegistry, echoed, eventually, registration};

/// Denies 127.0.0.1 (where the trap listens, and what `localhost` resolves to) and ::1; the
/// allowed server listens on 127.0.0.2.
fn deny_trap() -> AddressPolicy {
    let net = |s| parse_cidr(s).expect("test CIDR");
    AddressPolicy::new(
        PolicyMode::Default,
        vec![net("127.0.0.1/32"), net("::1/128")],
        Vec::new(),
    )
}

#[tokio::test]
async fn denied_servers_are_never_connected_to_and_allowed_ones_work() {
    let registry = TestRegistry::start().await;
    let mut trap = Trap::start().await;
    let allowed = TestServer::start_on("allowed", &["search"], Ipv4Addr::new(127, 0, 0, 2)).await;
    let port = trap.addr.port();
    let none = json!({"type": "none"});
    for (id, url) in [
        ("by-name", format!("http://localhost:{port}")),
        ("by-address", format!("http://127.0.0.1:{port}")),
        (
            "by-mapped-address",
            format!("http://[::ffff:127.0.0.1]:{port}"),
        ),
        ("allowed", allowed.base_url.clone()),
    ] {
        registry
            .register(&registration(id, &url, &["policy"], none.clone()))
            .await;
    }

    let fleet = Discovery::builder(&registry.url)
        .tags(["policy"])
        .address_policy(deny_trap())
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(50),
        })
        .call_timeout(Duration::from_secs(5))
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("connects");
    assert_eq!(report.connected, [("allowed".to_owned(), 1)], "{report:?}");
    let failed: Vec<&str> = report.failed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        failed,
        ["by-address", "by-mapped-address", "by-name"],
        "{report:?}"
    );
    for (id, error) in &report.failed {
        assert!(
            matches!(error, DiscoveryError::Refused { .. }),
            "{id}: {error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains("refused: ") && text.contains("127.0.0.1/32"),
            "{id}: {text}"
        );
    }
    let result = fleet
        .call_tool("allowed__search", json!({"query": "q"}))
        .await
        .expect("the allowed server answers");
    assert_eq!(echoed(&result)["server"], "allowed");
    // Reconnection attempts (every 20-50 ms) are refused too: wait for a few of them.
    let first_failures = failure_times(&fleet);
    eventually("three more attempts at every denied server", || async {
        let later = failure_times(&fleet);
        let retried = first_failures.iter().zip(&later).all(|(first, now)| {
            now.1
                .duration_since(first.1)
                .is_ok_and(|d| d > Duration::from_millis(60))
        });
        retried.then_some(())
    })
    .await;
    let states: Vec<ServerState> = fleet.servers().into_iter().map(|s| s.state).collect();
    assert!(
        states.iter().filter(|s| matches!(s, ServerState::Unavailable { reason, .. } if reason.starts_with("refused: "))).count() == 3,
        "{states:?}"
    );
    trap.assert_untouched("discovery").await;
    fleet.shutdown().await;
}

/// When each unavailable server's last attempt failed, in id order.
fn failure_times(fleet: &Discovery) -> Vec<(String, SystemTime)> {
    fleet
        .servers()
        .into_iter()
        .filter_map(|s| match s.state {
            ServerState::Unavailable { since, .. } => Some((s.id, since)),
            _ => None,
        })
        .collect()
}

/// The registry publishes its policy; a host adds its own ranges to it.
#[tokio::test]
async fn the_registry_policy_is_read_and_extended() {
    let registry = TestRegistry::start().await;
    let client = RegistryClient::new(&registry.url).expect("client");
    let published = client
        .address_policy()
        .await
        .expect("readable")
        .expect("published");
    assert_eq!(published, AddressPolicy::default());
    let effective = client
        .effective_address_policy(&deny_trap())
        .await
        .expect("readable");
    assert!(effective.check("127.0.0.1".parse().expect("ip")).is_err());
    assert!(
        effective
            .check("169.254.169.254".parse().expect("ip"))
            .is_err()
    );
    assert!(effective.check("127.0.0.2".parse().expect("ip")).is_ok());
}
