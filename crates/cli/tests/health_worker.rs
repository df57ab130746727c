//! `serve --no-health-worker` plus a separate `health-worker` process on the same database.

use std::process::Stdio;
use std::time::Duration;

use mcp_fleet_discovery::RegistryClient;
use mcp_fleet_model::HealthStatus;
use mcp_fleet_sample_servers::Sample;
use tokio_util::sync::CancellationToken;

use crate::common::{PROCESS_DEADLINE, binary, spawn_listening};

#[tokio::test]
async fn a_separate_health_worker_process_checks_the_fleet() {
    for db in mcp_fleet_test_support::all_backends().await {
        let api = spawn_listening(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db.url,
            "--no-health-worker",
            "--read-cache-ttl",
            "0s",
        ])
        .await;
        let mut worker = binary()
            .args([
                "health-worker",
                "--database-url",
                &db.url,
                "--health-interval",
                "1s",
                "--health-timeout",
                "1s",
            ])
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn health-worker");

        let token = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let sample = mcp_fleet_sample_servers::start(Sample::Catalog, listener, token.clone())
            .await
            .expect("sample");
        let _announced = sample.announce(&api.url).await.expect("register");

        let client = RegistryClient::new(&api.url).expect("client");
        let entry = mcp_fleet_test_support::eventually(
            Duration::from_secs(20),
            "the worker process to mark the sample healthy",
            || async {
                let e = client.get("catalog").await.expect("get").expect("entry");
                (e.status == HealthStatus::Healthy).then_some(e)
            },
        )
        .await;
        assert!(
            entry.last_checked_at.is_some() && entry.latency_ms.is_some(),
            "{}",
            db.backend
        );

        // On-demand checks need a worker in the API process.
        let res = reqwest::Client::new()
            .post(format!("{}/servers/catalog/check", api.url))
            .send()
            .await
            .expect("POST check");
        assert_eq!(res.status(), 503);

        // The server goes away: the worker process marks it down.
        token.cancel();
        mcp_fleet_test_support::eventually(
            Duration::from_secs(20),
            "the worker process to mark the sample down",
            || async {
                let e = client.get("catalog").await.expect("get").expect("entry");
                (e.status == HealthStatus::Down).then_some(())
            },
        )
        .await;

        let pid = worker.id().expect("pid");
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        let exit = tokio::time::timeout(PROCESS_DEADLINE, worker.wait())
            .await
            .expect("worker did not stop")
            .expect("wait");
        assert!(exit.success(), "health-worker exit: {exit}");
        api.terminate().await;
    }
}
