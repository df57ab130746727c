//! `GET /status`: the fleet at a glance, in the seed's shape.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use mcp_fleet_model::{FleetStatus, ServerStatus};

use super::json_response;
use crate::AppState;
use crate::cache::CacheKey;
use crate::error::ApiError;

pub(crate) async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Some(body) = state.cache().get(&CacheKey::Status) {
        return Ok(json_response(StatusCode::OK, body));
    }
    let generation = state.cache().generation();
    let rows = state.store().status_rows().await?;
    let doc = FleetStatus::from_servers(
        rows.into_iter()
            .map(|r| ServerStatus {
                id: r.id.to_string(),
                name: r.name,
                status: r.status,
                last_seen: r.last_seen,
                last_error: r.last_error,
                since: r.status_since,
                check: r.mode,
            })
            .collect(),
    );
    let bytes = Bytes::from(serde_json::to_vec(&doc).map_err(|_| ApiError::Internal)?);
    state
        .cache()
        .put(CacheKey::Status, generation, bytes.clone());
    Ok(json_response(StatusCode::OK, bytes))
}
