//! The official MCP Registry's v0.1 read API (`/v0.1/servers`, `…/{serverName}/versions`,
//! `…/versions/{version}`), so GitHub Copilot, VS Code and `docker mcp` can use this registry as
//! theirs. A service is one server; the distinct versions of its instances are its versions.
//! Answers go through the read cache like `GET /servers`; CORS as GitHub asks of registry URLs.

mod catalog;
mod query;
mod removed;

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use mcp_fleet_model::official::ListMetadata;
use mcp_fleet_model::{Entry, StatusFilter, ValidationErrors, Version};
use mcp_fleet_store::{ListQuery, MAX_PAGE};

use self::catalog::{Catalog, Item};
use self::query::{Query, Versions, encode_cursor, parse_bool, parse_query};
use super::{json_response, or_stale};
use crate::AppState;
use crate::cache::CacheKey;
use crate::error::ApiError;

/// The prefix of these routes.
const PREFIX: &str = "/v0.1/";

/// What the v0.1 routes keep between requests: the removed entries read from the event log, and
/// the last catalog built, which every question of the same cache generation shares (paging
/// through it builds it once).
#[derive(Default)]
pub(crate) struct V01State {
    removed: tokio::sync::Mutex<removed::Memory>,
    last: std::sync::Mutex<Option<Built>>,
}

/// A catalog, with the cache generation read before its entries were, and whether it has the
/// removed versions.
struct Built {
    generation: u64,
    at: std::time::Instant,
    removed: bool,
    catalog: Arc<Catalog>,
}

/// A question the v0.1 routes answer, as the read cache keys it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// `GET /v0.1/servers`.
    List(Query),
    /// `GET /v0.1/servers/{serverName}/versions`, with deleted versions or not.
    Versions(String, bool),
    /// `GET /v0.1/servers/{serverName}/versions/{version}`.
    Version(String, String),
}

/// Every entry, whatever its status: servers that are down stay listed, clients filter.
async fn live_entries(state: &AppState) -> Result<Vec<Entry>, ApiError> {
    let mut out = Vec::new();
    let mut query = ListQuery {
        status: StatusFilter::Any,
        limit: MAX_PAGE,
        ..ListQuery::default()
    };
    loop {
        let page = state.store().list(&query).await?;
        out.extend(page.entries);
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => return Ok(out),
        }
    }
}

/// The catalog now, with the removed versions the event log remembers when `removed`: the last
/// one built while it is as fresh as a cached answer would be (same generation, within
/// `--read-cache-ttl`), else a new one.
async fn catalog(state: &AppState, removed: bool) -> Result<Arc<Catalog>, ApiError> {
    let generation = state.cache().generation();
    let ttl = state.config().read_cache_ttl;
    {
        let last = state.v01().last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(built) = last.as_ref()
            && built.generation == generation
            && built.at.elapsed() < ttl
            && (built.removed || !removed)
        {
            return Ok(built.catalog.clone());
        }
    }
    let at = std::time::Instant::now();
    let catalog = build(state, removed).await?;
    if !ttl.is_zero() {
        let mut last = state.v01().last.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some(Built {
            generation,
            at,
            removed,
            catalog: catalog.clone(),
        });
    }
    Ok(catalog)
}

async fn build(state: &AppState, removed: bool) -> Result<Arc<Catalog>, ApiError> {
    let live = live_entries(state).await?;
    let gone = if removed {
        let mut memory = state.v01().removed.lock().await;
        memory.catch_up(state.store()).await?;
        memory.removed()
    } else {
        Vec::new()
    };
    Ok(Arc::new(Catalog::build(
        &state.config().registry_namespace,
        &live,
        &gone,
    )))
}

