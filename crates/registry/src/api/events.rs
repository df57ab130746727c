//! `GET /events`: the change feed as server-sent events.
//!
//! A stream first replays the logged events after the revision asked for (`Last-Event-ID`, else
//! `since`; none: from now), then follows the feed's broadcast. It reads the log again whenever
//! the broadcast skips ahead of it, so it never leaves a gap; it is closed with `event: resync`
//! when it falls more than the feed's buffer behind.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use mcp_fleet_model::{FieldError, ValidationErrors};
use mcp_fleet_store::EventLog;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::AppState;
use crate::error::ApiError;
use crate::feed::{Frame, Message, PAGE};
use crate::metrics::GaugeGuard;

/// The registry revision an answer reflects (`GET /servers`, `GET /events`).
pub(crate) const REVISION_HEADER: HeaderName = HeaderName::from_static("x-registry-revision");

/// Largest chunk a stream writes at once when events arrive faster than it sends them.
const MAX_CHUNK: usize = 64 * 1024;

/// Parses a revision: a non-negative integer.
pub(crate) fn parse_revision(field: &str, value: &str) -> Result<i64, FieldError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|rev| *rev >= 0)
        .ok_or_else(|| {
            FieldError::new(
                field,
                format!("must be a revision (a non-negative integer), got {value:?}"),
            )
        })
}

/// Where to start: after `Last-Event-ID` (what a reconnecting `EventSource` sends, and so the
/// more recent), else after `since`, else from now.
fn start_after(raw: Option<&str>, headers: &HeaderMap) -> Result<Option<i64>, ValidationErrors> {
    let mut since = None;
    let mut errors = Vec::new();
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "since" if since.is_some() => {
                errors.push(FieldError::new("since", "must be given at most once"));
            }
            "since" => match parse_revision("since", &value) {
                Ok(rev) => since = Some(rev),
                Err(e) => errors.push(e),
            },
            other => errors.push(FieldError::new(
                other,
                "unknown query parameter; expected since",
            )),
        }
    }
    let last_event_id = match headers.get("last-event-id").map(HeaderValue::to_str) {
        None => None,
        Some(Ok(v)) if v.trim().is_empty() => None,
        Some(Ok(v)) => match parse_revision("Last-Event-ID", v) {
            Ok(rev) => Some(rev),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Some(Err(_)) => {
            errors.push(FieldError::new("Last-Event-ID", "must be ASCII digits"));
            None
        }
    };
    if errors.is_empty() {
        Ok(last_event_id.or(since))
    } else {
        Err(ValidationErrors(errors))
    }
}

/// The `410` for a reader whose place in the log is gone.
fn history_gone(after: i64, log: &EventLog) -> ApiError {
    let detail = if after > log.current {
        format!(
            "revision {after} is newer than this registry's ({}): its history was replaced; \
             list GET /servers again and follow from the revision it reports",
            log.current
        )
    } else {
        let oldest = log
            .oldest
            .map_or_else(|| "none".to_string(), |r| r.to_string());
        format!(
            "the changes after revision {after} are no longer kept (oldest kept: {oldest}); \
             list GET /servers again and follow from the revision it reports"
        )
    };
    ApiError::HistoryGone(detail)
}

/// Frames of `events`, in one chunk.
fn chunk(frames: impl IntoIterator<Item = Bytes>) -> Bytes {
    let mut out = BytesMut::new();
    for frame in frames {
        out.extend_from_slice(&frame);
    }
    out.freeze()
}

/// The change feed: `created`, `replaced`, `deleted` and `status` events as they commit.
#[utoipa::path(
    get,
    path = "/events",
    tag = "servers",
    summary = "Follow changes (server-sent events)",
    description = "Every committed change as a server-sent event: `id:` its registry revision, \
                   `event:` `created` or `replaced` (data: the entry), `deleted` (data: `{id}`) \
                   or `status` (data: `{id,from,to,lastError,at}`). Starts after `since`, or \
                   after the `Last-Event-ID` header when present (a reconnecting `EventSource` \
                   sends it), or from now. A client that falls too far behind gets \
                   `event: resync` and is disconnected: list `GET /servers` again and follow \
                   from its `X-Registry-Revision`. Comments (`:`) keep idle streams open.",
    params(
        ("since" = Option<i64>, Query, description = "Start after this revision", minimum = 0),
        ("Last-Event-ID" = Option<i64>, Header, description = "Start after this revision (takes precedence over `since`)"),
    ),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = String,
         headers(("X-Registry-Revision" = i64, description = "The registry's revision when the stream opened"))),
        (status = 400, description = "`since` or `Last-Event-ID` is not a revision, or an unknown query parameter (`validation-failed`)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The changes after that revision are no longer kept (`history-gone`): list again", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, response = crate::error::responses::DatabaseUnavailable),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let after = start_after(raw.as_deref(), &headers)?;
    let feed = state.feed();
    // Subscribe before reading the log: whatever commits after the read is broadcast to us.
    let rx = feed.subscribe();
    let (last, revision, first, live) = match after {
        Some(after) => {
            let log = state.store().events_since(after, PAGE).await?;
            if log.gone {
                return Err(history_gone(after, &log));
            }
            let last = log.events.last().map_or(after, |e| e.revision);
            let live = log.events.len() < PAGE as usize;
            let first = (!log.events.is_empty())
                .then(|| chunk(log.events.iter().map(|e| Frame::of(e).bytes)));
            (last, log.current, first, live)
        }
        None => {
            let now = feed.revision().await?;
            (now, now, None, true)
        }
    };
    let stream = Subscriber {
        _counted: state.metrics().feed_subscriber(),
        state,
        rx,
        last,
        live,
        pending: first,
        done: false,
    };
    let body = futures::stream::unfold(stream, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), s))
    });
    let mut res = Response::new(Body::from_stream(body));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise hold events back to fill their buffers.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(REVISION_HEADER, HeaderValue::from(revision));
    Ok(res)
}

