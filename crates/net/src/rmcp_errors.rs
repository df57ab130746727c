//! Reading rmcp's client errors: whether a server turned the request away with `401`/`403`, and
//! the error chain as one readable line. Shared by this library and by the registry's MCP health
//! probe, which meet the same errors; [`chain`] is the same line for any error, for what the CLI
//! prints.

use std::error::Error;

use rmcp::transport::streamable_http_client::{
    AuthRequiredError, InsufficientScopeError, StreamableHttpError,
};

type HttpError = StreamableHttpError<reqwest::Error>;

/// 401 or 403 if an error in `error`'s chain says the server answered with it, or, failing
/// that, if the chain's text does (see [`auth_status_in_text`]).
pub fn auth_status(error: &(dyn Error + 'static)) -> Option<u16> {
    let is_auth = |status: u16| (status == 401 || status == 403).then_some(status);
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(http) = current.downcast_ref::<HttpError>() {
            match http {
                StreamableHttpError::AuthRequired(_) => return Some(401),
                StreamableHttpError::InsufficientScope(_) => return Some(403),
                StreamableHttpError::HttpStatus(s) => {
                    if let Some(status) = is_auth(s.status) {
                        return Some(status);
                    }
                }
                StreamableHttpError::Client(e) => {
                    if let Some(status) = e.status().and_then(|s| is_auth(s.as_u16())) {
                        return Some(status);
                    }
                }
                StreamableHttpError::UnexpectedServerResponse(text) => {
                    if let Some(status) = auth_status_in_text(text) {
                        return Some(status);
                    }
                }
                _ => {}
            }
        }
        if current.is::<AuthRequiredError>() {
            return Some(401);
        }
        if current.is::<InsufficientScopeError>() {
            return Some(403);
        }
        if let Some(status) = current
            .downcast_ref::<reqwest::Error>()
            .and_then(reqwest::Error::status)
            .and_then(|s| is_auth(s.as_u16()))
        {
            return Some(status);
        }
        next = current.source();
    }
    auth_status_in_text(&chain_text(error))
}

/// rmcp reports a 401/403 that comes without a `WWW-Authenticate` challenge only as text
/// (`HTTP 401 Unauthorized: <body>`).
pub fn auth_status_in_text(text: &str) -> Option<u16> {
    [
        (401, "HTTP 401", "401 Unauthorized"),
        (403, "HTTP 403", "403 Forbidden"),
    ]
    .into_iter()
    .find(|(_, a, b)| text.contains(a) || text.contains(b))
    .map(|(status, _, _)| status)
}

/// The messages of `error`'s chain joined with `: `, without rmcp's wrappers (which repeat
/// their source's message behind a long transport type name), without reqwest's URL (the caller
/// names the server already) and without a message its predecessor already contains.
pub fn chain_text(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        if current.is::<rmcp::transport::DynamicTransportError>() {
            next = current.source();
            continue;
        }
        // `Client` holds the reqwest error without declaring it as its source.
        if let Some(StreamableHttpError::Client(inner)) = current.downcast_ref::<HttpError>() {
            next = Some(inner);
            continue;
        }
        let text = match current.downcast_ref::<reqwest::Error>() {
            Some(e) => match e.url() {
                Some(url) => e.to_string().replace(&format!(" for url ({url})"), ""),
                None => e.to_string(),
            },
            None => current.to_string(),
        };
        push_unrepeated(&mut parts, text);
        next = current.source();
    }
    parts.join(": ")
}

/// The messages of `error`'s chain joined with `: `, without a message its predecessor already
/// contains: an error whose message includes its source's (`x: y`, source `y`) is not followed
/// by that source again (`x: y: y`), as `{:#}` of an `anyhow::Error` would print it.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        push_unrepeated(&mut parts, current.to_string());
        next = current.source();
    }
    parts.join(": ")
}

/// Adds `text` unless the last message already says it.
fn push_unrepeated(parts: &mut Vec<String>, text: String) {
    if !parts.last().is_some_and(|last| last.contains(&text)) {
        parts.push(text);
    }
}

/// The first line of `text`, cut to at most `max` characters (the last one then `…`).
pub fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim_end();
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_status_from_text() {
        let cases = [
            ("HTTP 401 Unauthorized: nope", Some(401)),
            ("unexpected: 403 Forbidden", Some(403)),
            ("HTTP 500", None),
        ];
        for (text, want) in cases {
            assert_eq!(auth_status_in_text(text), want, "{text}");
        }
    }

    #[test]
    fn rmcp_errors_are_read_through_their_wrappers() {
        let status = |status: u16| {
            HttpError::HttpStatus(
                rmcp::transport::streamable_http_client::HttpStatusError::new(status, None),
            )
        };
        for (error, want) in [
            (status(401), Some(401)),
            (status(403), Some(403)),
            (status(500), None),
            (
                HttpError::UnexpectedServerResponse("HTTP 403 Forbidden: go away".into()),
                Some(403),
            ),
        ] {
            assert_eq!(auth_status(&error), want, "{error}");
        }
        let io = std::io::Error::other("connection refused");
        assert_eq!(chain_text(&io), "connection refused");
        assert_eq!(auth_status(&io), None);
    }

    #[test]
    fn chains_never_repeat_a_cause() {
        #[derive(Debug, thiserror::Error)]
        enum Outer {
            /// Says its source and declares it: `{:#}` would print the source twice.
            #[error("cannot start: {0}")]
            Says(#[source] std::io::Error),
            /// Declares its source only.
            #[error("cannot start")]
            Wraps(#[source] std::io::Error),
        }
        let refused = || std::io::Error::other("connection refused");
        let says = Outer::Says(refused());
        assert_eq!(chain(&says), "cannot start: connection refused");
        assert_eq!(
            chain(&Outer::Wraps(refused())),
            "cannot start: connection refused"
        );
        assert_eq!(chain(&refused()), "connection refused");
    }

    #[test]
    fn first_lines_are_cut_on_characters() {
        assert_eq!(first_line("first\nsecond", 10), "first");
        let cut = first_line(&"x".repeat(20), 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
        assert_eq!(first_line(&"é".repeat(10), 10), "é".repeat(10));
    }
}
