//! The tool catalog: `GET /tools` (search every server's tools without connecting to any),
//! `GET /servers/{id}/tools` (one server's listing), `POST /servers/{id}/tools/refresh` (list it
//! again now), and a service's tool pins
//! (`GET /services/{service}/tools/pins`, `POST /services/{service}/tools/accept`).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use mcp_fleet_model::{
    FieldError, HealthStatus, ServerCatalog, ServerId, ToolHit, ToolPin, ValidationErrors,
    catalog::MAX_SEARCH_CHARS, search_terms,
};
use mcp_fleet_store::{MAX_TOOL_PAGE, ToolQuery};
use serde::Serialize;

use super::json;
use super::list_query::{push_tags, settle_tags};
use crate::AppState;
use crate::auth::Writer;
use crate::error::ApiError;
use crate::extract::{IdPath, JsonBody, ServicePath};
use crate::health::worker::CheckError;

/// Hits per page of `GET /tools` unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 20;
/// Deepest page of `GET /tools`: relevance pages are counted, not keyed, so deep ones cost.
const MAX_OFFSET: u32 = 10_000;
/// Longest a refresh may take, probe, listing and write included.
const REFRESH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest `reason` of an acceptance, in characters.
const MAX_REASON_CHARS: usize = 1000;

/// The body of `GET /tools`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolList {
    /// Matching tools: those having every word, most relevant first, then those having some
    /// (by server and name when there is no `q`).
    tools: Vec<ToolHit>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The body of the pin routes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ToolPins {
    /// The service.
    #[schema(value_type = String)]
    service: ServerId,
    /// Its trusted tool hashes, by version and tool.
    pins: Vec<ToolPin>,
}

/// Parses `q`, `tags`, `service`, `status`, `limit` and `cursor`; anything else is a mistake.
fn parse_tool_query(raw: Option<&str>) -> Result<ToolQuery, ValidationErrors> {
    let mut q = ToolQuery {
        limit: DEFAULT_LIMIT,
        ..ToolQuery::default()
    };
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
            "q" if value.chars().count() > MAX_SEARCH_CHARS => errors.push(FieldError::new(
                "q",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            )),
            "q" => q.terms = search_terms(&value),
            "tags" => push_tags(&value, &mut q.tags, &mut errors),
            "service" => match value.parse::<ServerId>() {
                Ok(service) => q.service = Some(service),
                Err(e) => errors.push(FieldError::new("service", e)),
            },
            "status" if value == "any" => q.status = None,
            "status" => match value.parse::<HealthStatus>() {
                Ok(status) => q.status = Some(status),
                Err(e) => errors.push(FieldError::new("status", e)),
            },
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_TOOL_PAGE).contains(&n) => q.limit = n,
                _ => errors.push(FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_TOOL_PAGE}, got {value:?}"),
                )),
            },
            "cursor" => match value.parse::<u32>() {
                Ok(n) if n <= MAX_OFFSET => q.offset = n,
                _ => errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this registry issued (or is past the 10,000th hit)",
                )),
            },
            other => errors.push(FieldError::new(
                other,
                "unknown query parameter; expected q, tags, service, status, limit or cursor",
            )),
        }
    }
    settle_tags(&mut q.tags, &mut errors);
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(ValidationErrors(errors))
    }
}

