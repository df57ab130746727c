//! `POST /servers/{id}/check` (probe one entry now) and `PUT /servers/{id}/heartbeat` (renew a
//! TTL entry).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::json;
use crate::AppState;
use crate::auth::Writer;
use crate::error::ApiError;
use crate::extract::IdPath;
use crate::health::worker::CheckError;

/// Longest an on-demand check may take, probe and write included.
const CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// Probes the entry now through the in-process health worker and answers with the result,
/// once it is recorded. At most one check per entry per second.
#[utoipa::path(
    post,
    path = "/servers/{id}/check",
    tag = "health",
    summary = "Probe an entry now",
    description = "Runs the entry's health probe at once, listing its catalog too (tools, \
                   prompts, resources: `GET /servers/{id}/tools`), and answers with its result \
                   once it is recorded. At most one check per entry per second.",
    params(
        ("id" = mcp_fleet_model::ServerId, Path, description = "The entry's id"),
    ),
    responses(
        (status = 200, description = "The probe's finding and the entry's status after damping", body = crate::health::worker::CheckReport),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::EntryNotFound),
        (status = 409, description = "The entry's `healthCheck.mode` is `ttl` or `none`: it is not probed (`conflict`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Checked less than a second ago (`rate-limited`; `Retry-After` is set)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "No health worker in this process (`not-running`), or the database is unavailable", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn check(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    writer: Writer,
) -> Result<Response, ApiError> {
    writer
        .allow_entry(&state, mcp_fleet_model::Scope::ServersWrite, &id)
        .await?;
    let Some(health) = state.health() else {
        return Err(ApiError::NotRunning(
            "this registry process runs no health worker (started with --no-health-worker); \
             the separate worker probes the entry on its schedule"
                .into(),
        ));
    };
    state.allow_check(&id).map_err(ApiError::RateLimited)?;
    // The answer waits for the result to be written; a database outage must not hang callers.
    let answer = tokio::time::timeout(CHECK_DEADLINE, health.check_now(id.clone(), true))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    match answer {
        Ok(report) => json(StatusCode::OK, &report),
        Err(CheckError::NotFound) => Err(ApiError::NotFound(format!("no server with id \"{id}\""))),
        Err(CheckError::NotProbed(mode)) => Err(ApiError::Conflict(format!(
            "\"{id}\" has healthCheck.mode \"{}\": it is not probed",
            mode.as_str()
        ))),
        Err(CheckError::Stopped) => Err(ApiError::NotRunning(
            "the health worker is shutting down".into(),
        )),
    }
}

/// Renews the entry's TTL (and its `lastSeen`): `204`, or `404` when there is no such entry.
#[utoipa::path(
    put,
    path = "/servers/{id}/heartbeat",
    tag = "health",
    summary = "Heartbeat (renew a TTL entry)",
    description = "An entry with `ttlSeconds` must heartbeat at least this often (every third of \
                   it is advised) or it is marked `down`.",
    params(
        ("id" = mcp_fleet_model::ServerId, Path, description = "The entry's id"),
    ),
    responses(
        (status = 204, description = "Renewed"),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::EntryNotFound),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    writer: Writer,
) -> Result<Response, ApiError> {
    writer
        .allow_entry(&state, mcp_fleet_model::Scope::ServersWrite, &id)
        .await?;
    if state.store().heartbeat(&id, Utc::now()).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("no server with id \"{id}\"")))
    }
}
