//! Abuse limits: a client over its write rate gets `429` with `Retry-After` while another
//! client is unaffected; caps on entries answer `507` and store nothing.

use mcp_fleet_model::Scope;
use mcp_fleet_registry::Config;
use mcp_fleet_registry::auth::{AuthConfig, AuthMode};
use mcp_fleet_registry::limits::LimitsConfig;
use reqwest::Method;

use crate::auth::token;
use crate::common::{TestRegistry, seed_body, start_with};

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

/// `mcp_fleet_token_lookups_total`: registry tokens looked up in the database so far.
async fn token_lookups(reg: &TestRegistry) -> u64 {
    let text = reg
        .http
        .get(format!("{}/metrics", reg.url))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix("mcp_fleet_token_lookups_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or_else(
            || panic!("no mcp_fleet_token_lookups_total in\n{text}"),
            |v| v as u64,
        )
}

/// Counts the statuses of `n` requests, each presenting a fresh made-up token.
async fn with_forged_tokens(
    reg: &TestRegistry,
    method: Method,
    n: usize,
) -> std::collections::BTreeMap<u16, usize> {
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..n {
        let forged = format!("mcpf_tok_{i}.x");
        let (path, body) = match method {
            Method::POST => ("/servers", Some(seed_body(&format!("forged-{i}"), &["t"]))),
            _ => ("/servers?status=any", None),
        };
        let res = reg
            .send_as(method.clone(), path, Some(&forged), body.as_ref())
            .await;
        *statuses.entry(res.status().as_u16()).or_default() += 1;
    }
    statuses
}

