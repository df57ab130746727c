//! The address policy on the gateway's upstreams: the registry's own (read at start from
//! `GET /address-policy`) plus the gateway's additions. A denied upstream is never connected to,
//! whether named or at a literal address, and the gateway reports it and keeps serving the rest.

use std::net::Ipv4Addr;

use mcp_fleet_discovery::{AddressPolicy, PolicyMode};
use mcp_fleet_gateway::{FailureMode, Gateway, GatewayConfig, GatewayError};
use mcp_fleet_model::parse_cidr;
use mcp_fleet_registry::{AppState, Config};
use mcp_fleet_test_support::{TestDb, Trap};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{
    TestGateway, TestRegistry, Upstream, call, connect, eventually, names, server_of,
};

const DENIED: [&str; 2] = ["127.0.0.1/32", "::1/128"];

fn deny_trap() -> AddressPolicy {
    AddressPolicy::new(
        PolicyMode::Default,
        DENIED
            .iter()
            .map(|s| parse_cidr(s).expect("CIDR"))
            .collect(),
        Vec::new(),
    )
}

/// Two registries over one database: `open` accepts entries at any address (as entries
/// registered before the policy tightened, or by a laxer registry, are stored), `denying`
/// denies 127.0.0.1 and ::1 and is the one the gateway follows.
struct Registries {
    open: String,
    denying: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Drop for Registries {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Registries {
    async fn start() -> Self {
        let db = mcp_fleet_test_support::sqlite();
        let shutdown = CancellationToken::new();
        let denying = Config {
            probe_deny: DENIED
                .iter()
                .map(|s| parse_cidr(s).expect("CIDR"))
                .collect(),
            ..Config::default()
        };
        let mut urls = Vec::new();
        for config in [Config::default(), denying] {
            let store = mcp_fleet_store::connect(&db.url).await.expect("open store");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            urls.push(format!("http://{}", listener.local_addr().expect("addr")));
            let state = AppState::new(store, config);
            tokio::spawn(mcp_fleet_registry::serve(listener, state, shutdown.clone()));
        }
        let denying = urls.pop().expect("two");
        let open = urls.pop().expect("two");
        Self {
            open,
            denying,
            http: reqwest::Client::new(),
            shutdown,
            _db: db,
        }
    }

    /// Registers `id` at `url` through the open registry.
    async fn register(&self, id: &str, url: &str) {
        let body = json!({
            "id": id, "name": format!("Upstream {id}"), "url": url,
            "version": "1.0.0", "tags": ["gw"],
        });
        let res = self
            .http
            .post(format!("{}/servers", self.open))
            .json(&body)
            .send()
            .await
            .expect("POST /servers");
        assert!(res.status().is_success(), "{id}: {}", res.status());
    }
}

/// The case: the registry denies loopback, yet holds entries at loopback; a gateway
/// started against it never connects to them, lists and calls the allowed upstream, and names
/// the refused ones when a fail-closed listing is asked for.
#[tokio::test]
async fn a_gateway_never_connects_to_upstreams_the_registry_denies() {
    let registries = Registries::start().await;
    let mut trap = Trap::start().await;
    let port = trap.addr.port();
    let allowed = Upstream::start_on("allowed", &["search"], Ipv4Addr::new(127, 0, 0, 2)).await;
    registries
        .register("trap-name", &format!("http://localhost:{port}"))
        .await;
    registries
        .register("trap-ip", &format!("http://127.0.0.1:{port}"))
        .await;
    registries.register("allowed", &allowed.base_url).await;

    // The denying registry refuses such registrations itself.
    let res = registries
        .http
        .post(format!("{}/servers", registries.denying))
        .json(
            &json!({"id": "direct", "name": "D", "url": format!("http://localhost:{port}"),
                      "version": "1.0.0", "healthCheck": {"mode": "none"}}),
        )
        .send()
        .await
        .expect("POST /servers");
    assert_eq!(res.status(), 400);

    let mut config = GatewayConfig::new(registries.denying.clone());
    config.tags = vec!["gw".into()];
    config.call_timeout = std::time::Duration::from_secs(5);
    let open = TestGateway::start(config.clone()).await;
    let (session, _) = connect(&open.url).await;
    assert_eq!(names(&session).await, ["allowed__search"]);
    let result = call(&session, "allowed__search").await.expect("call");
    assert_eq!(server_of(&result), "allowed");

    config.failure_mode = FailureMode::FailClosed;
    let closed = TestGateway::start(config).await;
    let (closed_session, _) = connect(&closed.url).await;
    let error = closed_session
        .list_all_tools()
        .await
        .expect_err("fail-closed listing with refused upstreams");
    let text = error.to_string();
    assert!(
        text.contains("trap-ip") && text.contains("trap-name"),
        "{text}"
    );

    // An upstream registered later, at another spelling of the address, is refused too.
    registries
        .register("trap-late", &format!("http://[::ffff:127.0.0.1]:{port}"))
        .await;
    eventually("the late upstream to be known and unavailable", || async {
        let text = closed_session.list_all_tools().await.err()?.to_string();
        text.contains("trap-late").then_some(())
    })
    .await;
    trap.assert_untouched("the gateways").await;
    let result = call(&session, "allowed__search").await.expect("call");
    assert_eq!(server_of(&result), "allowed");
}

/// With a registry that allows loopback, the gateway's own ranges deny it; a webhook at a
/// denied literal address stops the gateway from starting, with a message saying why.
#[tokio::test]
async fn the_gateways_own_ranges_add_to_the_registrys() {
    let registry = TestRegistry::start().await;
    let mut trap = Trap::start().await;
    let port = trap.addr.port();
    let allowed = Upstream::start_on("allowed", &["search"], Ipv4Addr::new(127, 0, 0, 2)).await;
    registry
        .register(
            "trap-name",
            "trap-name",
            "1.0.0",
            &format!("http://localhost:{port}"),
        )
        .await;
    registry
        .register(
            "trap-ip",
            "trap-ip",
            "1.0.0",
            &format!("http://127.0.0.1:{port}"),
        )
        .await;
    registry
        .register("allowed", "allowed", "1.0.0", &allowed.base_url)
        .await;

    let mut config = TestGateway::config(&registry);
    config.address_policy = deny_trap();
    let gateway = TestGateway::start(config.clone()).await;
    let (session, _) = connect(&gateway.url).await;
    assert_eq!(names(&session).await, ["allowed__search"]);
    let result = call(&session, "allowed__search").await.expect("call");
    assert_eq!(server_of(&result), "allowed");
    trap.assert_untouched("the gateway").await;

    // Validation only: nothing is sent to the metadata address.
    config.alert_webhooks = vec!["http://169.254.169.254/hook".into()];
    let refused = Gateway::start(config).await.expect_err("refused webhook");
    assert!(
        matches!(refused, GatewayError::WebhookRefused { .. }),
        "{refused}"
    );
    assert_eq!(
        refused.to_string(),
        "alert webhook http://169.254.169.254: refused: address 169.254.169.254 is in the \
         denied range 169.254.0.0/16 (address policy)"
    );
}
