//! The change feed's fan-out: one task follows the store's event log and hands each new event,
//! rendered once as a server-sent event, to every `GET /events` stream, and wakes
//! `GET /servers?wait=` long-polls.
//!
//! The task (the tailer) reads the log when a write through this process tells it to, when the
//! database announces a commit by another process (PostgreSQL `LISTEN`, see [`Feed::listen`]:
//! other replicas, a separate `health-worker`), and otherwise every [`FeedConfig::poll`], which
//! is how SQLite's other processes are followed and what catches up after a lost announcement.
//! Revisions are the database's, so they mean the same on every replica. Events go out on a broadcast ring of
//! [`FeedConfig::buffer`] events: sending never waits, so writers never wait for readers, and a
//! stream that falls further behind than the ring is told to resync and closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mcp_fleet_net::Backoff;
use mcp_fleet_store::{Event, Store, StoreError};
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::cache::ReadCache;

/// Most events read from the log at once.
pub(crate) const PAGE: u32 = 500;

/// Longest [`Feed::revision`] waits for the tailer's first read of the store.
const FIRST_READ_WAIT: Duration = Duration::from_secs(5);

/// Settings of the change feed.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// How many events a `GET /events` stream may fall behind the newest before it is sent
    /// `event: resync` and closed (its client then lists afresh and reconnects).
    pub buffer: usize,
    /// How often to look for changes made by other processes sharing the database.
    pub poll: Duration,
    /// How long a stream may stay silent before a keep-alive comment is sent.
    pub keep_alive: Duration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            buffer: 1024,
            poll: Duration::from_millis(250),
            keep_alive: Duration::from_secs(15),
        }
    }
}

/// What the tailer broadcasts.
#[derive(Debug, Clone)]
pub(crate) enum Message {
    /// The next event, rendered.
    Event(Arc<Frame>),
    /// The log can no longer be followed from where the streams are (the database was replaced
    /// or pruned past them): every stream must resync.
    Resync,
}

/// An event rendered as a server-sent event.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) revision: i64,
    pub(crate) bytes: Bytes,
}

impl Frame {
    pub(crate) fn of(event: &Event) -> Self {
        Self {
            revision: event.revision,
            bytes: render(event),
        }
    }
}