/// `GET /tools`
#[utoipa::path(
    get,
    path = "/tools",
    tag = "tools",
    summary = "Search the tools of every server",
    description = "Full-text search over the names, titles and descriptions of the tools the \
                   registry's catalog holds (listed by the health worker), with the serving \
                   entry and its health in each hit: find \"something that can check stock\" \
                   without connecting to any server. Words are stemmed (`checking` finds \
                   `check`), and common English words (`a`, `the`, `to`, …) are left out. Tools \
                   having every remaining word come first, ranked by relevance (BM25 on \
                   SQLite, `ts_rank` on PostgreSQL; a tool's name and title weigh more than \
                   its description); after the last of them, tools having only some of the \
                   words, ranked the same way (a query no tool matches in full still finds \
                   each word's tools). Without `q`, every tool, by server and name.",
    params(
        ("q" = Option<String>, Query, description = "Words to search for (at most 200 characters; punctuation is not syntax)"),
        ("tags" = Option<String>, Query, description = "Only entries having any of these comma-separated tags"),
        ("service" = Option<String>, Query, description = "Only entries of this service"),
        ("status" = Option<String>, Query, description = "Only entries with this status (`healthy`, `degraded`, `down`, `unknown`); `any` (default)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the page before"),
    ),
    responses(
        (status = 200, description = "Matching tools", body = ToolList),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn search(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_tool_query(raw.as_deref())?;
    let page = state.store().search_tools(&query).await?;
    json(
        StatusCode::OK,
        &ToolList {
            tools: page.tools,
            next_cursor: page.next_offset.map(|n| n.to_string()),
        },
    )
}

/// `GET /servers/{id}/tools`
#[utoipa::path(
    get,
    path = "/servers/{id}/tools",
    tag = "tools",
    summary = "One server's tools, prompts and resources",
    description = "What the server listed at its current version, each tool with its content \
                   hash (SHA-256 of its canonical JSON). Empty, with `fetchedAt` null, until \
                   the health worker has listed it.",
    params(("id" = ServerId, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "The entry's catalog", body = ServerCatalog),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::EntryNotFound),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn server_tools(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    match state.store().server_catalog(&id).await? {
        Some(catalog) => json(StatusCode::OK, &catalog),
        None => Err(ApiError::NotFound(format!("no server with id \"{id}\""))),
    }
}

/// `POST /servers/{id}/tools/refresh`
#[utoipa::path(
    post,
    path = "/servers/{id}/tools/refresh",
    tag = "tools",
    summary = "List a server's catalog again now",
    description = "Probes the entry at once and lists its tools, prompts and resources, then \
                   answers with the catalog as stored. For whoever hears a server's \
                   `notifications/tools/list_changed` (the gateway, an agent host, the server \
                   itself): the registry keeps no session per server, so it learns of a change at \
                   the next `--catalog-refresh` otherwise. Needs only read access; at most once \
                   per entry per second (shared with `POST /servers/{id}/check`).",
    params(("id" = ServerId, Path, description = "The entry's id")),
    responses(
        (status = 200, description = "The entry's catalog after the listing", body = ServerCatalog),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, response = crate::error::responses::EntryNotFound),
        (status = 409, description = "The entry is not listed: `healthCheck.mode` `ttl` or `none`, or listing is off for its mode (`conflict`)", body = crate::error::Problem<'static>, content_type = "application/problem+json"),
        (status = 429, description = "Checked or refreshed less than a second ago (`rate-limited`; `Retry-After` is set)", body = crate::error::Problem<'static>, content_type = "application/problem+json"),
        (status = 503, description = "No health worker in this process (`not-running`), or the database is unavailable", body = crate::error::Problem<'static>, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let Some(health) = state.health() else {
        return Err(ApiError::NotRunning(
            "this registry process runs no health worker (started with --no-health-worker); \
             the catalog is listed on the worker's schedule"
                .into(),
        ));
    };
    if !health.lists_catalogs() {
        return Err(ApiError::Conflict(
            "this registry lists no catalogs (started with --no-catalog)".into(),
        ));
    }
    state.allow_check(&id).map_err(ApiError::RateLimited)?;
    let checked = tokio::time::timeout(REFRESH_DEADLINE, health.check_now(id.clone(), true))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    match checked {
        Ok(_) => {}
        Err(CheckError::NotFound) => {
            return Err(ApiError::NotFound(format!("no server with id \"{id}\"")));
        }
        Err(CheckError::NotProbed(mode)) => {
            return Err(ApiError::Conflict(format!(
                "\"{id}\" has healthCheck.mode \"{}\": it is never connected to, so never listed",
                mode.as_str()
            )));
        }
        Err(CheckError::Stopped) => {
            return Err(ApiError::NotRunning(
                "the health worker is shutting down".into(),
            ));
        }
    }
    match state.store().server_catalog(&id).await? {
        Some(catalog) => json(StatusCode::OK, &catalog),
        None => Err(ApiError::NotFound(format!("no server with id \"{id}\""))),
    }
}

/// `GET /services/{service}/tools/pins`
#[utoipa::path(
    get,
    path = "/services/{service}/tools/pins",
    tag = "tools",
    summary = "The tool hashes trusted for a service",
    description = "Per version and tool, the hash trusted: the first one listed (trust on first \
                   use) or the one accepted with `POST …/tools/accept`. A gateway started with \
                   `--pin-tool-hashes` withholds a tool whose listed hash differs.",
    params(("service" = ServerId, Path, description = "The service")),
    responses(
        (status = 200, description = "The service's pins (none when nothing was listed)", body = ToolPins),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn pins(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
) -> Result<Response, ApiError> {
    let pins = state.store().tool_pins(&service).await?;
    json(StatusCode::OK, &ToolPins { service, pins })
}

/// `POST /services/{service}/tools/accept`
#[utoipa::path(
    post,
    path = "/services/{service}/tools/accept",
    tag = "tools",
    summary = "Trust a tool's current content",
    description = "Pins the tool's newest listed hash at every version of the service that \
                   lists it, recording who accepted it: after a `tool-changed` event, this lets \
                   a gateway with `--pin-tool-hashes` offer the changed tool again. Needs the \
                   `routing:write` scope on the service. Body: `{\"tool\": NAME, \"reason\": \
                   TEXT}` (reason optional).",
    params(("service" = ServerId, Path, description = "The service")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The pins set", body = ToolPins),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, description = "No listing of the service has the tool", body = crate::error::Problem<'static>, content_type = "application/problem+json"),
        (status = 415, response = crate::error::responses::UnsupportedMediaType),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn accept(
    State(state): State<AppState>,
    ServicePath(service): ServicePath,
    writer: Writer,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let by = writer.allow(mcp_fleet_model::Scope::RoutingWrite, &[service.as_str()])?;
    let mut errors = Vec::new();
    let tool = match body.get("tool") {
        Some(serde_json::Value::String(t)) if !t.is_empty() && t.len() <= 256 => Some(t.clone()),
        Some(_) => {
            errors.push(FieldError::new(
                "tool",
                "must be a tool name (1 to 256 bytes)",
            ));
            None
        }
        None => {
            errors.push(FieldError::new("tool", "is required"));
            None
        }
    };
    let reason = match body.get("reason") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(r)) if r.chars().count() <= MAX_REASON_CHARS => {
            Some(r.clone())
        }
        Some(_) => {
            errors.push(FieldError::new(
                "reason",
                format!("must be text of at most {MAX_REASON_CHARS} characters"),
            ));
            None
        }
    };
    if let Some(obj) = body.as_object() {
        for key in obj.keys().filter(|k| *k != "tool" && *k != "reason") {
            errors.push(FieldError::new(
                key,
                "unknown field; expected tool and reason",
            ));
        }
    } else {
        errors.clear();
        errors.push(FieldError::new("", "the body must be a JSON object"));
    }
    let (Some(tool), true) = (tool, errors.is_empty()) else {
        return Err(ValidationErrors(errors).into());
    };
    let who = by.clone();
    let (svc, name) = (service.clone(), tool.clone());
    let pins = super::services::write(
        &state,
        |pins: &Vec<ToolPin>| !pins.is_empty(),
        move |state| async move {
            state
                .store()
                .accept_tool(&svc, &name, who.as_deref(), Utc::now())
                .await
        },
    )
    .await?;
    if pins.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no listing of service \"{service}\" has a tool \"{tool}\""
        )));
    }
    tracing::info!(
        %service, %tool, by = by.as_deref().unwrap_or("-"), reason = reason.as_deref().unwrap_or("-"),
        "tool accepted: its current hash is trusted"
    );
    json(StatusCode::OK, &ToolPins { service, pins })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_and_mistakes_name_their_field() {
        let q = parse_tool_query(Some(
            "q=check+stock&tags=b,a&status=healthy&limit=5&cursor=10",
        ))
        .expect("valid");
        assert_eq!(q.terms, ["check", "stock"]);
        assert_eq!(q.tags.len(), 2);
        assert_eq!(q.status, Some(HealthStatus::Healthy));
        assert_eq!((q.limit, q.offset), (5, 10));
        assert_eq!(parse_tool_query(None).expect("empty").limit, DEFAULT_LIMIT);
        for (raw, field) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("cursor=x", "cursor"),
            ("cursor=10001", "cursor"),
            ("status=up", "status"),
            ("service=Not+A+Slug", "service"),
            ("q=a&q=b", "q"),
            ("sort=name", "sort"),
        ] {
            let errors = parse_tool_query(Some(raw)).expect_err(raw);
            assert_eq!(errors.0[0].field, field, "{raw}");
        }
        let long = format!("q={}", "a".repeat(MAX_SEARCH_CHARS + 1));
        assert!(parse_tool_query(Some(&long)).is_err());
    }
}
