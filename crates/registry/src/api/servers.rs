//! `/servers` and `/servers/{id}`: register, list, look up, replace and delete entries.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::Utc;
use mcp_fleet_model::{
    FieldError, MAX_TAGS, Registration, ServerId, StatusFilter, Tag, ValidationErrors,
};
use mcp_fleet_store::{ListQuery, MAX_PAGE, RenderedPage, Store, Upserted};
use serde_json::json;

use super::{json, json_response};
use crate::AppState;
use crate::cache::CacheKey;
use crate::error::ApiError;
use crate::extract::{IdPath, JsonBody};

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

/// The opaque cursor for "after this id".
fn encode_cursor(after: &ServerId) -> String {
    URL_SAFE_NO_PAD.encode(after.as_str())
}

fn decode_cursor(cursor: &str) -> Result<ServerId, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| "is not a cursor this registry issued".to_string())?;
    String::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "is not a cursor this registry issued".to_string())
}

/// Parses `tags`, `status`, `limit` and `cursor`; anything else is a mistake worth reporting.
fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, ValidationErrors> {
    let mut q = ListQuery::default();
    let mut errors = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if key != "tags" {
            if seen.iter().any(|k| *k == key) {
                errors.push(FieldError::new(key.as_ref(), "must be given at most once"));
                continue;
            }
            seen.push(key.to_string());
        }
        match key.as_ref() {
            "tags" => {
                // Seed semantics: a comma-separated list; empty items are ignored.
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match item.parse::<Tag>() {
                        Ok(tag) => q.tags.push(tag),
                        Err(e) => errors.push(FieldError::new("tags", format!("{item:?} {e}"))),
                    }
                }
            }
            "status" => match value.parse::<StatusFilter>() {
                Ok(s) => q.status = s,
                Err(e) => errors.push(FieldError::new("status", e)),
            },
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => q.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_PAGE}, got {value:?}"),
                )),
            },
            "cursor" => match decode_cursor(&value) {
                Ok(after) => q.after = Some(after),
                Err(e) => errors.push(FieldError::new("cursor", e)),
            },
            other => errors.push(FieldError::new(
                other,
                "unknown query parameter; expected tags, status, limit or cursor",
            )),
        }
    }
    q.tags.sort();
    q.tags.dedup();
    if q.tags.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            format!("at most {MAX_TAGS} tags per query, got {}", q.tags.len()),
        ));
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(ValidationErrors(errors))
    }
}

/// `GET /servers?tags=a,b&status=healthy&limit=100&cursor=…`
pub(crate) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let key = CacheKey::List(parse_list_query(raw.as_deref())?);
    let CacheKey::List(query) = &key else {
        unreachable!("built as List above")
    };
    let body = state
        .cache()
        .get_or_render(&key, || render_list(state.store(), query))
        .await?;
    Ok(json_response(StatusCode::OK, body))
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
async fn store_registration(state: &AppState, reg: Registration) -> Result<Response, ApiError> {
    check_addresses(state, &reg)?;
    let id = reg.id.clone();
    let task_state = state.clone();
    let outcome = tokio::spawn(async move {
        let outcome = task_state.store().upsert(reg, Utc::now()).await;
        if outcome.is_ok() {
            task_state.cache().invalidate();
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
    let mut res = json(status, &json!({ "id": id }))?;
    if let Ok(location) = HeaderValue::from_str(&format!("/servers/{id}")) {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

/// `POST /servers`: register or re-register; `201` when created, `200` when replaced.
pub(crate) async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let reg = Registration::from_json(&body, None)?;
    store_registration(&state, reg).await
}

/// `PUT /servers/{id}`: full replace; the body's `id`, if any, must match the path.
pub(crate) async fn replace(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let reg = Registration::from_json(&body, Some(&id))?;
    store_registration(&state, reg).await
}

/// `GET /servers/{id}`
pub(crate) async fn get_one(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    match state.store().get(&id).await? {
        Some(entry) => json(StatusCode::OK, &entry),
        None => Err(ApiError::NotFound(format!("no server with id {id:?}"))),
    }
}

/// `DELETE /servers/{id}`: `204`, or `404` when there is no such entry.
pub(crate) async fn remove(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let task_state = state.clone();
    let task_id = id.clone();
    let deleted = tokio::spawn(async move {
        let deleted = task_state.store().delete(&task_id).await;
        if matches!(deleted, Ok(true)) {
            task_state.cache().invalidate();
        }
        deleted
    })
    .await
    .map_err(|_| ApiError::Internal)??;
    if deleted {
        tracing::info!(%id, "deleted");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound(format!("no server with id {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_defaults_match_the_seed() {
        let q = parse_list_query(None).expect("empty query");
        assert_eq!(q, ListQuery::default());
        let q = parse_list_query(Some("tags=b,a,,a&status=any&limit=5")).expect("valid");
        assert_eq!(q.tags.len(), 2);
        assert_eq!(q.status, StatusFilter::Any);
        assert_eq!(q.limit, 5);
    }

    #[test]
    fn list_bodies_are_what_serde_json_renders() {
        use mcp_fleet_model::Entry;

        #[derive(serde::Serialize)]
        struct ListBody<'a> {
            servers: &'a [Entry],
            #[serde(rename = "nextCursor", skip_serializing_if = "Option::is_none")]
            next_cursor: Option<String>,
        }

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
            let want = serde_json::to_vec(&ListBody {
                servers: &entries[..n],
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

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id: ServerId = "abc-1".parse().expect("id");
        assert_eq!(decode_cursor(&encode_cursor(&id)), Ok(id));
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("Not An Id")).is_err());
    }
}
