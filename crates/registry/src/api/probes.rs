//! `GET /healthz` (the process answers) and `GET /readyz` (and so does its database).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::json;
use crate::AppState;
use crate::error::ApiError;

/// How long `/readyz` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn healthz() -> Result<Response, ApiError> {
    json(StatusCode::OK, &json!({"status": "ok"}))
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store().ping()).await {
        Ok(Ok(())) => json(
            StatusCode::OK,
            &json!({"status": "ready", "database": state.store().backend()}),
        ),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => {
            tracing::warn!("database did not answer within {READY_TIMEOUT:?}");
            Err(ApiError::Unavailable)
        }
    }
}
