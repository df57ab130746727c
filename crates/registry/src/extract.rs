//! Extractors that turn a request into checked values or an [`ApiError`], so malformed input
//! gets the same problem+json body as any other mistake.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts};
use mcp_fleet_model::ServerId;

use crate::AppState;
use crate::error::ApiError;

/// A JSON request body, checked for content type and size, parsed but not yet validated.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) serde_json::Value);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config().max_body_bytes;
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or(""));
        match content_type {
            Some(ct) if is_json(ct) => {}
            Some(ct) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Content-Type is {ct:?}; send the body as application/json"
                )));
            }
            None => {
                return Err(ApiError::UnsupportedMediaType(
                    "Content-Type is missing; send the body as application/json".into(),
                ));
            }
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::PayloadTooLarge(limit))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::MalformedJson(e.to_string()))
    }
}

/// The `{id}` of a `/servers/{id}` path, already a valid [`ServerId`].
#[derive(Debug)]
pub(crate) struct IdPath(pub(crate) ServerId);

/// The one path segment of `parts` as a slug; errors name `field`.
async fn slug_path(parts: &mut Parts, state: &AppState, field: &str) -> Result<ServerId, ApiError> {
    let Path(raw) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::field(field, format!("path segment is not valid: {e}")))?;
    raw.parse::<ServerId>()
        .map_err(|e| ApiError::field(field, e))
}

impl FromRequestParts<AppState> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        slug_path(parts, state, "id").await.map(IdPath)
    }
}

/// The `{service}` of a `/services/{service}/…` path, already a valid slug.
#[derive(Debug)]
pub(crate) struct ServicePath(pub(crate) ServerId);

impl FromRequestParts<AppState> for ServicePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        slug_path(parts, state, "service").await.map(ServicePath)
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json(""));
    }
}
