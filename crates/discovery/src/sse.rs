//! Server-sent events read from a response body as it arrives: the answers to MCP requests on
//! kept connections (`direct`, `kept_post`) and the registry's change feed (`feed`).
//!
//! The events are `sse-stream`'s (the parser rmcp's own client uses). What this module adds is
//! what that parser does not bound: the bytes of one event (an event over the limit ends the
//! read with [`ReadError::TooLarge`], so a server cannot make the reader hold more), how long
//! the body may stay silent, and what becomes of a body dropped before its end.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use sse_stream::SseStream;
use tokio::time::{Instant, Sleep};

/// Why the events of a body ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// An event, or the bytes before its end, is larger than the reader's limit.
    #[error("an event of the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// No bytes came for the reader's idle limit.
    #[error("no data for {} s", .0.as_secs())]
    Idle(Duration),
    /// Reading the body failed (the body's own error).
    #[error(transparent)]
    Body(Box<dyn std::error::Error + Send + Sync>),
    /// The bytes are not an event stream.
    #[error("the event stream is malformed: {0}")]
    Malformed(sse_stream::Error),
}

impl From<sse_stream::Error> for ReadError {
    fn from(error: sse_stream::Error) -> Self {
        match error {
            // The body below the parser is a `Bounded`, whose errors are `ReadError`s.
            sse_stream::Error::Body(inner) => match inner.downcast::<ReadError>() {
                Ok(read) => *read,
                Err(other) => ReadError::Body(other),
            },
            other => ReadError::Malformed(other),
        }
    }
}

/// The events of a body, read with the limits of [`Bounded`].
pub(crate) type Events<B> = SseStream<Bounded<B>>;

/// The events of `body`, within its limits.
pub(crate) fn events<B>(body: Bounded<B>) -> Events<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    SseStream::new(body)
}

/// A body whose unfinished event is at most `limit` bytes; optionally silent for at most an
/// idle limit, and handed to a function when dropped before its end (to keep its connection).
/// After an error the body is dropped and the stream ends.
pub(crate) struct Bounded<B> {
    body: Option<B>,
    limiter: Limiter,
    idle: Option<(Duration, Option<Pin<Box<Sleep>>>)>,
    on_drop: Option<fn(B)>,
}

impl<B> Bounded<B> {
    /// `body`, its events at most `limit` bytes each.
    pub(crate) fn new(body: B, limit: usize) -> Self {
        Self {
            body: Some(body),
            limiter: Limiter::new(limit),
            idle: None,
            on_drop: None,
        }
    }

    /// Fails with [`ReadError::Idle`] once no bytes came for `limit`.
    pub(crate) fn idle_limit(mut self, limit: Duration) -> Self {
        self.idle = Some((limit, None));
        self
    }

    /// Hands the body to `finish` when it is dropped before its end.
    pub(crate) fn on_drop(mut self, finish: fn(B)) -> Self {
        self.on_drop = Some(finish);
        self
    }

