//! `GET /status`: the fleet at a glance, in the seed's shape.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use mcp_fleet_model::{FleetStatus, ServerStatus};
use mcp_fleet_store::Store;

use super::json_response;
use crate::AppState;
use crate::cache::CacheKey;
use crate::error::ApiError;

pub(crate) async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    let body = state
        .cache()
        .get_or_render(&CacheKey::Status, || render(state.store()))
        .await?;
    Ok(json_response(StatusCode::OK, body))
}

async fn render(store: &dyn Store) -> Result<Bytes, ApiError> {
    let rows = store.status_rows().await?;
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
    Ok(Bytes::from(
        serde_json::to_vec(&doc).map_err(|_| ApiError::Internal)?,
    ))
}