/// `{"servers":[…],"metadata":{…}}` from rendered items.
fn list_body<'a>(
    items: impl Iterator<Item = &'a Item>,
    next: Option<String>,
) -> Result<Bytes, ApiError> {
    let mut body = Vec::with_capacity(64 * 1024);
    body.extend_from_slice(br#"{"servers":["#);
    let mut count = 0;
    for item in items {
        if count > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&item.json);
        count += 1;
    }
    body.extend_from_slice(br#"],"metadata":"#);
    let metadata = ListMetadata {
        next_cursor: next,
        count,
    };
    serde_json::to_writer(&mut body, &metadata).map_err(|_| ApiError::Internal)?;
    body.push(b'}');
    Ok(Bytes::from(body))
}

fn matches(q: &Query, item: &Item) -> bool {
    use mcp_fleet_model::official::OfficialStatus;
    (q.include_deleted || item.status != OfficialStatus::Deleted)
        && match &q.version {
            Versions::All => true,
            Versions::Latest => item.is_latest,
            Versions::Exact(v) => item.version.to_string() == *v,
        }
        && q.search
            .as_ref()
            .is_none_or(|s| item.name.to_lowercase().contains(s.as_str()))
        && q.updated_since.is_none_or(|t| item.updated_at > t)
}

/// Whether `item` comes after the cursor's item: names in order, each name's versions newest
/// first.
fn after_cursor(after: Option<&(String, Version)>, item: &Item) -> bool {
    after.is_none_or(|(name, version)| {
        item.name.as_str() > name.as_str() || (item.name == *name && item.version < *version)
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Server not found: no server named {name:?}"))
}

async fn render(state: &AppState, key: &Key) -> Result<Bytes, ApiError> {
    match key {
        Key::List(q) => {
            let catalog = catalog(state, q.include_deleted).await?;
            let mut page = catalog
                .items
                .iter()
                .filter(|i| after_cursor(q.after.as_ref(), i) && matches(q, i));
            let items: Vec<&Item> = page.by_ref().take(q.limit).collect();
            let next = match (items.last(), page.next()) {
                (Some(last), Some(_)) => Some(encode_cursor(last)),
                _ => None,
            };
            list_body(items.into_iter(), next)
        }
        Key::Versions(name, deleted) => {
            let catalog = catalog(state, *deleted).await?;
            let items: Vec<&Item> = catalog
                .versions_of(name)
                .filter(|i| {
                    *deleted || i.status != mcp_fleet_model::official::OfficialStatus::Deleted
                })
                .collect();
            if items.is_empty() {
                return Err(not_found(name));
            }
            list_body(items.into_iter(), None)
        }
        Key::Version(name, version) => {
            let pick = |c: &Catalog| {
                c.versions_of(name)
                    .find(|i| {
                        if version == "latest" {
                            i.is_latest
                        } else {
                            i.version.to_string() == *version
                        }
                    })
                    .map(|i| i.json.clone())
            };
            // A live version needs no event log; a removed one is looked for only then.
            if let Some(json) = pick(&*catalog(state, false).await?) {
                return Ok(json);
            }
            let all = catalog(state, true).await?;
            if let Some(json) = pick(&all) {
                return Ok(json);
            }
            if all.versions_of(name).next().is_none() {
                return Err(not_found(name));
            }
            Err(ApiError::NotFound(format!(
                "Server version not found: {name:?} has no version {version:?}"
            )))
        }
    }
}

/// Answers `key` from the read cache, or the last good answer while the database is away.
async fn answer(state: &AppState, key: Key) -> Result<Response, V01Error> {
    let cache = state.cache();
    let key = CacheKey::V01(key);
    let stale = |e: ApiError| or_stale(cache, e, cache.last_known(&key).map(|a| a.body));
    if cache.database_away() {
        return Ok(stale(ApiError::Unavailable)?);
    }
    let CacheKey::V01(question) = &key else {
        unreachable!("built as V01 above")
    };
    let answer = match cache
        .get_or_render_answer(&key, || render(state, question))
        .await
    {
        Ok(answer) => answer,
        Err(e) => return Ok(stale(e)?),
    };
    let mut res = json_response(StatusCode::OK, answer.body);
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{:016x}\"", answer.etag)) {
        res.headers_mut().insert(header::ETAG, etag);
    }
    Ok(res)
}

/// An [`ApiError`] as the official API's clients read it: the problem document, with the
/// official `{"error": "…"}` member too.
pub(crate) struct V01Error(ApiError);

impl From<ApiError> for V01Error {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<ValidationErrors> for V01Error {
    fn from(e: ValidationErrors) -> Self {
        Self(ApiError::Validation(e))
    }
}

impl IntoResponse for V01Error {
    fn into_response(self) -> Response {
        let mut problem: serde_json::Value =
            serde_json::from_slice(&self.0.body()).unwrap_or_default();
        if let Some(fields) = problem.as_object_mut() {
            fields.insert("error".to_owned(), self.0.to_string().into());
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = self.0.into_response();
        res.headers_mut().remove(header::CONTENT_LENGTH);
        *res.body_mut() = axum::body::Body::from(body);
        res
    }
}

/// `GET /v0.1/servers?cursor=…&limit=…&search=…&updated_since=…&version=…&include_deleted=…`
#[utoipa::path(
    get,
    path = "/v0.1/servers",
    tag = "official registry",
    summary = "List MCP servers (official MCP Registry v0.1)",
    description = "Every version of every server, by name, each name's newest version first: \
                   a service is one server named `<--registry-namespace>/<service>`, the \
                   distinct versions of its instances are its versions, each instance a \
                   `streamable-http` remote. Servers that are down stay listed \
                   (`_meta[\"dev.mcp-fleet/health\"].status` says so). Removed versions the \
                   event log still remembers are listed as `deleted` with \
                   `include_deleted=true`. Unknown parameters are ignored.",
    params(
        ("cursor" = Option<String>, Query, description = "`metadata.nextCursor` of the previous page"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 30)", minimum = 1, maximum = 100),
        ("search" = Option<String>, Query, description = "Servers whose name contains this (case-insensitive)", example = "billing"),
        ("updated_since" = Option<String>, Query, description = "Versions updated after this RFC 3339 time", example = "2026-01-02T03:04:05Z"),
        ("version" = Option<String>, Query, description = "`latest`, or an exact version such as `1.2.3`"),
        ("include_deleted" = Option<bool>, Query, description = "Also list removed versions (`status: deleted`) while remembered"),
    ),
    responses(
        (status = 200, description = "One page of server versions", body = mcp_fleet_model::official::ServerList),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, V01Error> {
    let query = parse_query(raw.as_deref())?;
    answer(&state, Key::List(query)).await
}

/// `GET /v0.1/servers/{serverName}/versions[?include_deleted=true]`
#[utoipa::path(
    get,
    path = "/v0.1/servers/{serverName}/versions",
    tag = "official registry",
    summary = "List the versions of an MCP server (official MCP Registry v0.1)",
    description = "Newest version first. With `include_deleted=true`, removed versions still \
                   remembered too.",
    params(
        ("serverName" = String, Path, description = "URL-encoded server name", example = "local.mcp-fleet%2Fbilling"),
        ("include_deleted" = Option<bool>, Query, description = "Also list removed versions"),
    ),
    responses(
        (status = 200, description = "The server's versions", body = mcp_fleet_model::official::ServerList),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 404, description = "No such server", body = crate::error::Problem<'static>, content_type = "application/problem+json"),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, V01Error> {
    let mut deleted = false;
    for (key, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        if key == "include_deleted" {
            deleted = parse_bool("include_deleted", &value).map_err(ValidationErrors::from)?;
        }
    }
    answer(&state, Key::Versions(name, deleted)).await
}

/// `GET /v0.1/servers/{serverName}/versions/{version}`
#[utoipa::path(
    get,
    path = "/v0.1/servers/{serverName}/versions/{version}",
    tag = "official registry",
    summary = "Get one version of an MCP server (official MCP Registry v0.1)",
    description = "`latest` names the server's newest version. A removed version still \
                   remembered is answered with `status: deleted`.",
    params(
        ("serverName" = String, Path, description = "URL-encoded server name", example = "local.mcp-fleet%2Fbilling"),
        ("version" = String, Path, description = "URL-encoded version, or `latest`", example = "1.0.0"),
    ),
    responses(
        (status = 200, description = "The server version", body = mcp_fleet_model::official::ServerResponse),
        (status = 404, description = "No such server or version", body = crate::error::Problem<'static>, content_type = "application/problem+json"),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, V01Error> {
    answer(&state, Key::Version(name, version)).await
}

/// CORS on the v0.1 routes as GitHub documents it for registry URLs: any origin, `GET` and
/// `OPTIONS`, the `Authorization` and `Content-Type` headers; a preflight is answered here,
/// before rate limits and authentication, and refusals carry the headers too so a browser can
/// read them.
pub(crate) async fn cors(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with(PREFIX) {
        return next.run(request).await;
    }
    let preflight = request.method() == Method::OPTIONS;
    let mut res = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type"),
    );
    if preflight {
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
    }
    res
}