/// `id:`, `event:` and `data:` lines and the blank line that ends an event. The data is compact
/// JSON, one line; should it ever hold a line break, each line gets its own `data:` field, which
/// clients join back with line breaks.
pub(crate) fn render(event: &Event) -> Bytes {
    let mut out = String::with_capacity(event.data.len() + 48);
    out.push_str("id: ");
    out.push_str(&event.revision.to_string());
    out.push_str("\nevent: ");
    out.push_str(event.kind.as_str());
    out.push('\n');
    for line in event.data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// The change feed of one registry process.
pub(crate) struct Feed {
    store: Arc<dyn Store>,
    cache: Arc<ReadCache>,
    config: FeedConfig,
    wake: Notify,
    /// The newest revision the tailer has read; `None` until it has read one.
    revision: watch::Sender<Option<i64>>,
    /// Writes through this process so far ([`Self::notify`] calls), and how many of them the
    /// tailer's last successful read began after: while it lags, [`Self::revision`] asks the
    /// store, so that a client always sees its own write's revision.
    notified: AtomicU64,
    caught_up: AtomicU64,
    events: broadcast::Sender<Message>,
    started: AtomicBool,
    stop: CancellationToken,
}

impl Feed {
    pub(crate) fn new(store: Arc<dyn Store>, cache: Arc<ReadCache>, config: FeedConfig) -> Self {
        let (events, _) = broadcast::channel(config.buffer.max(1));
        Self {
            store,
            cache,
            config,
            wake: Notify::new(),
            revision: watch::Sender::new(None),
            notified: AtomicU64::new(0),
            caught_up: AtomicU64::new(0),
            events,
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        }
    }

    pub(crate) fn config(&self) -> &FeedConfig {
        &self.config
    }

    /// Starts the tailer, once; later calls do nothing. Needs a Tokio runtime.
    pub(crate) fn start(self: &Arc<Self>) {
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(self.clone().tail());
            tokio::spawn(self.clone().listen());
        }
    }

    /// Wakes the tailer for every commit the database announces (PostgreSQL; on SQLite this
    /// ends at once and the poll does the work). A lost session wakes it too, so the log is
    /// read after the last revision seen and nothing committed meanwhile is missed.
    async fn listen(self: Arc<Self>) {
        const RETRY: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        let mut attempt = 0;
        loop {
            let commits = tokio::select! {
                () = self.stop.cancelled() => return,
                commits = self.store.listen() => commits,
            };
            let mut commits = match commits {
                Ok(Some(commits)) => commits,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "change feed cannot listen for commits; polling");
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(RETRY.delay(attempt)) => {}
                    }
                    attempt = attempt.saturating_add(1);
                    continue;
                }
            };
            attempt = 0;
            // Whatever committed before the session began is found by this read.
            self.wake.notify_one();
            loop {
                let next = tokio::select! {
                    () = self.stop.cancelled() => return,
                    next = commits.next() => next,
                };
                match next {
                    // This process's own writes have been read already.
                    Ok(Some(rev)) if self.revision.borrow().is_some_and(|r| r >= rev) => {}
                    // The commit is visible now: answers cached before it go at once, without
                    // waiting for the tailer's read.
                    Ok(Some(_)) => {
                        self.cache.invalidate();
                        self.wake.notify_one();
                    }
                    Ok(None) => {
                        tracing::info!("change feed lost its listening session; reconnected");
                        self.wake.notify_one();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed stopped listening; polling");
                        self.wake.notify_one();
                        break;
                    }
                }
            }
        }
    }

    /// Tells the tailer that a write committed: call after each write through this process.
    pub(crate) fn notify(&self) {
        self.notified.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Stops the tailer and ends every stream and long-poll (on shutdown).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Cancelled when the feed stops.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// A window on the events broadcast from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Message> {
        self.events.subscribe()
    }

    /// The registry's revision: as of the tailer's last read, or from the store while the
    /// tailer has yet to read a write made through this process.
    ///
    /// Before the tailer's first read, this waits for it (up to [`FIRST_READ_WAIT`]): the tailer
    /// broadcasts only what commits after that read, so a stream told an older revision would
    /// never hear of a change another process made in between.
    pub(crate) async fn revision(&self) -> Result<i64, StoreError> {
        let lagging = self.lagging();
        let known = *self.revision.borrow();
        match known {
            Some(rev) if !lagging => Ok(rev),
            Some(_) => self.store.current_revision().await,
            None => {
                let mut first = self.revision.subscribe();
                let read = tokio::time::timeout(FIRST_READ_WAIT, async {
                    first
                        .wait_for(Option::is_some)
                        .await
                        .ok()
                        .and_then(|rev| *rev)
                });
                match read.await {
                    Ok(Some(rev)) if !self.lagging() => Ok(rev),
                    _ => self.store.current_revision().await,
                }
            }
        }
    }

    fn lagging(&self) -> bool {
        self.caught_up.load(Ordering::SeqCst) < self.notified.load(Ordering::SeqCst)
    }

    /// Returns once the revision is past `after`, after `timeout`, or when the feed stops,
    /// whichever comes first.
    pub(crate) async fn wait_past(&self, after: i64, timeout: Duration) {
        let mut revision = self.revision.subscribe();
        let past = revision.wait_for(|rev| rev.is_some_and(|rev| rev > after));
        tokio::select! {
            _ = past => {}
            () = self.stop.cancelled() => {}
            () = tokio::time::sleep(timeout) => {}
        }
    }

    async fn tail(self: Arc<Self>) {
        let mut last = loop {
            match self.store.current_revision().await {
                Ok(rev) => break rev,
                Err(e) => {
                    tracing::warn!(error = %e, "change feed cannot read the revision; retrying");
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(self.config.poll.max(Duration::from_secs(1))) => {}
                    }
                }
            }
        };
        self.revision.send_replace(Some(last));
        loop {
            let polled = tokio::select! {
                () = self.stop.cancelled() => break,
                () = self.wake.notified() => false,
                () = tokio::time::sleep(self.config.poll) => true,
            };
            // Every write notified so far has committed: this read covers it.
            let notified = self.notified.load(Ordering::SeqCst);
            if polled {
                // One tiny read per poll; the log only when something changed.
                match self.store.current_revision().await {
                    Ok(rev) if rev == last => {
                        self.caught_up.fetch_max(notified, Ordering::SeqCst);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "change feed cannot poll the revision");
                        continue;
                    }
                }
            }
            match self.read_after(last).await {
                Ok(newest) => {
                    last = newest;
                    self.caught_up.fetch_max(notified, Ordering::SeqCst);
                }
                Err((newest, e)) => {
                    last = newest;
                    tracing::warn!(error = %e, "change feed cannot read the event log");
                }
            }
        }
    }

    /// Broadcasts every event after `last`; returns the newest revision read (also when a read
    /// fails midway, with the error).
    async fn read_after(&self, mut last: i64) -> Result<i64, (i64, StoreError)> {
        loop {
            // With no stream listening, long-polls and cached answers need only the revision:
            // skip reading and rendering the events (a health sweep of a large fleet logs
            // thousands). The revision is read before the count is looked at, so a stream that
            // subscribes after the look reads at least this far from the log itself, and one
            // that subscribed before it is sent the events as usual.
            if self.events.receiver_count() == 0 {
                let current = self.store.current_revision().await.map_err(|e| (last, e))?;
                if self.events.receiver_count() == 0 {
                    if current != last {
                        self.cache.invalidate();
                        self.revision.send_replace(Some(current));
                    }
                    return Ok(current);
                }
            }
            let log = match self.store.events_since(last, PAGE).await {
                Ok(log) => log,
                Err(e) => return Err((last, e)),
            };
            if log.gone {
                tracing::warn!(
                    after = last,
                    current = log.current,
                    oldest = log.oldest,
                    "change feed lost its place in the event log (database replaced or pruned \
                     past it): every stream resyncs"
                );
                self.cache.invalidate();
                let _ = self.events.send(Message::Resync);
                let newest = log.events.last().map_or(log.current, |e| e.revision);
                self.revision.send_replace(Some(newest));
                return Ok(newest);
            }
            let Some(newest) = log.events.last().map(|e| e.revision) else {
                return Ok(last);
            };
            // Changes made elsewhere are in no cached answer either; answers must not be older
            // than the revision long-polls are woken with.
            self.cache.invalidate();
            for event in &log.events {
                // No receivers is fine: nobody is listening.
                let _ = self.events.send(Message::Event(Arc::new(Frame::of(event))));
            }
            last = newest;
            self.revision.send_replace(Some(last));
            if log.events.len() < PAGE as usize {
                return Ok(last);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use mcp_fleet_store::EventKind;

    use super::*;

    #[test]
    fn events_render_as_server_sent_events() {
        let event = |data: &str| Event {
            revision: 42,
            kind: EventKind::Status,
            server_id: "a".parse().expect("id"),
            at: chrono::Utc::now(),
            data: data.into(),
        };
        assert_eq!(
            render(&event(r#"{"id":"a"}"#)),
            "id: 42\nevent: status\ndata: {\"id\":\"a\"}\n\n"
        );
        assert_eq!(
            render(&event("{\r\n\"id\": \"a\"\n}")),
            "id: 42\nevent: status\ndata: {\ndata: \"id\": \"a\"\ndata: }\n\n"
        );
    }
}
