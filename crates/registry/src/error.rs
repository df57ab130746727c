//! The API's one error type and its RFC 7807 `application/problem+json` rendering.
//!
//! Every failure a handler or extractor can produce is an [`ApiError`]; its `code` picks the
//! HTTP status and title from one table, so the same mistake always reads the same way.
//! [`responses`] describes the common ones once for `/openapi.json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_fleet_model::{FieldError, ValidationErrors};
use mcp_fleet_store::StoreError;
use serde::Serialize;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// One or more fields are invalid.
    #[error("{0}")]
    Validation(ValidationErrors),
    /// The body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    /// No credentials, or credentials that are not valid (unknown, wrong, expired, revoked).
    #[error("{detail}")]
    Unauthorized {
        /// What is wrong, without the credential itself.
        detail: String,
        /// A credential was presented (and refused), as opposed to none at all.
        presented: bool,
    },
    /// Valid credentials that do not allow this request.
    #[error("{0}")]
    Forbidden(String),
    /// A cap on stored entries is reached.
    #[error("{0}")]
    LimitReached(String),
    /// Too many requests of this kind; retry after this many seconds.
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// A part of the registry this request needs is not running in this process.
    #[error("{0}")]
    NotRunning(String),
    /// The change feed no longer holds the changes after the revision asked for: list again.
    #[error("{0}")]
    HistoryGone(String),
    /// The database is unreachable; retrying later may succeed.
    #[error("the registry database is unavailable")]
    Unavailable,
    /// A bug or a corrupt row: logged in full, reported without internals.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// A single invalid field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationErrors::one(field, message))
    }

    /// Stable code, HTTP status and title: the one table of API errors.
    fn describe(&self) -> (&'static str, StatusCode, &'static str) {
        match self {
            Self::Validation(_) => (
                "validation-failed",
                StatusCode::BAD_REQUEST,
                "Request has invalid fields",
            ),
            Self::MalformedJson(_) => (
                "malformed-json",
                StatusCode::BAD_REQUEST,
                "Request body is not valid JSON",
            ),
            Self::UnsupportedMediaType(_) => (
                "unsupported-media-type",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Request body must be JSON",
            ),
            Self::PayloadTooLarge(_) => (
                "payload-too-large",
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body is too large",
            ),
            Self::NotFound(_) => ("not-found", StatusCode::NOT_FOUND, "Not found"),
            Self::MethodNotAllowed => (
                "method-not-allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
            ),
            Self::Conflict(_) => ("conflict", StatusCode::CONFLICT, "Conflict"),
            Self::Unauthorized { .. } => (
                "unauthorized",
                StatusCode::UNAUTHORIZED,
                "Authentication required",
            ),
            Self::Forbidden(_) => ("forbidden", StatusCode::FORBIDDEN, "Not allowed"),
            Self::LimitReached(_) => (
                "limit-reached",
                StatusCode::INSUFFICIENT_STORAGE,
                "Entry limit reached",
            ),
            Self::RateLimited(_) => (
                "rate-limited",
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
            ),
            Self::HistoryGone(_) => (
                "history-gone",
                StatusCode::GONE,
                "Change history no longer available",
            ),
            Self::NotRunning(_) => (
                "not-running",
                StatusCode::SERVICE_UNAVAILABLE,
                "Not available in this process",
            ),
            Self::Unavailable => (
                "database-unavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "Registry database unavailable",
            ),
            Self::Internal => (
                "internal",
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                Self::Unavailable
            }
            other => {
                tracing::error!(error = %other, "store error");
                Self::Internal
            }
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::Validation(e)
    }
}

/// An RFC 7807 problem document (`application/problem+json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    kind: String,
    /// What kind of mistake, the same for every problem with this code.
    title: &'static str,
    /// The HTTP status.
    status: u16,
    /// What went wrong with this request.
    detail: String,
    /// Stable, machine-readable: `validation-failed`, `malformed-json`, `not-found`, …
    code: &'static str,
    /// Every invalid field (`validation-failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldError>>)]
    errors: Option<&'a [FieldError]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, status, title) = self.describe();
        let problem = Problem {
            kind: format!("/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            code,
            errors: match &self {
                Self::Validation(v) => Some(&v.0),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match &self {
            Self::Unavailable => Some(5),
            Self::RateLimited(s) => Some(*s),
            _ => None,
        };
        if let Some(s) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Self::Unauthorized { presented, .. } = &self {
            // RFC 6750: name the scheme; say `invalid_token` when one was refused.
            let challenge = if *presented {
                r#"Bearer realm="mcp-fleet", error="invalid_token""#
            } else {
                r#"Bearer realm="mcp-fleet""#
            };
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        res
    }
}

/// The answers many operations share, each described once in `/openapi.json`
/// (`#/components/responses/<name>`) and referenced from the handlers' `#[utoipa::path]`s as
/// `(status = …, response = crate::error::responses::<name>)`. An answer particular to one
/// operation keeps its own line there.
pub(crate) mod responses {
    #![allow(
        dead_code,
        reason = "never built: each only names its body's schema for the document"
    )]

    use super::Problem;

    /// Invalid fields, query parameters or path segments (`validation-failed`), or malformed JSON
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub(crate) struct BadRequest(Problem<'static>);

    /// No such entry (`not-found`)
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub(crate) struct EntryNotFound(Problem<'static>);

    /// The service has no policy (`not-found`)
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub(crate) struct PolicyNotFound(Problem<'static>);

    /// The body is over 64 KiB (`payload-too-large`)
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub(crate) struct PayloadTooLarge(Problem<'static>);

    /// The body is not sent as `application/json` (`unsupported-media-type`)
    #[derive(utoipa::ToResponse)]
    #[response(content_type = "application/problem+json")]
    pub(crate) struct UnsupportedMediaType(Problem<'static>);

    /// The database is unavailable (`database-unavailable`; `Retry-After` is set)
    #[derive(utoipa::ToResponse)]
    #[response(
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
    )]
    pub(crate) struct DatabaseUnavailable(Problem<'static>);
}
