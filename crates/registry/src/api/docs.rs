//! `GET /openapi.json`: the API described, generated from the code (`openapi.rs`).

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;

use super::json_response;
use crate::error::ApiError;

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This document",
    description = "The OpenAPI 3.1 description of every endpoint, generated from the code.",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub(crate) async fn openapi() -> Result<Response, ApiError> {
    let body = crate::openapi::render().map_err(|e| {
        tracing::error!(error = %e, "cannot render the OpenAPI document");
        ApiError::Internal
    })?;
    Ok(json_response(StatusCode::OK, Bytes::from(body)))
}