/// Issue #25: 40 listings, each with a fresh made-up `mcpf_tok_<i>.x`, went through a read
/// limit of 5 (burst 5) as 40 clients. They count against their address (as 40 plain
/// requests do: 35 refused), while a verified token keeps a budget of its own, and the flood
/// costs a lookup only for the requests its address's budget admitted.
#[tokio::test]
async fn made_up_token_ids_buy_no_read_budget() {
    let config = Config {
        limits: LimitsConfig {
            read_rate: 5,
            read_burst: 5,
            ..LimitsConfig::default()
        },
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    let (reader, _) = token(&reg, &[Scope::ServersRead], "*", None).await;
    let res = reg
        .send_as(Method::GET, "/servers", Some(&reader), None)
        .await;
    assert_eq!(
        res.status(),
        200,
        "the reader's first listing, on the address's budget"
    );

    let before = token_lookups(&reg).await;
    let statuses = with_forged_tokens(&reg, Method::GET, 40).await;
    let limited = statuses.get(&429).copied().unwrap_or(0);
    let admitted = statuses.get(&200).copied().unwrap_or(0);
    assert!(limited >= 30, "only {limited} of 40 refused: {statuses:?}");
    let lookups = token_lookups(&reg).await - before;
    assert!(
        lookups <= admitted as u64,
        "{lookups} lookups for {admitted} admitted requests"
    );

    // The verified reader has its own budget, untouched by the flood from its address.
    for _ in 0..3 {
        let res = reg
            .send_as(Method::GET, "/servers", Some(&reader), None)
            .await;
        assert_eq!(res.status(), 200);
    }
}

/// Issue #25: with `--auth none`, a forged token let 40 writes through a write limit of 5.
#[tokio::test]
async fn made_up_token_ids_buy_no_write_budget_when_writes_are_open() {
    let config = Config {
        auth: AuthConfig {
            mode: AuthMode::None,
            ..AuthConfig::default()
        },
        limits: LimitsConfig {
            write_rate: 5,
            write_burst: 5,
            ..LimitsConfig::default()
        },
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    let statuses = with_forged_tokens(&reg, Method::POST, 40).await;
    let limited = statuses.get(&429).copied().unwrap_or(0);
    let created = statuses.get(&201).copied().unwrap_or(0);
    assert!(limited >= 30, "only {limited} of 40 refused: {statuses:?}");
    assert_eq!(limited + created, 40, "{statuses:?}");
    assert_eq!(reg.count().await, created, "refused writes stored nothing");
}

/// Issue #25: a flood of one bad token costs one database lookup, not one per request; a
/// revoked token is refused from its next request on.
#[tokio::test]
async fn refused_tokens_are_remembered_and_revocation_is_immediate() {
    let config = Config {
        auth: AuthConfig {
            mode: AuthMode::Token,
            ..AuthConfig::default()
        },
        ..Config::default()
    };
    let reg = start_with(mcp_fleet_test_support::sqlite(), config).await;
    let (writer, writer_id) = token(&reg, &[Scope::ServersWrite], "*", None).await;
    let body = seed_body("lookups", &["t"]);
    let write = |token: String| {
        let reg = &reg;
        let body = &body;
        async move {
            reg.send_as(Method::POST, "/servers", Some(&token), Some(body))
                .await
                .status()
                .as_u16()
        }
    };

    let before = token_lookups(&reg).await;
    for _ in 0..50 {
        assert_eq!(write("mcpf_tok_000000000000.nope".into()).await, 401);
    }
    assert_eq!(
        token_lookups(&reg).await - before,
        1,
        "one lookup for 50 requests"
    );

    // A valid token is looked up on every write, so revoking it takes effect at once.
    assert_eq!(write(writer.clone()).await, 201);
    assert_eq!(write(writer.clone()).await, 200);
    assert!(
        reg.store
            .revoke_token(&writer_id, chrono::Utc::now())
            .await
            .expect("revoke")
    );
    let before = token_lookups(&reg).await;
    for _ in 0..20 {
        assert_eq!(write(writer.clone()).await, 401);
    }
    assert_eq!(
        token_lookups(&reg).await - before,
        1,
        "refused once, then remembered"
    );
}

/// Behind a trusted proxy (`--trusted-proxy`), each client it names in `X-Forwarded-For` or
/// `Forwarded` has its own read budget; a header it cannot read counts against the proxy's own;
/// from an untrusted peer the headers are ignored, so a client cannot buy budgets by inventing
/// addresses.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_have_their_own_budgets() {
    const BURST: u32 = 5;
    let limits = |trusted: &[&str]| Config {
        limits: LimitsConfig {
            read_rate: 1,
            read_burst: BURST,
            trusted_proxies: trusted
                .iter()
                .map(|s| mcp_fleet_registry::parse_cidr(s).expect("CIDR"))
                .collect(),
            ..LimitsConfig::default()
        },
        ..Config::default()
    };
    // The test's requests come from 127.0.0.1: the proxy.
    let behind = start_with(mcp_fleet_test_support::sqlite(), limits(&["127.0.0.0/8"])).await;
    let exposed = start_with(mcp_fleet_test_support::sqlite(), limits(&["10.0.0.0/8"])).await;
    let read = |reg: &TestRegistry, header: (&'static str, &'static str)| {
        let req = reg
            .http
            .get(format!("{}/servers", reg.url))
            .header(header.0, header.1);
        async move { req.send().await.expect("GET").status().as_u16() }
    };
    let xff = |v| ("x-forwarded-for", v);
    // A budget refills by one a second: a slow machine may see that many more admitted.
    let started = std::time::Instant::now();
    let refilled = || started.elapsed().as_secs() as usize;
    // Client a spends its budget through the proxy.
    for _ in 0..BURST {
        assert_eq!(read(&behind, xff("198.51.100.1")).await, 200);
    }
    // Then is refused, also by its other spelling, and with an address it made up on the left.
    let again = [
        read(&behind, xff("198.51.100.1")).await,
        read(&behind, ("forwarded", "for=198.51.100.1")).await,
        read(&behind, xff("203.0.113.9, 198.51.100.1")).await,
    ];
    let admitted = again.iter().filter(|s| **s == 200).count();
    assert!(admitted <= refilled(), "{again:?}");
    // Another client behind the same proxy is not affected.
    assert_eq!(read(&behind, xff("198.51.100.2")).await, 200);
    assert_eq!(
        read(&behind, ("forwarded", "for=\"[2001:db8::2]:4711\"")).await,
        200
    );
    // Bad header values name nobody: they share the proxy's own budget.
    let bad = ["not-an-address", "", "198.51.100.3, junk"];
    let mut statuses = Vec::new();
    for _ in 0..=BURST {
        for value in bad {
            statuses.push(read(&behind, xff(value)).await);
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        BURST as usize
    );
    assert!(
        statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
    // Not from a trusted proxy: every header is ignored and the peer is the client.
    let started = std::time::Instant::now();
    let refilled = || started.elapsed().as_secs() as usize;
    for i in 0..BURST {
        let status = exposed
            .http
            .get(format!("{}/servers", exposed.url))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .send()
            .await
            .expect("GET")
            .status();
        assert_eq!(status, 200);
    }
    let again = [
        read(&exposed, xff("198.51.100.99")).await,
        read(&exposed, ("forwarded", "for=198.51.100.98")).await,
    ];
    let admitted = again.iter().filter(|s| **s == 200).count();
    assert!(admitted <= refilled(), "{again:?}");
}