    fn fail(&mut self, error: ReadError) -> Poll<Option<Result<Frame<Bytes>, ReadError>>> {
        self.body = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl<B> Body for Bounded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    type Data = Bytes;
    type Error = ReadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReadError>>> {
        let this = &mut *self;
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Pending => {
                let Some((limit, sleep)) = this.idle.as_mut() else {
                    return Poll::Pending;
                };
                let limit = *limit;
                let sleep = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match sleep.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => this.fail(ReadError::Idle(limit)),
                }
            }
            Poll::Ready(None) => {
                this.body = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => this.fail(ReadError::Body(Box::new(e))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some((limit, Some(sleep))) = this.idle.as_mut() {
                        sleep.as_mut().reset(Instant::now() + *limit);
                    }
                    if this.limiter.observe(data).is_err() {
                        return this.fail(ReadError::TooLarge(this.limiter.limit));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(B::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(SizeHint::default, B::size_hint)
    }
}

impl<B> Drop for Bounded<B> {
    fn drop(&mut self) {
        if let (Some(body), Some(finish)) = (self.body.take(), self.on_drop) {
            finish(body);
        }
    }
}

/// Counts the bytes since the last event's end (a blank line) as the bytes go by.
struct Limiter {
    limit: usize,
    /// Bytes since the last event ended.
    event: usize,
    /// Bytes of the line being read.
    line: usize,
    /// The last byte was a `\r` (a `\n` after it ends no other line).
    after_cr: bool,
}

impl Limiter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            event: 0,
            line: 0,
            after_cr: false,
        }
    }

    /// Takes the next bytes; an error once the unfinished event is over the limit.
    fn observe(&mut self, mut bytes: &[u8]) -> Result<(), ()> {
        while !bytes.is_empty() {
            if std::mem::take(&mut self.after_cr) && bytes[0] == b'\n' {
                self.event += 1;
                bytes = &bytes[1..];
                continue;
            }
            let Some(end) = bytes.iter().position(|b| matches!(b, b'\n' | b'\r')) else {
                self.line += bytes.len();
                self.event += bytes.len();
                break;
            };
            if self.line + end == 0 {
                self.event = 0;
            } else {
                self.event += end + 1;
                self.line = 0;
            }
            self.after_cr = bytes[end] == b'\r';
            bytes = &bytes[end + 1..];
            if self.event > self.limit {
                return Err(());
            }
        }
        if self.event > self.limit {
            return Err(());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use http_body_util::StreamBody;
    use sse_stream::Sse;

    use super::*;

    type Pieces =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;

    fn body(pieces: &[&[u8]]) -> Pieces {
        let frames: Vec<_> = pieces
            .iter()
            .map(|p| Ok(Frame::data(Bytes::copy_from_slice(p))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    fn read(pieces: &[&[u8]], limit: usize) -> Vec<Result<Sse, ReadError>> {
        let events = events(Bounded::new(body(pieces), limit));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(events.map(|e| e.map_err(ReadError::from)).collect())
    }

    /// The data of the events with any, as the MCP readers take them.
    fn datas(pieces: &[&[u8]]) -> Vec<String> {
        read(pieces, 1 << 20)
            .into_iter()
            .map(|e| e.expect("an event"))
            .filter_map(|e| e.data.filter(|d| !d.is_empty()))
            .collect()
    }

    #[test]
    fn events_are_read_whatever_the_pieces() {
        let stream: &[u8] =
            b"id: 0\nretry: 3000\ndata:\n\ndata: {\"a\":1}\n\nevent: message\ndata: x\ndata: y\n\n";
        let whole = datas(&[stream]);
        assert_eq!(whole, ["{\"a\":1}", "x\ny"]);
        // Cut at every byte: the same events.
        let pieces: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(datas(&pieces), whole);
    }

    #[test]
    fn every_field_is_read() {
        let events = read(
            &[b": a comment\n\nid: 7\nretry: 3000\ndata:\n\nevent: message\ndata: x\n\n"],
            1024,
        );
        let events: Vec<Sse> = events.into_iter().map(|e| e.expect("an event")).collect();
        assert_eq!(
            events,
            [
                Sse {
                    id: Some("7".into()),
                    retry: Some(3000),
                    data: Some(String::new()),
                    ..Sse::default()
                },
                Sse {
                    event: Some("message".into()),
                    data: Some("x".into()),
                    ..Sse::default()
                }
            ]
        );
    }

    #[test]
    fn crlf_line_ends_and_unfinished_events() {
        assert_eq!(datas(&[b"data: a\r\n\r\ndata: b"]), ["a"]);
        assert_eq!(
            datas(&[b"data: a\r\n\r", b"\n", b"data: b\n\n"]),
            ["a", "b"]
        );
    }

    #[test]
    fn an_oversized_event_is_refused() {
        let exact = [b'x'; 64];
        let mut limiter = Limiter::new(64);
        assert!(limiter.observe(&exact).is_ok(), "exactly the limit fits");
        assert!(limiter.observe(b"x").is_err());

        // Through the reader: the event over the limit ends the read; the one before is read.
        let big = format!("data: {}\n\n", "y".repeat(100));
        let read = read(&[b"data: a\n\n", big.as_bytes(), b"data: b\n\n"], 64);
        assert_eq!(read.len(), 2, "{read:?}");
        assert_eq!(
            read[0].as_ref().expect("the first event").data.as_deref(),
            Some("a")
        );
        assert!(matches!(read[1], Err(ReadError::TooLarge(64))), "{read:?}");
    }

    #[test]
    fn the_limit_is_per_event_and_counts_across_pieces() {
        // Many small events in one piece: each is under the limit.
        let many = "data: 0123456789\n\n".repeat(100);
        assert_eq!(datas(&[many.as_bytes()]).len(), 100);
        let mut limiter = Limiter::new(32);
        assert!(limiter.observe(many.as_bytes()).is_ok());
        // One event in many pieces, with CRLF lines: counted across them.
        let mut limiter = Limiter::new(40);
        for piece in [&b"data: 0123456789\r"[..], b"\n", b"data: 0123456789\r\n"] {
            assert!(limiter.observe(piece).is_ok());
        }
        assert!(limiter.observe(b"data: x").is_err());
        // A blank line ends the event: the count starts over.
        let mut limiter = Limiter::new(40);
        for piece in [
            &b"data: 0123456789\r\n"[..],
            b"\r\n",
            b"data: 0123456789\r\n",
        ] {
            assert!(limiter.observe(piece).is_ok());
        }
    }

    #[test]
    fn readers_stay_send_sync_and_unpin() {
        // `ChangeFeed` is public: its reader must not take these away from it.
        fn check<T: Send + Sync + Unpin>() {}
        check::<crate::ChangeFeed>();
        check::<Events<hyper::body::Incoming>>();
    }
}
