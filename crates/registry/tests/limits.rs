//! Abuse limits: a client over its write rate gets `429` with `Retry-After` while another
//! client is unaffected; caps on entries answer `507` and store nothing.

use mcp_fleet_model::Scope;
use mcp_fleet_registry::Config;
use mcp_fleet_registry::limits::LimitsConfig;
use reqwest::Method;

use crate::auth::token;
use crate::common::{seed_body, start_with};

#[tokio::test]
async fn a_burst_is_limited_and_other_clients_are_not() {
    let config = Config {
        limits: LimitsConfig {
            write_rate: 2,
            write_burst: 10,
            read_rate: 5,
            read_burst: 20,
            ..LimitsConfig::default()
        },
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    let (a, _) = token(&reg, &[Scope::ServersWrite], "a-*", None).await;
    let (b, _) = token(&reg, &[Scope::ServersWrite], "b-*", None).await;

    // Client a bursts 30 writes, interleaved with client b's normal traffic.
    let (mut ok, mut limited) = (0, 0);
    for i in 0..30 {
        let res = reg
            .send_as(
                Method::POST,
                "/servers",
                Some(&a),
                Some(&seed_body(&format!("a-{i}"), &["t"])),
            )
            .await;
        match res.status().as_u16() {
            201 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("Retry-After in seconds");
                assert!((1..=60).contains(&retry), "{retry}");
                let body: serde_json::Value = res.json().await.expect("problem");
                assert_eq!(body["code"], "rate-limited");
            }
            other => panic!("unexpected {other}"),
        }
        if i % 10 == 0 {
            let res = reg
                .send_as(
                    Method::POST,
                    "/servers",
                    Some(&b),
                    Some(&seed_body(&format!("b-{i}"), &["t"])),
                )
                .await;
            assert_eq!(
                res.status(),
                201,
                "client b is not limited by client a's burst"
            );
        }
    }
    // The burst allowance (and what refilled meanwhile) went through; the rest was refused.
    assert!((10..=15).contains(&ok), "{ok} accepted");
    assert_eq!(ok + limited, 30);
    // Refused writes stored nothing.
    assert_eq!(reg.count().await, ok + 3);

    // Reads have their own budget: listing from an address is limited past its burst.
    let mut read_limited = false;
    for _ in 0..40 {
        if reg.get("/servers?status=any").await.0 == 429 {
            read_limited = true;
            break;
        }
    }
    assert!(read_limited);
    // Lookups of one entry are not limited.
    assert_eq!(reg.get("/servers/b-0").await.0, 200);
}

#[tokio::test]
async fn entry_caps_are_enforced() {
    let config = Config {
        limits: LimitsConfig {
            max_entries: Some(3),
            max_entries_per_principal: Some(2),
            ..LimitsConfig::default()
        },
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    let (t, _) = token(&reg, &[Scope::ServersWrite], "*", None).await;
    let (u, _) = token(&reg, &[Scope::ServersWrite], "*", None).await;
    for id in ["one", "two"] {
        let res = reg
            .send_as(
                Method::POST,
                "/servers",
                Some(&t),
                Some(&seed_body(id, &[])),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    // A third entry for the same token: over its cap.
    let res = reg
        .send_as(
            Method::POST,
            "/servers",
            Some(&t),
            Some(&seed_body("three", &[])),
        )
        .await;
    assert_eq!(res.status(), 507);
    let body: serde_json::Value = res.json().await.expect("problem");
    assert_eq!(body["code"], "limit-reached");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("--max-entries-per-token 2")
    );
    // Replacing one of its own is fine.
    let res = reg
        .send_as(
            Method::POST,
            "/servers",
            Some(&t),
            Some(&seed_body("two", &[])),
        )
        .await;
    assert_eq!(res.status(), 200);
    // Another token fills the registry to its cap, then the registry is full.
    let res = reg
        .send_as(
            Method::POST,
            "/servers",
            Some(&u),
            Some(&seed_body("three", &[])),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = reg
        .send_as(
            Method::POST,
            "/servers",
            Some(&u),
            Some(&seed_body("four", &[])),
        )
        .await;
    assert_eq!(res.status(), 507);
    let body: serde_json::Value = res.json().await.expect("problem");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("--max-entries 3")
    );
    assert_eq!(reg.count().await, 3);
}
