//! `GET /status`: the fleet at a glance, in the seed's shape.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use mcp_fleet_model::{BreakingCanary, FleetStatus, ServerStatus};
use mcp_fleet_store::Store;

use super::{json_response, or_stale};
use crate::AppState;
use crate::cache::CacheKey;
use crate::error::ApiError;

/// The fleet's health, in the seed's shape, from a cache of at most `--read-cache-ttl`.
#[utoipa::path(
    get,
    path = "/status",
    tag = "health",
    summary = "The fleet at a glance",
    description = "`operational` when no entry is `degraded` or `down` (`unknown` ones do not \
                   count), else `degraded`; counts by status; every entry's line, with its current \
                   version's tool count, when its catalog last changed, and `toolChanged` when a \
                   tool changed in place and was not accepted; the versions routing policies \
                   send traffic to although they break the stable version's contract, \
                   judged from the catalogs as they stand (`breakingCanaries`). Served from a \
                   cache of at most `--read-cache-ttl` (1 s), so many open dashboards stay cheap. \
                   While the database is unavailable, the last good answer is served, marked \
                   `X-Registry-Stale: true`.",
    responses(
        (status = 200, description = "The fleet's status", body = mcp_fleet_model::FleetStatus),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    let cache = state.cache();
    let last = || cache.last_known(&CacheKey::Status).map(|a| a.body);
    if cache.database_away() {
        return or_stale(cache, ApiError::Unavailable, last());
    }
    match cache
        .get_or_render(&CacheKey::Status, || render(state.store()))
        .await
    {
        Ok(body) => Ok(json_response(StatusCode::OK, body)),
        Err(e) => or_stale(cache, e, last()),
    }
}

async fn render(store: &dyn Store) -> Result<Bytes, ApiError> {
    let rows = store.status_rows().await?;
    let mut doc = FleetStatus::from_servers(
        rows.into_iter()
            .map(|r| ServerStatus {
                id: r.id.to_string(),
                name: r.name,
                status: r.status,
                last_seen: r.last_seen,
                last_error: r.last_error,
                since: r.status_since,
                check: r.mode,
                tools: r.tools,
                catalog_changed_at: r.catalog_changed_at,
                tool_changed: r.tool_changed,
            })
            .collect(),
    );
    // Judged afresh from the catalogs as they stand: a canary whose catalog was listed, or whose
    // tool changed in place, after its policy was set counts too.
    for routing in store.routing_documents().await? {
        let now = super::contracts::check(store, &routing.service, &routing.weights).await?;
        doc.breaking_canaries.extend(BreakingCanary::judged(
            &routing,
            now.as_ref().map(|c| &c.contract),
        ));
    }
    let mut body = serde_json::to_vec(&doc).map_err(|_| ApiError::Internal)?;
    // Kept by the read cache, which counts its length: no spare capacity held with it.
    body.shrink_to_fit();
    Ok(Bytes::from(body))
}
