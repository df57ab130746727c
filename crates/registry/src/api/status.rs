//! `GET /status`: the fleet at a glance, in the seed's shape.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use mcp_fleet_model::{HealthStatus, Timestamp, format_timestamp};
use serde::Serialize;

use super::json_response;
use crate::AppState;
use crate::cache::CacheKey;
use crate::error::ApiError;

#[derive(Serialize)]
struct StatusBody {
    /// `operational` when every known server is healthy, else `degraded`.
    status: &'static str,
    summary: Summary,
    servers: Vec<StatusServer>,
}

#[derive(Serialize, Default)]
struct Summary {
    total: usize,
    healthy: usize,
    degraded: usize,
    down: usize,
    unknown: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusServer {
    id: String,
    name: String,
    status: HealthStatus,
    last_seen: Option<String>,
}

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.as_ref().map(format_timestamp)
}

pub(crate) async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Some(body) = state.cache().get(&CacheKey::Status) {
        return Ok(json_response(StatusCode::OK, body));
    }
    let generation = state.cache().generation();
    let rows = state.store().status_rows().await?;
    let mut summary = Summary {
        total: rows.len(),
        ..Summary::default()
    };
    for row in &rows {
        match row.status {
            HealthStatus::Healthy => summary.healthy += 1,
            HealthStatus::Degraded => summary.degraded += 1,
            HealthStatus::Down => summary.down += 1,
            HealthStatus::Unknown => summary.unknown += 1,
        }
    }
    let body = StatusBody {
        status: if summary.degraded + summary.down == 0 {
            "operational"
        } else {
            "degraded"
        },
        summary,
        servers: rows
            .into_iter()
            .map(|r| StatusServer {
                id: r.id.to_string(),
                name: r.name,
                status: r.status,
                last_seen: ts(r.last_seen),
            })
            .collect(),
    };
    let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|_| ApiError::Internal)?);
    state.cache().put(CacheKey::Status, generation, bytes.clone());
    Ok(json_response(StatusCode::OK, bytes))
}
