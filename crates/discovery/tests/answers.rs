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
