//! The address policy from the command line: `serve --probe-policy strict` refuses loopback and
//! private addresses and publishes its policy; `tools` reads the registry's policy, adds its own
//! flags, and never connects to a server they deny.

use mcp_fleet_test_support::Trap;
use serde_json::Value;

use crate::common::{run, serve_command, spawn_command};

#[tokio::test]
async fn strict_registries_refuse_loopback_and_tools_never_reach_denied_servers() {
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.args(["--probe-policy", "strict", "--no-health-worker"]);
    let strict = spawn_command(cmd).await;
    let policy: Value = reqwest::get(format!("{}/address-policy", strict.url))
        .await
        .expect("GET /address-policy")
        .json()
        .await
        .expect("JSON");
    assert_eq!(policy["mode"], "strict", "{policy}");
    for url in [
        "http://localhost:9",
        "http://10.0.0.5:9",
        "http://[::ffff:127.0.0.1]:9",
    ] {
        let (ok, _, err) = run(&[
            "register",
            "--registry",
            &strict.url,
            "--id",
            "local",
            "--name",
            "Local",
            "--url",
            url,
            "--server-version",
            "1.0.0",
        ])
        .await;
        assert!(!ok, "{url} was accepted");
        assert!(err.contains("may not point at address"), "{url}: {err}");
    }
    strict.terminate().await;

    // A registry that allows loopback holds an entry at the trap; `tools` with its own deny
    // flags reports it refused and never connects to it.
    let db = mcp_fleet_test_support::sqlite();
    let mut cmd = serve_command(&db.url);
    cmd.arg("--no-health-worker");
    let open = spawn_command(cmd).await;
    let mut trap = Trap::start().await;
    let trap_url = format!("http://localhost:{}", trap.addr.port());
    let (ok, _, err) = run(&[
        "register",
        "--registry",
        &open.url,
        "--id",
        "trapped",
        "--name",
        "Trapped",
        "--url",
        &trap_url,
        "--server-version",
        "1.0.0",
    ])
    .await;
    assert!(ok, "{err}");
    let (_, out, err) = run(&[
        "tools",
        "--registry",
        &open.url,
        "--probe-deny-cidr",
        "127.0.0.1,::1",
        "--json",
    ])
    .await;
    let listed: Value = serde_json::from_str(&out).expect("JSON output");
    let failure = listed["failed"][0]["error"].as_str().unwrap_or_default();
    assert!(
        failure.contains("refused: ") && failure.contains("127.0.0.1/32"),
        "{out} {err}"
    );
    trap.assert_untouched("mcp-fleet tools").await;
    open.terminate().await;
}
