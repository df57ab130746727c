//! `GET /`: the status page, one dependency-free HTML file (`page/index.html`) built into the
//! binary. It reads `/status` and `/servers`, and follows `/events` while it answers.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

/// The page, as served.
const PAGE: &str = include_str!("../page/index.html");

/// Only this origin may be contacted, nothing may frame the page.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    summary = "The status page",
    description = "A live HTML dashboard of the fleet: summary, a filterable table of servers, \
                   updated from `/events` (or by polling `/servers` and `/status`).",
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
pub(crate) async fn index() -> Response {
    let mut res = Html(PAGE).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    res
}
