//! Upstreams that need credentials, from the command line: `tools`, `call` and `gateway` take
//! `--upstream-token`, `--upstream-oauth2`, their environment variables and
//! `--credentials-file`; a missing credential is named with those options; secrets never reach
//! the logs.

use std::process::Stdio;

use mcp_fleet_sample_servers::Sample;
use mcp_fleet_test_support::{TokenEndpoint, accepting, require_bearer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::common::{PROCESS_DEADLINE, binary, run, serve_command, spawn_command};

/// `sample`'s MCP server, answering only bearers of `accepted` tokens; its base URL.
async fn guarded(
    sample: Sample,
    accepted: mcp_fleet_test_support::Accepted,
    stop: &CancellationToken,
) -> String {
    let app = require_bearer(sample.router(stop.child_token()), accepted);
    mcp_fleet_test_support::serve(app, stop.clone()).await
}

/// Registers server `id` of `service` at `url` under tag `tag`, with `auth` flags.
async fn register(registry: &str, id: &str, service: &str, url: &str, tag: &str, auth: &[&str]) {
    let mut args = vec![
        "register",
        "--registry",
        registry,
        "--id",
        id,
        "--service",
        service,
        "--name",
        id,
        "--url",
        url,
        "--server-version",
        "1.0.0",
        "--tags",
        tag,
    ];
    args.extend_from_slice(auth);
    let (ok, _, err) = run(&args).await;
    assert!(ok, "register {id}: {err}");
}

/// Runs `mcp-fleet ARGS` with `env` set: (success, stdout, stderr).
async fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = binary();
    cmd.args(args).envs(env.iter().copied());
    let out = tokio::time::timeout(PROCESS_DEADLINE, cmd.output())
        .await
        .expect("command timed out")
        .expect("run mcp-fleet");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn tools_call_and_gateway_reach_upstreams_that_need_credentials() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.arg("--no-health-worker");
    let registry = spawn_command(cmd).await;
    let stop = CancellationToken::new();
    let endpoint = TokenEndpoint::start("agent", "hunter2", 3600).await;
    let vault = guarded(Sample::Catalog, accepting(&["s3cret"]), &stop).await;
    let ledger = guarded(Sample::Inventory, endpoint.accepted(), &stop).await;
    let r = registry.url.as_str();
    register(
        r,
        "vault-1",
        "vault",
        &vault,
        "secure",
        &["--auth-type", "bearer"],
    )
    .await;
    let oauth2 = [
        "--auth-type",
        "oauth2",
        "--auth-token-endpoint",
        &endpoint.url,
    ];
    register(r, "ledger-1", "ledger", &ledger, "secure", &oauth2).await;

    // No credentials: each server is skipped with the options that would reach it.
    let (ok, _, err) = run(&["tools", "--registry", r, "--tags", "secure"]).await;
    assert!(ok, "{err}");
    for want in [
        "skipping server vault-1",
        "--upstream-token vault=TOKEN, MCP_FLEET_UPSTREAM_TOKENS or --credentials-file",
        "--upstream-oauth2 ledger=CLIENT_ID:CLIENT_SECRET, MCP_FLEET_UPSTREAM_OAUTH2 or \
         --credentials-file",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(!err.contains("DiscoveryBuilder::bearer_token"), "{err}");

    // Options by service, and their environment variables.
    let search = ["--args", r#"{"query": "laptop"}"#];
    let mut args = vec![
        "call",
        "--registry",
        r,
        "--tags",
        "secure",
        "search_products",
    ];
    args.extend_from_slice(&search);
    args.extend_from_slice(&["--upstream-token", "vault=s3cret", "--json"]);
    args.extend_from_slice(&["--upstream-oauth2", "ledger=agent:hunter2"]);
    let (ok, out, err) = run(&args).await;
    assert!(ok, "{err}");
    assert!(out.contains("structuredContent"), "{out}");
    assert!(!err.contains("skipping"), "both reached: {err}");
    let low = [
        "call",
        "--registry",
        r,
        "--tags",
        "secure",
        "list_low_stock",
    ];
    let env = [
        ("MCP_FLEET_UPSTREAM_TOKENS", "vault=s3cret"),
        ("MCP_FLEET_UPSTREAM_OAUTH2", "ledger=agent:hunter2"),
    ];
    let (ok, _, err) = run_with_env(&low, &env).await;
    assert!(ok, "{err}");
    assert!(!err.contains("skipping"), "both reached: {err}");

    // A file (TOML), its secret in the environment; the command line beats the file.
    let dir = tempfile::tempdir().expect("temp dir");
    let toml = dir.path().join("credentials.toml");
    std::fs::write(
        &toml,
        "[servers.vault-1]\ntoken = \"wrong\"\n\n[services.ledger]\nclient_id = \"agent\"\n\
         client_secret = { env = \"LEDGER_SECRET\" }\n",
    )
    .expect("write credentials file");
    let file = toml.to_str().expect("UTF-8 path");
    let mut args = low.to_vec();
    args.extend_from_slice(&["--credentials-file", file]);
    let (ok, _, err) = run_with_env(&args, &[("LEDGER_SECRET", "hunter2")]).await;
    assert!(ok, "{err}");
    assert!(
        err.contains("skipping server vault-1") && err.contains("HTTP 401"),
        "the file's wrong token for vault-1 was used: {err}"
    );
    args.extend_from_slice(&["--upstream-token", "vault-1=s3cret"]);
    let (ok, _, err) = run_with_env(&args, &[("LEDGER_SECRET", "hunter2")]).await;
    assert!(ok && !err.contains("skipping"), "{err}");
    let (ok, _, err) = run(&args).await;
    assert!(!ok, "LEDGER_SECRET unset");
    assert!(
        err.contains("client_secret names environment variable LEDGER_SECRET, which is not set"),
        "{err}"
    );
    let (ok, _, err) = run(&["tools", "--registry", r, "--upstream-token", "hunter2"]).await;
    assert!(!ok);
    assert!(
        err.contains("--upstream-token (or MCP_FLEET_UPSTREAM_TOKENS): must look like"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the value is not echoed: {err}");

    // The gateway, from a JSON file and an environment variable, logging at debug.
    let json = dir.path().join("credentials.json");
    std::fs::write(
        &json,
        r#"{"services": {"ledger": {"client_id": "agent", "client_secret": {"env": "LEDGER_SECRET"}}}}"#,
    )
    .expect("write credentials file");
    let log = dir.path().join("gateway.log");
    let mut gateway = binary();
    gateway
        .args(["gateway", "--registry", r, "--listen", "127.0.0.1:0"])
        .args(["--gateway-tags", "secure", "--credentials-file"])
        .arg(&json)
        .envs([
            ("MCP_FLEET_UPSTREAM_TOKENS", "vault=s3cret"),
            ("LEDGER_SECRET", "hunter2"),
            ("RUST_LOG", "debug"),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let mut gateway = gateway.spawn().expect("spawn gateway");
    let mut lines = BufReader::new(gateway.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(PROCESS_DEADLINE, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(rest) = line.strip_prefix("gateway listening on ") {
                let mcp = rest.split_whitespace().next().unwrap_or_default();
                return mcp.trim_end_matches("/mcp").to_owned();
            }
        }
        panic!("the gateway exited before listening");
    })
    .await
    .expect("the gateway did not start in time");
    // The gateway is itself an MCP server: registered, `call` reaches both upstreams through it.
    register(r, "front", "front", &url, "front", &[]).await;
    for (tool, args) in [
        ("vault__search_products", r#"{"query": "laptop"}"#),
        ("ledger__list_low_stock", "{}"),
    ] {
        let (ok, out, err) = run(&[
            "call",
            "--registry",
            r,
            "--tags",
            "front",
            tool,
            "--args",
            args,
            "--json",
        ])
        .await;
        assert!(ok, "{tool} through the gateway: {err}");
        assert!(out.contains("structuredContent"), "{out}");
    }
    assert!(endpoint.issued() >= 1);
    let pid = gateway.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    tokio::time::timeout(PROCESS_DEADLINE, gateway.wait())
        .await
        .expect("the gateway did not stop")
        .expect("wait");
    let logged = std::fs::read_to_string(&log).expect("read the gateway's log");
    assert!(logged.contains("DEBUG"), "logged at debug: {logged}");
    let issued = (0..endpoint.issued()).map(|n| format!("token-{n}"));
    for secret in ["s3cret".to_owned(), "hunter2".to_owned()]
        .into_iter()
        .chain(issued)
    {
        assert!(!logged.contains(&secret), "{secret} in the gateway's log");
    }
    stop.cancel();
    registry.terminate().await;
}
