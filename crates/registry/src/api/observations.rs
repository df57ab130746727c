//! `POST /services/{service}/routing/observations`: a gateway replica's canary counts, stored
//! with every other replica's, answered with their sum over the rollback window; the gateway
//! judges its canaries on that sum, so every replica decides from the same traffic.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use mcp_fleet_model::{Observations, ObservedTotals, ServerId};

use super::json;
use super::services::{no_policy, write};
use crate::AppState;
use crate::auth::Writer;
use crate::error::ApiError;
use crate::extract::{JsonBody, ServicePath};

/// `POST /services/{service}/routing/observations`
#[utoipa::path(
    post,
    path = "/services/{service}/routing/observations",
    tag = "routing",
    summary = "Report a gateway replica's canary counts",
    description = "What each gateway replica sends, once a second while it has new calls of a \
                   service with a rollback rule: its calls, errors and tool errors per version \
                   and per slot of wall-clock time (a sixtieth of the window; slot = Unix \
                   milliseconds / `slotMs`), each slot's whole count so far, so that a report \
                   sent twice counts once. Counts of versions without weight and of slots \
                   outside the window are not kept; slots that have left every window are \
                   deleted. Answered, once durable, with every replica's sum over the window \
                   of 60 slots ending now, on which the gateway judges the service's canaries \
                   (a rollback is then recorded once: `POST …/routing/rollback` changes \
                   nothing for a version already at 0). Needs `routing:write` on the service.",
    params(("service" = ServerId, Path, description = "The service")),
    request_body(content = Observations, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored; the sum over the window of every replica's counts", body = ObservedTotals),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::PolicyNotFound),
        (status = 413, response = crate::error::responses::PayloadTooLarge),
        (status = 415, response = crate::error::responses::UnsupportedMediaType),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn observations(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
    writer: Writer,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    writer.allow(mcp_fleet_model::Scope::RoutingWrite, &[service.as_str()])?;
    let report = Observations::from_json(&body, Utc::now())?;
    let task_service = service.clone();
    // Counts are not a change of the registry's documents: no cache to void, no event.
    let totals: Option<ObservedTotals> = write(
        &state,
        |_| false,
        move |s| async move {
            s.store()
                .record_observations(&task_service, &report, Utc::now())
                .await
        },
    )
    .await?;
    let totals = totals.ok_or_else(|| no_policy(&service))?;
    tracing::debug!(%service, replicas = totals.replicas, "canary counts reported");
    json(StatusCode::OK, &totals)
}
