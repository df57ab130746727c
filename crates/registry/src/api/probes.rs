//! `GET /healthz` (the process answers) and `GET /readyz` (and so does its database).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::json;
use crate::AppState;
use crate::error::ApiError;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The body of `GET /healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Alive {
    /// Always `ok`.
    status: &'static str,
}

/// The body of `GET /readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Ready {
    /// Always `ready`.
    status: &'static str,
    /// The backend: `sqlite` or `postgres`.
    database: &'static str,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "Alive", body = Alive))
)]
pub(crate) async fn healthz() -> Result<Response, ApiError> {
    json(StatusCode::OK, &Alive { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the process and its database answer",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store().ping()).await {
        Ok(Ok(())) => json(
            StatusCode::OK,
            &Ready {
                status: "ready",
                database: state.store().backend(),
            },
        ),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            tracing::warn!("database did not answer within {READY_TIMEOUT:?}");
            Err(ApiError::Unavailable)
        }
    }
}
