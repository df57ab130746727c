//! Routes: one file per resource.

mod checks;
mod probes;
mod servers;
mod status;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::ApiError;

pub(crate) fn routes(state: AppState) -> Router {
    Router::new()
        .route("/servers", get(servers::list).post(servers::register))
        .route(
            "/servers/{id}",
            get(servers::get_one)
                .put(servers::replace)
                .delete(servers::remove),
        )
        .route("/servers/{id}/check", post(checks::check))
        .route("/servers/{id}/heartbeat", put(checks::heartbeat))
        .route("/status", get(status::status))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
