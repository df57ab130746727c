//! The registry's change feed read with `ChangeFeed`: changes in commit order with their
//! revisions, a follower started after a revision gets exactly what came after it, and a place
//! the registry does not have is its `410`.

use mcp_fleet_discovery::{ChangeFeed, ClientError, RegistryClient};
use serde_json::json;

use crate::common::{DEADLINE, TestRegistry, registration};

async fn next(feed: &mut ChangeFeed) -> mcp_fleet_discovery::Change {
    tokio::time::timeout(DEADLINE, feed.next())
        .await
        .expect("a change in time")
        .expect("a change")
}

#[tokio::test]
async fn changes_in_order_and_resumed_after_a_revision() {
    let registry = TestRegistry::start().await;
    let client = RegistryClient::new(&registry.url).expect("client");
    let none = json!({"type": "none"});

    let mut feed = ChangeFeed::new(client.clone(), None);
    let opened_at = feed.connect().await.expect("opens").expect("a revision");
    registry
        .register(&registration(
            "alpha",
            "http://127.0.0.1:9",
            &["t"],
            none.clone(),
        ))
        .await;
    let created = next(&mut feed).await;
    assert_eq!(created.kind, "created");
    assert_eq!(created.subject(), Some("alpha"));
    assert_eq!(created.data["tags"], json!(["t"]));
    assert!(
        created.revision > opened_at,
        "{created:?} after {opened_at}"
    );
    assert_eq!(feed.revision(), Some(created.revision));

    // Changes made while nobody follows reach a follower that starts after the last one seen,
    // each once, in order.
    drop(feed);
    registry
        .register(&registration("beta", "http://127.0.0.1:9", &["t"], none))
        .await;
    registry.deregister("alpha").await;
    let mut feed = ChangeFeed::new(client.clone(), Some(created.revision));
    let beta = next(&mut feed).await;
    let gone = next(&mut feed).await;
    assert_eq!(
        (beta.kind.as_str(), beta.subject()),
        ("created", Some("beta"))
    );
    assert_eq!(
        (gone.kind.as_str(), gone.subject()),
        ("deleted", Some("alpha"))
    );
    assert_eq!(beta.revision, created.revision + 1);
    assert_eq!(gone.revision, beta.revision + 1);

    // A revision this registry never reached: its history is not this one.
    let mut ahead = ChangeFeed::new(client, Some(gone.revision + 1000));
    match ahead.connect().await {
        Err(ClientError::Problem { status: 410, .. }) => {}
        other => panic!("expected a 410, got {other:?}"),
    }
}

#[tokio::test]
async fn an_endless_event_ends_the_read_with_the_limit_named() {
    let stop = tokio_util::sync::CancellationToken::new();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                crate::answers::endless_event(),
            )
        }),
    );
    let url = mcp_fleet_test_support::serve(app, stop.clone()).await;
    let mut feed = ChangeFeed::new(RegistryClient::new(&url).expect("client"), Some(0));
    let error = tokio::time::timeout(DEADLINE, feed.next())
        .await
        .expect("the read ends in time")
        .expect_err("no change in an endless event");
    assert!(
        matches!(&error, ClientError::Decode(text) if text.contains("larger than 4194304 bytes")),
        "{error}"
    );
    stop.cancel();
}
