//! The SSRF guard: denied addresses and names are refused at registration and never probed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mcp_fleet_registry::{Config, HealthConfig};
use mcp_fleet_test_support::{eventually, sqlite};
use tokio_util::sync::CancellationToken;

use super::{entry, quick, register, status_is};
use crate::common::{live_server, start_checked_denying, start_checked_with, start_sqlite};

/// URLs at denied literal addresses are refused at registration, naming the field.
#[tokio::test]
async fn registering_a_denied_address_names_the_field() {
    let reg = start_sqlite().await;
    let ok = "http://10.0.0.5:8080";
    let metadata = "http://169.254.169.254/latest/meta-data";
    // (url, healthUrl, field named)
    let rows = [
        (metadata, None, "url"),
        ("http://[::ffff:169.254.169.254]", None, "url"),
        (ok, Some(metadata), "healthUrl"),
    ];
    for (url, health_url, field) in rows {
        let (status, problem) = reg.post(&entry("meta", url, health_url, "none")).await;
        assert_eq!(status, 400, "{url} {health_url:?}: {problem}");
        assert_eq!(problem["code"], "validation-failed");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("169.254.0.0/16"), "{problem}");
    }
    assert_eq!(reg.count().await, 0, "nothing is stored");
}

/// With loopback denied, a name that resolves to loopback is never connected to: `localhost`
/// is refused at registration like a literal loopback address, and an entry at another such name
/// (here `localhost`, stored under a looser policy) is down with a "refused: " error from both
/// probe kinds (HTTP and MCP), while the listener behind the name accepts nothing.
#[tokio::test]
async fn a_denied_name_is_never_probed() {
    let mut trap = mcp_fleet_test_support::Trap::start().await;
    let addr = trap.addr;
    let denied = ["127.0.0.0/8", "::1/128"];
    let (checked, _checked_worker) = start_checked_denying(sqlite(), quick(), &denied).await;
    let base = format!("http://localhost:{}", addr.port());
    for url in [format!("http://{addr}"), base.clone()] {
        let (status, problem) = checked.post(&entry("literal", &url, None, "none")).await;
        assert_eq!(status, 400, "{url}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("127.0.0.0/8"), "{problem}");
    }
    drop(checked);

    // The worker refuses entries however they got in.
    let mut health = quick();
    health.deny = denied
        .iter()
        .map(|s| mcp_fleet_registry::parse_cidr(s).expect("test CIDR"))
        .collect();
    let (reg, worker) = start_checked_with(sqlite(), Config::default(), health).await;
    register(
        &reg,
        &entry("sneaky", &base, Some(&format!("{base}/health")), "none"),
    )
    .await;
    register(&reg, &entry("sneaky-mcp", &base, None, "none")).await;
    for id in ["sneaky", "sneaky-mcp"] {
        let e = status_is(&reg, id, "down").await;
        let error = e["lastError"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("refused: ") && error.contains("127.0.0.0/8"),
            "{e}"
        );
        assert!(e["lastSeen"].is_null(), "{e}");
    }
    let probes = worker.stats().probes.load(Ordering::Relaxed);
    eventually(Duration::from_secs(10), "another probe", || async {
        (worker.stats().probes.load(Ordering::Relaxed) > probes).then_some(())
    })
    .await;

    trap.assert_untouched("the probes").await;
}

/// A strict worker (`--probe-policy strict`) never probes loopback, named or literal, unless
/// `--probe-allow-cidr` names it; the entries got in under a laxer registry.
#[tokio::test]
async fn a_strict_worker_probes_loopback_only_where_allowed() {
    let servers = CancellationToken::new();
    let _stop = servers.clone().drop_guard();
    let live = live_server(servers.clone()).await;
    let port = live.rsplit(':').next().expect("port");
    let strict = |allow: &[&str]| HealthConfig {
        policy: mcp_fleet_model::PolicyMode::Strict,
        allow: allow
            .iter()
            .map(|s| mcp_fleet_registry::parse_cidr(s).expect("test CIDR"))
            .collect(),
        ..quick()
    };
    let (reg, _worker) = start_checked_with(sqlite(), Config::default(), strict(&[])).await;
    let named = format!("http://localhost:{port}");
    register(
        &reg,
        &entry("literal", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    register(
        &reg,
        &entry("named", &named, Some(&format!("{named}/health")), "none"),
    )
    .await;
    for id in ["literal", "named"] {
        let e = status_is(&reg, id, "down").await;
        let error = e["lastError"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("refused: address 127.0.0.1 is in the denied range 127.0.0.0/8"),
            "{e}"
        );
    }

    let (allowed, _worker) =
        start_checked_with(sqlite(), Config::default(), strict(&["127.0.0.1"])).await;
    register(
        &allowed,
        &entry("literal", &live, Some(&format!("{live}/health")), "none"),
    )
    .await;
    status_is(&allowed, "literal", "healthy").await;
}
