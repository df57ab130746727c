//! `GET /metrics` (Prometheus, OpenMetrics text) and the middleware that counts every request.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use mcp_fleet_model::HealthStatus;
use mcp_fleet_store::StoreError;

use crate::AppState;
use crate::error::ApiError;
use crate::metrics::{CONTENT_TYPE, Snapshot};

/// How long a scrape waits for the database before reporting it down.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

/// Counts the request by method, route pattern and status, and times it.
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let _in_flight = state.metrics().request_in_flight();
    let res = next.run(req).await;
    state.metrics().observe_http(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        res.status(),
        started.elapsed(),
    );
    res
}

/// Renders every metric: entries by status are counted now, from the database.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Every metric named `mcp_fleet_*`, in the OpenMetrics text format \
                   (Prometheus scrapes it natively).",
    responses((
        status = 200,
        description = "The metrics",
        content_type = "application/openmetrics-text",
        body = String,
    ))
)]
pub(crate) async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let count = async {
        let mut counts = HealthStatus::ALL.map(|status| (status, 0));
        let mut rows = state.store().status_rows();
        while let Some(row) = rows.try_next().await? {
            if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == row.status) {
                *n += 1;
            }
        }
        Ok::<_, StoreError>(counts)
    };
    let entries = match tokio::time::timeout(DB_TIMEOUT, count).await {
        Ok(Ok(counts)) => Some(counts),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot count entries");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: the database did not answer within {DB_TIMEOUT:?}");
            None
        }
    };
    let health = state.health();
    let snapshot = Snapshot {
        entries,
        health: health.map(|h| h.stats()),
        alerts: health.map(|h| h.alert_stats()),
        pool: state.store().pool_stats(),
    };
    let body = state.metrics().render(&snapshot).map_err(|e| {
        tracing::error!(error = %e, "cannot render metrics");
        ApiError::Internal
    })?;
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(res)
}
