//! Routes: one file per resource, all listed in [`table`].

pub(crate) mod checks;
pub(crate) mod contracts;
pub(crate) mod docs;
pub(crate) mod events;
pub(crate) mod list_query;
pub(crate) mod metrics;
pub(crate) mod observations;
pub(crate) mod page;
pub(crate) mod policy;
pub(crate) mod probes;
pub(crate) mod servers;
pub(crate) mod services;
pub(crate) mod status;
pub(crate) mod tools;
pub(crate) mod v01;

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::AppState;
use crate::cache::ReadCache;
use crate::error::ApiError;

/// Every route, as `(path, handlers)`. Add routes here, never with `.route` in [`routes`]: the
/// router is built from this table alone, and a test checks that every method of every path
/// in it is described in `/openapi.json` (`openapi.rs`), so a route cannot be left out of the
/// document silently.
pub(crate) fn table() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/", get(page::index)),
        ("/servers", get(servers::list).post(servers::register)),
        (
            "/servers/{id}",
            get(servers::get_one)
                .put(servers::replace)
                .delete(servers::remove),
        ),
        ("/servers/{id}/tools", get(tools::server_tools)),
        ("/servers/{id}/tools/refresh", post(tools::refresh)),
        ("/servers/{id}/check", post(checks::check)),
        ("/servers/{id}/heartbeat", put(checks::heartbeat)),
        (
            "/services/{service}/routing",
            get(services::get_routing)
                .put(services::put_routing)
                .delete(services::delete_routing),
        ),
        (
            "/services/{service}/routing/rollback",
            post(services::rollback),
        ),
        (
            "/services/{service}/routing/observations",
            post(observations::observations),
        ),
        ("/services/{service}/istio", get(services::istio)),
        ("/services/{service}/diff", get(contracts::diff)),
        ("/services/{service}/tools/pins", get(tools::pins)),
        ("/services/{service}/tools/accept", post(tools::accept)),
        ("/tools", get(tools::search)),
        ("/status", get(status::status)),
        ("/events", get(events::events)),
        ("/healthz", get(probes::healthz)),
        ("/readyz", get(probes::readyz)),
        ("/address-policy", get(policy::address_policy)),
        ("/metrics", get(metrics::scrape)),
        ("/openapi.json", get(docs::openapi)),
        ("/v0.1/servers", get(v01::list)),
        ("/v0.1/servers/{serverName}/versions", get(v01::versions)),
        (
            "/v0.1/servers/{serverName}/versions/{version}",
            get(v01::version),
        ),
    ]
}

pub(crate) fn routes(state: AppState) -> Router {
    let mut router = Router::new();
    for (path, handlers) in table() {
        router = router.route(path, handlers);
    }
    // Layers wrap the routes added above (and the fallbacks), so they see the `MatchedPath`.
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost first: reads are authenticated after the rate limit has had its say.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard_reads,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::limit,
        ))
        .layer(axum::middleware::from_fn(v01::cors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(on_response)
                .on_failure(()),
        )
        .with_state(state)
}

/// One span per request: method and route pattern now, status and latency when answered.
fn request_span(req: &Request) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(crate::metrics::UNMATCHED, MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

/// The target of access-log lines: `RUST_LOG=info,mcp_fleet::access=warn` keeps only those of
/// server errors.
pub(crate) const ACCESS_LOG: &str = "mcp_fleet::access";

/// Records the status and latency on the request's span and logs one access line in it (its
/// fields are the span's: method, route, status, latency_ms): at `info`, server errors at `warn`.
fn on_response(res: &Response, latency: Duration, span: &Span) {
    span.record("status", res.status().as_u16());
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    if res.status().is_server_error() {
        tracing::warn!(target: ACCESS_LOG, "answered");
    } else {
        tracing::info!(target: ACCESS_LOG, "answered");
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// A JSON answer from already-rendered bytes.
pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// Marks answers served from the last known state while the database is unavailable.
pub(crate) const STALE_HEADER: &str = "x-registry-stale";

/// What a read does when the database failed it: a database outage with a last known answer
/// (`last`) gets that answer, `200` marked stale (`X-Registry-Stale: true` and RFC 7234's
/// `Warning: 110`); anything else stays the error (`503` when nothing is known).
pub(crate) fn or_stale(
    cache: &ReadCache,
    error: ApiError,
    last: Option<Bytes>,
) -> Result<Response, ApiError> {
    if matches!(error, ApiError::Unavailable) {
        cache.database_failed();
    }
    match (error, last) {
        (ApiError::Unavailable, Some(body)) => {
            let mut res = json_response(StatusCode::OK, body);
            let h = res.headers_mut();
            h.insert(STALE_HEADER, HeaderValue::from_static("true"));
            h.insert(
                header::WARNING,
                HeaderValue::from_static("110 - \"Response is Stale\""),
            );
            Ok(res)
        }
        (error, _) => Err(error),
    }
}

/// Renders `value` as a JSON answer.
pub(crate) fn json<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "cannot render response");
        ApiError::Internal
    })?;
    Ok(json_response(status, Bytes::from(body)))
}
