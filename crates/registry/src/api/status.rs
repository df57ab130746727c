//! `GET /status`: the fleet at a glance, in the seed's shape.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::TryStreamExt;
use mcp_fleet_model::{BreakingCanary, ServerStatus, StatusSummary};
use mcp_fleet_store::{StatusRow, Store};

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
    let size_hint = cache
        .last_known(&CacheKey::Status)
        .map_or(0, |a| a.body.len());
    match cache
        .get_or_render(&CacheKey::Status, || render(state.store(), size_hint))
        .await
    {
        Ok(body) => Ok(json_response(StatusCode::OK, body)),
        Err(e) => or_stale(cache, e, last()),
    }
}

/// Room left at the front of the body for the head (`{"status":…,"summary":{…},"servers":[`),
/// written once the rows are counted: the longest head, with five 20-digit counts, is 198 bytes.
const HEAD_ROOM: usize = 256;

/// Renders the document row by row into one buffer, sized from the last rendering (`size_hint`):
/// no fleet-sized intermediate (rows, lines, a growing copy) is held besides the body. The
/// breaking canaries (a few per routed service) follow the lines.
async fn render(store: &dyn Store, size_hint: usize) -> Result<Bytes, ApiError> {
    let mut body = Vec::with_capacity(HEAD_ROOM + size_hint + size_hint / 16);
    body.resize(HEAD_ROOM, b' ');
    let mut summary = StatusSummary::default();
    let mut rows = store.status_rows();
    while let Some(r) = rows.try_next().await? {
        if summary.total > 0 {
            body.push(b',');
        }
        summary.count(r.status);
        serde_json::to_writer(&mut body, &line(r)).map_err(|_| ApiError::Internal)?;
    }
    drop(rows);
    // Judged afresh from the catalogs as they stand: a canary whose catalog was listed, or whose
    // tool changed in place, after its policy was set counts too.
    let mut breaking: Vec<BreakingCanary> = Vec::new();
    for routing in store.routing_documents().await? {
        let now = super::contracts::check(store, &routing.service, &routing.weights).await?;
        breaking.extend(BreakingCanary::judged(
            &routing,
            now.as_ref().map(|c| &c.contract),
        ));
    }
    body.extend_from_slice(br#"],"breakingCanaries":"#);
    serde_json::to_writer(&mut body, &breaking).map_err(|_| ApiError::Internal)?;
    body.push(b'}');
    let head = head(&summary)?;
    let start = HEAD_ROOM
        .checked_sub(head.len())
        .ok_or(ApiError::Internal)?;
    body[start..HEAD_ROOM].copy_from_slice(&head);
    Ok(Bytes::from(body).slice(start..))
}

/// `{"status":…,"summary":{…},"servers":[`, what `FleetStatus` serializes to before its lines.
fn head(summary: &StatusSummary) -> Result<Vec<u8>, ApiError> {
    let mut head = Vec::with_capacity(HEAD_ROOM);
    head.extend_from_slice(br#"{"status":"#);
    serde_json::to_writer(&mut head, summary.overall()).map_err(|_| ApiError::Internal)?;
    head.extend_from_slice(br#","summary":"#);
    serde_json::to_writer(&mut head, summary).map_err(|_| ApiError::Internal)?;
    head.extend_from_slice(br#","servers":["#);
    Ok(head)
}

/// An entry's line in `/status`.
fn line(r: StatusRow) -> ServerStatus {
    ServerStatus {
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
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Duration;
    use mcp_fleet_model::{FleetStatus, HealthStatus, Registration, Timestamp};
    use mcp_fleet_store::CheckRecord;

    use super::*;

    /// The body rendered row by row is the document serialized whole, whatever the size hint.
    #[tokio::test]
    async fn the_body_is_the_document_serialized() {
        let store = mcp_fleet_store::connect("sqlite::memory:")
            .await
            .expect("store");
        let t0 = Timestamp::default() + Duration::days(20_000);
        for n in 0..3 {
            let reg = Registration::from_json(
                &serde_json::json!({
                    "id": format!("s{n}"),
                    "name": format!("Server \"{n}\""),
                    "url": format!("http://127.0.0.1:9/{n}"),
                    "version": "1.0.0",
                }),
                None,
            )
            .expect("valid registration");
            store.upsert(reg, t0).await.expect("register");
        }
        let empty = mcp_fleet_store::connect("sqlite::memory:")
            .await
            .expect("store");
        let want = |store: Arc<dyn Store>| async move {
            let rows: Vec<_> = store.status_rows().try_collect().await.expect("rows");
            let mut doc = FleetStatus::from_servers(rows.into_iter().map(line).collect());
            doc.breaking_canaries = store
                .routing_documents()
                .await
                .expect("routing")
                .iter()
                .flat_map(BreakingCanary::of)
                .collect();
            serde_json::to_vec(&doc).expect("serialize")
        };
        for (status, last_error) in [
            (HealthStatus::Healthy, None),
            (HealthStatus::Down, Some("connection refused".to_owned())),
        ] {
            let (rows, _) = store.health_rows(None).await.expect("health rows");
            let check = CheckRecord {
                id: rows[1].id.clone(),
                reg_rev: rows[1].reg_rev,
                status,
                successes: 0,
                failures: 1,
                checked_at: t0,
                seen_at: None,
                last_error,
                last_error_detail: None,
                latency_ms: None,
            };
            store.record_checks(&[check]).await.expect("record");
            for store in [&store, &empty] {
                for hint in [0, 10, 1 << 20] {
                    let got = render(store.as_ref(), hint).await.expect("render");
                    assert_eq!(got, want(store.clone()).await, "{status}, hint {hint}");
                }
            }
        }
    }

    #[test]
    fn the_longest_head_fits_its_room() {
        let summary = StatusSummary {
            total: usize::MAX,
            healthy: usize::MAX,
            degraded: usize::MAX,
            down: usize::MAX,
            unknown: usize::MAX,
        };
        assert!(head(&summary).expect("head").len() <= HEAD_ROOM);
    }
}