/// One open stream.
struct Subscriber {
    state: AppState,
    rx: broadcast::Receiver<Message>,
    /// The last revision sent (or the one the stream started after).
    last: i64,
    /// Following the broadcast; when false, reading the log until caught up.
    live: bool,
    /// A chunk to send before anything else.
    pending: Option<Bytes>,
    /// Sent its last chunk.
    done: bool,
    _counted: GaugeGuard,
}

impl Subscriber {
    /// The next chunk to send; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(chunk) = self.pending.take() {
            return Some(chunk);
        }
        if self.done {
            return None;
        }
        let feed = self.state.feed().clone();
        loop {
            if !self.live {
                let log = match self.state.store().events_since(self.last, PAGE).await {
                    Ok(log) => log,
                    Err(e) => {
                        // Ending the stream makes the client reconnect with Last-Event-ID.
                        tracing::warn!(error = %e, "change feed stream cannot read the log");
                        return None;
                    }
                };
                if log.gone {
                    return Some(self.resync(log.current));
                }
                self.live = log.events.len() < PAGE as usize;
                if let Some(last) = log.events.last() {
                    self.last = last.revision;
                    return Some(chunk(log.events.iter().map(|e| Frame::of(e).bytes)));
                }
                continue;
            }
            let keep_alive = feed.config().keep_alive;
            let message = tokio::select! {
                biased;
                () = feed.stopping().cancelled() => return None,
                m = self.rx.recv() => m,
                () = tokio::time::sleep(keep_alive) => {
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
            };
            let frame = match message {
                Ok(Message::Event(frame)) => frame,
                Ok(Message::Resync) | Err(RecvError::Lagged(_)) => {
                    let now = feed.revision().await.unwrap_or(self.last);
                    return Some(self.resync(now));
                }
                Err(RecvError::Closed) => return None,
            };
            if frame.revision <= self.last {
                continue; // already sent from the log
            }
            if frame.revision != self.last + 1 {
                self.live = false; // the broadcast is ahead of us: the log has what is between
                continue;
            }
            self.last = frame.revision;
            // Send whatever else is already waiting along with it.
            let mut frames = vec![frame.bytes.clone()];
            let mut size = frame.bytes.len();
            while size < MAX_CHUNK {
                match self.rx.try_recv() {
                    Ok(Message::Event(f)) if f.revision <= self.last => {}
                    Ok(Message::Event(f)) if f.revision == self.last + 1 => {
                        self.last = f.revision;
                        size += f.bytes.len();
                        frames.push(f.bytes.clone());
                    }
                    Ok(Message::Event(_)) => {
                        self.live = false;
                        break;
                    }
                    Ok(Message::Resync) | Err(TryRecvError::Lagged(_)) => {
                        let now = feed.revision().await.unwrap_or(self.last);
                        self.pending = Some(self.resync(now));
                        break;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            return Some(if frames.len() == 1 {
                frames.swap_remove(0)
            } else {
                chunk(frames)
            });
        }
    }

    /// The last event of a stream that cannot go on: its client must list afresh.
    fn resync(&mut self, revision: i64) -> Bytes {
        self.done = true;
        Bytes::from(format!(
            "event: resync\ndata: {{\"revision\":{revision}}}\n\n"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_wins_over_since() {
        let mut headers = HeaderMap::new();
        assert_eq!(start_after(None, &headers), Ok(None));
        assert_eq!(start_after(Some("since=7"), &headers), Ok(Some(7)));
        headers.insert("last-event-id", HeaderValue::from_static("12"));
        assert_eq!(start_after(Some("since=7"), &headers), Ok(Some(12)));
        headers.insert("last-event-id", HeaderValue::from_static(""));
        assert_eq!(start_after(Some("since=7"), &headers), Ok(Some(7)));
    }

    #[test]
    fn bad_starts_name_their_field() {
        let fields = |raw: &str, id: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(id) = id {
                headers.insert("last-event-id", HeaderValue::from_static(id));
            }
            let errors = start_after(Some(raw), &headers).expect_err("must fail");
            errors.0.iter().map(|e| e.field.clone()).collect::<Vec<_>>()
        };
        assert_eq!(fields("since=-1", None), ["since"]);
        assert_eq!(fields("since=abc", None), ["since"]);
        assert_eq!(fields("since=1&since=2", None), ["since"]);
        assert_eq!(fields("tags=a", None), ["tags"]);
        assert_eq!(fields("", Some("x1")), ["Last-Event-ID"]);
    }
}
