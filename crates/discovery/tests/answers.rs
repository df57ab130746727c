//! Servers that answer `initialize` with an HTTP error: each is reported as a failed connect
//! with the status in its message, never a hang or a panic (the library posts rmcp's requests
//! itself over kept connections, so it reads these answers itself too).

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use mcp_fleet_discovery::Discovery;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::common::{TestRegistry, registration};

/// What a test server answers every request with.
type Answer = fn() -> axum::response::Response;

/// Serves `answer` to every `POST /mcp`; returns the base URL.
async fn answering(answer: Answer, stop: &CancellationToken) -> String {
    let app = Router::new().route("/mcp", post(move || async move { answer() }));
    mcp_fleet_test_support::serve(app, stop.clone()).await
}

#[tokio::test]
async fn http_errors_on_initialize_are_reported_with_their_status() {
    let registry = TestRegistry::start().await;
    let stop = CancellationToken::new();
    let cases: [(&str, Answer, &str); 4] = [
        (
            "plain-500",
            || (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
            "500",
        ),
        (
            "busy-429",
            || {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "7")],
                    "slow down",
                )
                    .into_response()
            },
            "429",
        ),
        (
            "bad-400",
            || {
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"detail":"no"}"#,
                )
                    .into_response()
            },
            "400",
        ),
        (
            "rpc-503",
            || {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "application/json")],
                    json!({"jsonrpc": "2.0", "id": 0, "error": {"code": -32000, "message": "warming up"}})
                        .to_string(),
                )
                    .into_response()
            },
            "warming up",
        ),
    ];
    for (id, answer, _) in &cases {
        let url = answering(*answer, &stop).await;
        registry
            .register(&registration(
                id,
                &url,
                &["answers"],
                json!({"type": "none"}),
            ))
            .await;
    }
    let fleet = Discovery::builder(&registry.url)
        .tags(["answers"])
        .build()
        .expect("builds");
    let report = fleet.connect().await.expect("registry answers");
    assert!(report.connected.is_empty(), "{report:?}");
    assert_eq!(report.failed.len(), cases.len(), "{report:?}");
    for (id, _, says) in &cases {
        let (_, error) = report
            .failed
            .iter()
            .find(|(failed, _)| failed == id)
            .unwrap_or_else(|| panic!("{id} is not among the failures: {report:?}"));
        let text = error.to_string();
        assert!(text.contains(id), "{id}: {text}");
        assert!(text.contains(says), "{id}: expected {says:?} in {text}");
    }
    fleet.shutdown().await;
    stop.cancel();
}

/// An event stream whose one event never ends: `data: xxxx…`, 64 KiB a piece, for ever.
pub(crate) fn endless_event() -> axum::body::Body {
    let piece = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
    let pieces = std::iter::once(bytes::Bytes::from_static(b"data: "))
        .chain(std::iter::repeat(piece))
        .map(Ok::<_, std::convert::Infallible>);
    axum::body::Body::from_stream(futures::stream::iter(pieces))
}

#[tokio::test]
async fn an_endless_event_ends_the_connect_with_its_limit() {
    let registry = TestRegistry::start().await;
    let stop = CancellationToken::new();
    let url = answering(
        || {
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                endless_event(),
            )
                .into_response()
        },
        &stop,
    )
    .await;
    registry
        .register(&registration(
            "endless",
            &url,
            &["endless"],
            json!({"type": "none"}),
        ))
        .await;
    let fleet = Discovery::builder(&registry.url)
        .tags(["endless"])
        .build()
        .expect("builds");
    let report = tokio::time::timeout(crate::common::DEADLINE, fleet.connect())
        .await
        .expect("the connect ends in time")
        .expect("registry answers");
    assert!(report.connected.is_empty(), "{report:?}");
    // After rmcp's limit of one event (16 MiB) the answer is dropped: rmcp reports the
    // initialize answer as cut short.
    let (id, error) = report.failed.first().expect("the server failed");
    assert_eq!(id, "endless", "{report:?}");
    assert!(error.to_string().contains("initialize"), "{error}");
    fleet.shutdown().await;
    stop.cancel();
}
