//! `POST /servers/{id}/check` (probe one entry now) and `PUT /servers/{id}/heartbeat` (renew a
//! TTL entry).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::json;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::IdPath;
use crate::health::worker::CheckError;

/// Longest an on-demand check may take, probe and write included.
const CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Probes the entry now through the in-process health worker and answers with the result,
/// once it is recorded. At most one check per entry per second.
pub(crate) async fn check(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let Some(health) = state.health() else {
        return Err(ApiError::NotRunning(
            "this registry process runs no health worker (started with --no-health-worker); \
             the separate worker probes the entry on its schedule"
                .into(),
        ));
    };
    state.allow_check(&id).map_err(ApiError::RateLimited)?;
    // The answer waits for the result to be written; a database outage must not hang callers.
    let answer = tokio::time::timeout(CHECK_DEADLINE, health.check_now(id.clone()))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    match answer {
        Ok(report) => json(StatusCode::OK, &report),
        Err(CheckError::NotFound) => Err(ApiError::NotFound(format!("no server with id {id:?}"))),
        Err(CheckError::NotProbed(mode)) => Err(ApiError::Conflict(format!(
            "{id:?} has healthCheck.mode {:?}: it is not probed",
            mode.as_str()
        ))),
        Err(CheckError::Stopped) => Err(ApiError::NotRunning(
            "the health worker is shutting down".into(),
        )),
    }
}

/// Renews the entry's TTL (and its `lastSeen`): `204`, or `404` when there is no such entry.
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    if state.store().heartbeat(&id, Utc::now()).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("no server with id {id:?}")))
    }
}
