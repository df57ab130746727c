//! The accept loop's connection wrapper: the answers hyper writes itself, below the router,
//! when it cannot parse a request (`400`, `414`, `431`, with empty bodies) are rewritten as
//! the problem+json every other refusal is.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ApiError;

/// A connection whose empty-bodied error answers are replaced by problems.
///
/// hyper writes such an answer as one buffer holding only its head (it writes through
/// `poll_write` alone, since this type says it has no vectored writes); no handler answers an
/// error without a body, so a buffer that is exactly a 4xx/5xx head with `content-length: 0`
/// is one of hyper's.
pub(crate) struct ProblemIo<S> {
    inner: S,
    max_header_bytes: usize,
    /// A replacement being written: its bytes, how many are written, and the length of the
    /// buffer it replaces (reported as written once it all is).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<S> ProblemIo<S> {
    pub(crate) fn new(inner: S, max_header_bytes: usize) -> Self {
        Self {
            inner,
            max_header_bytes,
            pending: None,
        }
    }
}

/// The problem for an automatic answer with `status`.
fn explain(status: StatusCode, max_header_bytes: usize) -> ApiError {
    match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeaderTooLarge(max_header_bytes),
        StatusCode::URI_TOO_LONG => {
            ApiError::UriTooLong("the request target is too long to be read".into())
        }
        _ => ApiError::MalformedRequest(status),
    }
}

/// The replacement of `buf` when it is one of hyper's empty-bodied error answers.
fn rewrite(buf: &[u8], max_header_bytes: usize) -> Option<Vec<u8>> {
    // Every write passes here: rule out answers with bodies before reading any further.
    let error = buf.starts_with(b"HTTP/1.1 4") || buf.starts_with(b"HTTP/1.1 5");
    if !error || buf.len() > 1024 || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?;
    let head = head.strip_suffix("\r\n\r\n")?;
    if head.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let code = status_line.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let status = StatusCode::from_bytes(code.as_bytes()).ok()?;
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let headers: Vec<&str> = lines.collect();
    let empty = headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case("content-length: 0"));
    if !empty {
        return None;
    }
    let body = explain(status, max_header_bytes).body();
    let mut out = format!("{status_line}\r\n");
    for h in headers {
        let name = h.split(':').next().unwrap_or_default();
        if !(name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("content-type")
            || name.eq_ignore_ascii_case("connection"))
        {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!(
        "content-type: application/problem+json\r\ncontent-length: {}\r\nconnection: \
         close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewrite(buf, this.max_header_bytes) {
                Some(replacement) => this.pending = Some((replacement, 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // hyper offers the same buffer again until it is reported written.
        while let Some((bytes, written, replaced)) = &mut this.pending {
            if *written == bytes.len() {
                let replaced = *replaced;
                this.pending = None;
                return Poll::Ready(Ok(replaced));
            }
            match Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_error_heads_are_rewritten() {
        let head = "HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                    content-length: 0\r\ndate: Mon, 07 Dec 2026 01:00:00 GMT\r\n\r\n";
        let out =
            String::from_utf8(rewrite(head.as_bytes(), 16).expect("rewritten")).expect("utf8");
        let (new_head, body) = out.split_once("\r\n\r\n").expect("head");
        assert!(new_head.starts_with("HTTP/1.1 431 "), "{new_head}");
        assert!(new_head.contains("date: Mon"), "{new_head}");
        assert!(new_head.contains(&format!("content-length: {}", body.len())));
        let problem: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(problem["code"], "header-too-large");
        for kept in [
            "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            "{\"servers\":[]}",
        ] {
            assert!(rewrite(kept.as_bytes(), 16).is_none(), "{kept}");
        }
    }
}
