//! `/servers` and `/servers/{id}`: register, list, look up, replace and delete entries.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use mcp_fleet_model::{Entry, FieldError, Registration, Scope, ServerId, ValidationErrors};
use mcp_fleet_store::{ListQuery, RenderedPage, Store, Upserted};

use super::events::REVISION_HEADER;
use super::list_query::{encode_cursor, parse_list_query};
use super::{json, json_response, or_stale};
use crate::AppState;
use crate::auth::Writer;
use crate::cache::CacheKey;
use crate::error::ApiError;
use crate::extract::{IdPath, JsonBody};
use crate::openapi::{Registered, ServerList};

/// The `GET /servers` body, `{"servers":[…],"nextCursor":"…"}`, assembled from entries the
/// store rendered: the same bytes as serializing the entries in such an object (compact
/// `serde_json` puts nothing but a comma between array items).
fn list_body(page: &RenderedPage) -> Result<Bytes, ApiError> {
    let len = page.entries.iter().map(|e| e.len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(len + 128);
    body.extend_from_slice(br#"{"servers":["#);
    for (i, entry) in page.entries.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(entry.as_bytes());
    }
    body.push(b']');
    if let Some(after) = &page.next_after {
        body.extend_from_slice(br#","nextCursor":"#);
        serde_json::to_writer(&mut body, &encode_cursor(after)).map_err(|_| ApiError::Internal)?;
    }
    body.push(b'}');
    Ok(Bytes::from(body))
}

async fn render_list(store: &dyn Store, query: &ListQuery) -> Result<Bytes, ApiError> {
    list_body(&store.list_rendered(query).await?)
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks for it).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// `GET /servers?tags=a,b&status=healthy&service=s&limit=100&cursor=…`
#[utoipa::path(
    get,
    path = "/servers",
    tag = "servers",
    summary = "List entries",
    description = "Entries having ANY of `tags`, with `status` (default `healthy`; `any` lists \
                   all), in id order, one page at a time. Served from a cache of at most \
                   `--read-cache-ttl` (writes through this process void it at once). With \
                   `wait`, a blocking query (as Consul's): answered as soon as the registry \
                   changes past that revision. While the database is unavailable, the last good \
                   answer is served, marked `X-Registry-Stale: true` (`503` if there is none).",
    params(
        ("tags" = Option<String>, Query, description = "Comma-separated tags; entries having any of them", example = "products,catalog"),
        ("status" = Option<String>, Query, description = "`healthy` (default), `degraded`, `down`, `unknown` or `any`"),
        ("service" = Option<String>, Query, description = "Only instances of this service (a slug)", example = "catalog"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
        ("wait" = Option<i64>, Query, description = "Block until the registry's revision is past this one (an `X-Registry-Revision` seen before), or `timeout`; with `If-None-Match`, until the answer itself changes", minimum = 0),
        ("timeout" = Option<String>, Query, description = "How long `wait` may block: `500ms`, `30s` (default), `5m` (the most)", example = "30s"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this listing: `304` while the answer is unchanged"),
    ),
    responses(
        (status = 200, description = "One page of entries", body = ServerList,
         headers(("ETag" = String, description = "A hash of the answer"), ("X-Registry-Revision" = i64, description = "The registry's revision the answer reflects (at least)"))),
        (status = 304, description = "The answer still has the `ETag` given in `If-None-Match`",
         headers(("ETag" = String, description = "A hash of the answer"), ("X-Registry-Revision" = i64, description = "The registry's revision"))),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (query, wait) = parse_list_query(raw.as_deref())?;
    let key = CacheKey::List(query);
    let CacheKey::List(query) = &key else {
        unreachable!("built as List above")
    };
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let feed = state.feed();
    let deadline = wait.map(|w| tokio::time::Instant::now() + w.timeout);
    let mut after = wait.map(|w| w.after);
    loop {
        if let (Some(after), Some(deadline)) = (after, deadline) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            feed.wait_past(after, left).await;
        }
        // Read before the listing, so the listing is at least as new as the revision reported:
        // a client that waits past it next cannot miss a change.
        let cache = state.cache();
        let stale = |e: ApiError| or_stale(cache, e, cache.last_known(&key).map(|a| a.body));
        if cache.database_away() {
            return stale(ApiError::Unavailable);
        }
        let revision = match feed.revision().await {
            Ok(revision) => revision,
            Err(e) => return stale(e.into()),
        };
        let answer = match cache
            .get_or_render_answer(&key, || render_list(state.store(), query))
            .await
        {
            Ok(answer) => answer,
            Err(e) => return stale(e),
        };
        let etag = format!("\"{:016x}\"", answer.etag);
        let unchanged = if_none_match.is_some_and(|v| etag_matches(v, &etag));
        // A blocking request naming the answer it has waits on until the answer itself changes.
        let waiting = deadline.is_some_and(|d| tokio::time::Instant::now() < d)
            && !feed.stopping().is_cancelled();
        if unchanged && waiting && after.is_some() {
            after = Some(revision);
            continue;
        }
        let mut res = if unchanged {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            json_response(StatusCode::OK, answer.body)
        };
        let h = res.headers_mut();
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, etag);
        }
        h.insert(REVISION_HEADER, HeaderValue::from(revision));
        return Ok(res);
    }
}

/// Rejects URLs whose literal host the probe policy denies (e.g. `169.254.169.254`).
fn check_addresses(state: &AppState, reg: &Registration) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let urls = [
        ("url", Some(&reg.url)),
        ("healthUrl", reg.health_url.as_ref()),
    ];
    for (field, url) in urls {
        if let Some(url) = url
            && let Err(refused) = state.policy().check_url(url.url())
        {
            errors.push(FieldError::new(
                field,
                format!("may not point at {refused}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(ValidationErrors(errors)))
    }
}

/// Stores `reg` and answers once it is durable. The write runs in its own task so that a
/// client hanging up cannot cut it between commit and cache invalidation.
async fn store_registration(
    state: &AppState,
    writer: &Writer,
    mut reg: Registration,
) -> Result<Response, ApiError> {
    // The entry's id and the service it joins must both be the writer's: otherwise a token
    // could slip an instance into another team's service and receive its calls.
    reg.updated_by = writer.allow(
        Scope::ServersWrite,
        &[reg.id.as_str(), reg.service.as_str()],
    )?;
    check_addresses(state, &reg)?;
    let id = reg.id.clone();
    let task_state = state.clone();
    let outcome = tokio::spawn(async move {
        // The caps are checked in the write's transaction: racing replicas cannot pass them.
        let caps = task_state.config().limits.entry_caps();
        let outcome = task_state
            .store()
            .upsert_capped(reg, Utc::now(), &caps)
            .await;
        if let Ok(upserted) = &outcome {
            task_state.changed();
            if let Ok(body) = render_entry(upserted.entry()) {
                task_state
                    .cache()
                    .remember_entry(&upserted.entry().id, body);
            }
            if let Some(health) = task_state.health() {
                health.registered();
            }
        }
        outcome
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "registration task failed");
        ApiError::Internal
    })??;
    let status = match outcome {
        Upserted::Created(_) => StatusCode::CREATED,
        Upserted::Replaced(_) => StatusCode::OK,
    };
    tracing::info!(%id, created = (status == StatusCode::CREATED), "registered");
    let mut res = json(status, &Registered { id: id.clone() })?;
    if let Ok(location) = HeaderValue::from_str(&format!("/servers/{id}")) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

/// `POST /servers`: register or re-register; `201` when created, `200` when replaced.
#[utoipa::path(
    post,
    path = "/servers",
    tag = "servers",
    summary = "Register (or re-register) a server",
    description = "Answered once the entry is durable. A new or re-registered entry is \
                   `unknown` until its first probe. `status`, `lastSeen`, `registeredAt` and \
                   `updatedAt` may be sent (seed clients echo entries) and are ignored.",
    request_body(content = mcp_fleet_model::Registration, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Registered, headers(("Location" = String, description = "`/servers/{id}`"))),
        (status = 200, description = "An entry with this id was replaced", body = Registered, headers(("Location" = String, description = "`/servers/{id}`"))),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 413, response = crate::error::responses::PayloadTooLarge),
        (status = 415, response = crate::error::responses::UnsupportedMediaType),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn register(
    State(state): State<AppState>,
    writer: Writer,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let reg = Registration::from_json(&body, None)?;
    store_registration(&state, &writer, reg).await
}

/// `PUT /servers/{id}`: full replace; the body's `id`, if any, must match the path.
#[utoipa::path(
    put,
    path = "/servers/{id}",
    tag = "servers",
    summary = "Register or fully replace the entry with this id",
    description = "As `POST /servers`; a body `id`, when present, must equal the path's.",
    params(
        ("id" = ServerId, Path, description = "The entry's id"),
    ),
    request_body(content = mcp_fleet_model::Registration, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Registered),
        (status = 200, description = "Replaced", body = Registered),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 413, response = crate::error::responses::PayloadTooLarge),
        (status = 415, response = crate::error::responses::UnsupportedMediaType),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn replace(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    writer: Writer,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let reg = Registration::from_json(&body, Some(&id))?;
    store_registration(&state, &writer, reg).await
}

/// `GET /servers/{id}`
#[utoipa::path(
    get,
    path = "/servers/{id}",
    tag = "servers",
    summary = "Look up one entry",
    params(
        ("id" = ServerId, Path, description = "The entry's id"),
    ),
    responses(
        (status = 200, description = "The entry; while the database is unavailable, its last known state, marked `X-Registry-Stale: true`", body = Entry),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::EntryNotFound),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let cache = state.cache();
    if cache.database_away() {
        return or_stale(cache, ApiError::Unavailable, cache.last_known_entry(&id));
    }
    match state.store().get(&id).await {
        Ok(Some(entry)) => {
            let body = render_entry(&entry)?;
            cache.remember_entry(&id, body.clone());
            Ok(json_response(StatusCode::OK, body))
        }
        Ok(None) => {
            cache.forget_entry(&id);
            Err(ApiError::NotFound(format!("no server with id \"{id}\"")))
        }
        Err(e) => or_stale(cache, e.into(), cache.last_known_entry(&id)),
    }
}

/// The `GET /servers/{id}` body.
fn render_entry(entry: &Entry) -> Result<Bytes, ApiError> {
    // Kept by the read cache, which counts its length: no spare capacity held with it.
    let exact = |mut body: Vec<u8>| {
        body.shrink_to_fit();
        Bytes::from(body)
    };
    serde_json::to_vec(entry).map(exact).map_err(|e| {
        tracing::error!(error = %e, "cannot render entry");
        ApiError::Internal
    })
}

/// `DELETE /servers/{id}`: `204`, or `404` when there is no such entry.
#[utoipa::path(
    delete,
    path = "/servers/{id}",
    tag = "servers",
    summary = "Deregister an entry",
    params(
        ("id" = ServerId, Path, description = "The entry's id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::EntryNotFound),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    writer: Writer,
) -> Result<Response, ApiError> {
    let by = writer.allow_entry(&state, Scope::ServersWrite, &id).await?;
    let task_state = state.clone();
    let task_id = id.clone();
    let deleted = tokio::spawn(async move {
        let deleted = task_state.store().delete_by(&task_id, by.as_deref()).await;
        if matches!(deleted, Ok(true)) {
            task_state.changed();
            task_state.cache().forget_entry(&task_id);
        }
        deleted
    })
    .await
    .map_err(|_| ApiError::Internal)??;
    if deleted {
        tracing::info!(%id, "deleted");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("no server with id \"{id}\"")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn list_bodies_are_what_serde_json_renders() {
        let entry = |id: &str| {
            let reg = Registration::from_json(
                &json!({
                    "id": id,
                    "name": "Quote \" and \u{1f} and é",
                    "url": "http://127.0.0.1:9/base",
                    "version": "1.0.0-rc.1",
                    "tags": ["a", "b"],
                    "metadata": {"z": [1, 2.5, null], "a": {"nested": true}},
                }),
                None,
            )
            .expect("valid registration");
            Entry::new(reg, Utc::now())
        };
        let entries = [entry("a"), entry("b-2")];
        for (n, next_after) in [(0, None), (1, None), (2, Some("b-2")), (2, None)] {
            let next_after: Option<ServerId> = next_after.map(|s| s.parse().expect("id"));
            let page = RenderedPage {
                entries: entries[..n]
                    .iter()
                    .map(|e| serde_json::to_string(e).expect("render").into())
                    .collect(),
                next_after: next_after.clone(),
            };
            // The documented body (`ServerList`) is what is sent.
            let want = serde_json::to_vec(&ServerList {
                servers: entries[..n].to_vec(),
                next_cursor: next_after.as_ref().map(encode_cursor),
            })
            .expect("render");
            let got = list_body(&page).expect("body");
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }
}
