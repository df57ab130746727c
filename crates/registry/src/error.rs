//! The API's one error type and its RFC 7807 `application/problem+json` rendering.
//!
//! Every failure a handler, an extractor or a connection-level limit can produce is an
//! [`ApiError`]; its `code` picks the HTTP status and title from one table, so the same mistake
//! always reads the same way. [`responses`] describes the common ones once for `/openapi.json`.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_fleet_model::{ContractBreak, FieldError, ValidationErrors};
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
    /// The body did not arrive within this long.
    #[error("the request body did not arrive within {} s", .0.as_secs_f64())]
    RequestTimeout(Duration),
    /// The request target is over the limit.
    #[error("{0}")]
    UriTooLong(String),
    /// The request line and headers are over this many bytes (hyper's refusal, as a problem).
    #[error(
        "the request line and headers are over {0} bytes, or more headers than the registry reads"
    )]
    HeaderTooLarge(usize),
    /// Not HTTP/1.1 that hyper can parse; answered with hyper's own status.
    #[error("the request is not valid HTTP/1.1 (request line, header or framing)")]
    MalformedRequest(StatusCode),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    /// A routing policy would send traffic to versions whose tool catalog breaks the stable
    /// version's contract, and does not say `allowBreaking`.
    #[error("{detail}")]
    BreakingContract {
        /// Which versions, and how to override.
        detail: String,
        /// Every breaking change.
        breaks: Vec<ContractBreak>,
    },
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
    fn code_status_title(&self) -> (&'static str, StatusCode, &'static str) {
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
            Self::RequestTimeout(_) => (
                "request-timeout",
                StatusCode::REQUEST_TIMEOUT,
                "Request took too long to send",
            ),
            Self::UriTooLong(_) => (
                "uri-too-long",
                StatusCode::URI_TOO_LONG,
                "Request URL is too long",
            ),
            Self::HeaderTooLarge(_) => (
                "header-too-large",
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Request header fields too large",
            ),
            Self::MalformedRequest(status) => ("bad-request", *status, "Malformed HTTP request"),
            Self::NotFound(_) => ("not-found", StatusCode::NOT_FOUND, "Not found"),
            Self::MethodNotAllowed => (
                "method-not-allowed",
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
            ),
            Self::Conflict(_) => ("conflict", StatusCode::CONFLICT, "Conflict"),
            Self::BreakingContract { .. } => (
                "breaking-contract",
                StatusCode::CONFLICT,
                "Breaks the stable version's contract",
            ),
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
            StoreError::CapReached(cap) => Self::LimitReached(crate::limits::explain(&cap)),
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
    /// Every breaking change of the versions refused (`breaking-contract` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<ContractBreak>>)]
    breaking: Option<&'a [ContractBreak]>,
}

impl ApiError {
    /// The problem document's bytes.
    pub(crate) fn body(&self) -> Vec<u8> {
        let (code, status, title) = self.code_status_title();
        let problem = Problem {
            kind: format!("/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            code,
            errors: match self {
                Self::Validation(v) => Some(&v.0),
                _ => None,
            },
            breaking: match self {
                Self::BreakingContract { breaks, .. } => Some(breaks),
                _ => None,
            },
        };
        serde_json::to_vec(&problem).unwrap_or_default()
    }

    /// Refusals made before the whole request is read: the rest of it may still be on its way,
    /// so the connection is closed after the answer.
    fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::RequestTimeout(_)
                | Self::UriTooLong(_)
                | Self::HeaderTooLarge(_)
                | Self::MalformedRequest(_)
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (_, status, _) = self.code_status_title();
        let mut res = (status, self.body()).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match &self {
            Self::Unavailable => Some(5),
            Self::RateLimited(s) => Some(*s),
            _ => None,
        };
        if let Some(s) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Self::Unauthorized { presented, .. } = &self {
            // RFC 6750: name the scheme; say `invalid_token` when one was refused.
            let challenge = if *presented {
                r#"Bearer realm="mcp-fleet", error="invalid_token""#
            } else {
                r#"Bearer realm="mcp-fleet""#
            };
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.closes_connection() {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
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

    /// Each a `ToResponse` whose body is a [`Problem`]; the doc comment is its description.
    macro_rules! problems {
        ($($(#[$attr:meta])* $name:ident;)*) => {$(
            #[derive(utoipa::ToResponse)]
            #[response(content_type = "application/problem+json")]
            $(#[$attr])*
            pub(crate) struct $name(Problem<'static>);
        )*};
    }

    problems! {
        /// Invalid fields, query parameters or path segments (`validation-failed`), or malformed JSON
        BadRequest;
        /// No such entry (`not-found`)
        EntryNotFound;
        /// The service has no policy (`not-found`)
        PolicyNotFound;
        /// The body is over 64 KiB (`payload-too-large`)
        PayloadTooLarge;
        /// The body is not sent as `application/json` (`unsupported-media-type`)
        UnsupportedMediaType;
        /// The database is unavailable (`database-unavailable`; `Retry-After` is set)
        #[response(headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
        DatabaseUnavailable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusals made around the router (the limits layer, the body deadline, hyper's own
    /// answers rewritten) come from the same table as every other problem.
    #[test]
    fn limit_refusals_keep_their_status_type_and_headers() {
        // (error, status, type, Retry-After, Connection)
        let rows = [
            (
                ApiError::PayloadTooLarge(65_536),
                413,
                "/problems/payload-too-large",
                None,
                None,
            ),
            (
                ApiError::RateLimited(3),
                429,
                "/problems/rate-limited",
                Some("3"),
                None,
            ),
            (
                ApiError::HeaderTooLarge(16_384),
                431,
                "/problems/header-too-large",
                None,
                Some("close"),
            ),
            (
                ApiError::UriTooLong("the request target is 9000 bytes".into()),
                414,
                "/problems/uri-too-long",
                None,
                Some("close"),
            ),
            (
                ApiError::RequestTimeout(Duration::from_millis(1500)),
                408,
                "/problems/request-timeout",
                None,
                Some("close"),
            ),
            (
                ApiError::MalformedRequest(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
                505,
                "/problems/bad-request",
                None,
                Some("close"),
            ),
            (
                ApiError::Unavailable,
                503,
                "/problems/database-unavailable",
                Some("5"),
                None,
            ),
        ];
        for (error, status, kind, retry_after, connection) in rows {
            let detail = error.to_string();
            let body: serde_json::Value =
                serde_json::from_slice(&error.body()).expect("problem JSON");
            let res = error.into_response();
            assert_eq!(res.status().as_u16(), status, "{kind}");
            let header = |name| res.headers().get(name).and_then(|v| v.to_str().ok());
            assert_eq!(
                header(header::CONTENT_TYPE),
                Some("application/problem+json"),
                "{kind}"
            );
            assert_eq!(header(header::RETRY_AFTER), retry_after, "{kind}");
            assert_eq!(header(header::CONNECTION), connection, "{kind}");
            assert_eq!(body["type"], kind);
            assert_eq!(body["status"], status);
            assert_eq!(body["detail"], detail);
            assert_eq!(
                format!("/problems/{}", body["code"].as_str().unwrap_or("")),
                kind
            );
        }
        assert_eq!(
            ApiError::RequestTimeout(Duration::from_millis(1500)).to_string(),
            "the request body did not arrive within 1.5 s"
        );
    }
}
