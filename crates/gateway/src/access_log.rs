//! One access-log line per request (as the registry's): a `request` span with method, route,
//! status and latency, and an `answered` line in it at `info` (server errors at `warn`).

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The target of access-log lines: `RUST_LOG=info,mcp_fleet::access=warn` keeps only those of
/// server errors.
const ACCESS_LOG: &str = "mcp_fleet::access";

type Layer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> Span,
    (),
    fn(&Response, Duration, &Span),
    (),
    (),
    (),
>;

/// The layer logging every request of the gateway's router.
pub(crate) fn layer() -> Layer {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request) -> Span)
        .on_request(())
        .on_response(on_response as fn(&Response, Duration, &Span))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

fn request_span(req: &Request) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

fn on_response(res: &Response, latency: Duration, span: &Span) {
    span.record("status", res.status().as_u16());
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    if res.status().is_server_error() {
        tracing::warn!(target: ACCESS_LOG, "answered");
    } else {
        tracing::info!(target: ACCESS_LOG, "answered");
    }
}
