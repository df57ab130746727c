//! Acknowledged registrations survive restarts and `kill -9`, on every backend.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use mcp_fleet_discovery::{ListOptions, RegistryClient};
use serde_json::{Value, json};

use crate::common::serve;

fn body(id: &str) -> Value {
    json!({
        "id": id,
        "name": format!("Server {id}"),
        "url": "http://127.0.0.1:9",
        "version": "1.0.0",
        "tags": ["durability"],
    })
}

async fn stored_ids(url: &str) -> BTreeSet<String> {
    let client = RegistryClient::new(url).expect("client");
    let all = client
        .list_all(&ListOptions {
            status: Some("any".into()),
            limit: Some(1000),
            ..ListOptions::default()
        })
        .await
        .expect("list");
    all.into_iter().map(|e| e.id.to_string()).collect()
}

#[tokio::test]
async fn entries_survive_a_graceful_restart() {
    for db in mcp_fleet_test_support::all_backends().await {
        let server = serve(&db.url).await;
        let client = RegistryClient::new(&server.url).expect("client");
        for id in ["alpha", "beta", "gamma"] {
            client.register(&body(id)).await.expect("register");
        }
        server.terminate().await;

        let server = serve(&db.url).await;
        let ids = stored_ids(&server.url).await;
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            ["alpha", "beta", "gamma"],
            "{}",
            db.backend
        );
        server.terminate().await;
    }
}

/// Registrations stream in from 8 writers; the registry is SIGKILLed mid-stream. Every
/// registration answered 2xx before the kill must be there after a restart.
#[tokio::test]
async fn kill_9_loses_no_acknowledged_registration() {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 2000;
    const KILL_AFTER: usize = 300;
    for db in mcp_fleet_test_support::all_backends().await {
        let server = serve(&db.url).await;
        let acked = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let client = RegistryClient::new(&server.url).expect("client");
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                for n in 0..PER_WRITER {
                    let id = format!("w{w}-{n:05}");
                    match client.register(&body(&id)).await {
                        Ok(_) => acked.lock().expect("lock").push(id),
                        Err(_) => return, // the registry is gone
                    }
                }
            }));
        }
        mcp_fleet_test_support::eventually(
            std::time::Duration::from_secs(60),
            "enough acknowledged registrations",
            || {
                let n = acked.lock().expect("lock").len();
                async move { (n >= KILL_AFTER).then_some(()) }
            },
        )
        .await;
        server.kill_hard().await;
        for w in writers {
            w.await.expect("writer task");
        }
        let acked: BTreeSet<String> = acked.lock().expect("lock").iter().cloned().collect();
        assert!(
            acked.len() < WRITERS * PER_WRITER,
            "the kill came after every write: nothing was tested"
        );

        let server = serve(&db.url).await;
        let stored = stored_ids(&server.url).await;
        let lost: Vec<_> = acked.difference(&stored).collect();
        eprintln!(
            "{}: {} acknowledged before SIGKILL, {} stored after restart",
            db.backend,
            acked.len(),
            stored.len()
        );
        assert!(
            lost.is_empty(),
            "{}: lost {} acknowledged: {lost:?}",
            db.backend,
            lost.len()
        );
        server.terminate().await;
    }
}
