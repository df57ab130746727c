//! The registry's change feed (`GET /events`) read as a sequence of [`Change`]s. A dropped
//! stream is reopened after the last revision read (`Last-Event-ID`), so across reconnects no
//! change is missed and none is repeated.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::registry_client::{ClientError, RegistryClient, root_cause};
use crate::sse::{self, Bounded, Events, ReadError};

/// How long a stream may stay silent: the registry writes a keep-alive comment every 15 s.
const IDLE_LIMIT: Duration = Duration::from_secs(45);

/// Largest event read (an entry, at most the registry's largest request body, as JSON).
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// One committed change of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Its registry revision (the event's `id`).
    pub revision: i64,
    /// `created`, `replaced`, `deleted`, `status` or `routing`.
    pub kind: String,
    /// The event's data: the entry (`created`, `replaced`), `{id}` (`deleted`),
    /// `{id, from, to, lastError, at}` (`status`), the routing document (`routing`).
    pub data: Value,
}

impl Change {
    /// The server id, or for `routing` the service, the change is about.
    pub fn subject(&self) -> Option<&str> {
        self.data
            .get("id")
            .or_else(|| self.data.get("service"))
            .and_then(Value::as_str)
    }
}

/// A follower of the change feed, reconnecting where it left off.
///
/// [`ChangeFeed::next`] returns the next change, opening the stream when it is not open. An
/// error closes the stream; the next call reopens it after the last revision returned, so the
/// caller decides how long to wait in between. A `410` problem (`history-gone`) means the
/// changes after that revision are no longer kept: [`ChangeFeed::from_now`] starts over.
pub struct ChangeFeed {
    client: RegistryClient,
    after: Option<i64>,
    stream: Option<Events<reqwest::Body>>,
}

impl std::fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("registry", &self.client.base_url())
            .field("after", &self.after)
            .field("open", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// Follows `client`'s registry from the changes after revision `since`, or from now.
    pub fn new(client: RegistryClient, since: Option<i64>) -> Self {
        Self {
            client,
            after: since,
            stream: None,
        }
    }

    /// The revision it follows after: the last change returned, or where it started.
    pub fn revision(&self) -> Option<i64> {
        self.after
    }

    /// Forgets its place: the next stream starts from now.
    pub fn from_now(&mut self) {
        self.after = None;
        self.close();
    }

    /// Opens the stream unless it is open; the revision it follows after.
    pub async fn connect(&mut self) -> Result<Option<i64>, ClientError> {
        if self.stream.is_none() {
            let res = self.client.open_events(self.after).await?;
            // From now: the registry's revision when the stream opened is where a reconnect
            // resumes, so changes made while it is down are not lost either.
            if self.after.is_none() {
                self.after = res
                    .headers()
                    .get("x-registry-revision")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok());
            }
            let body = Bounded::new(reqwest::Body::from(res), MAX_EVENT_BYTES);
            self.stream = Some(sse::events(body.idle_limit(IDLE_LIMIT)));
        }
        Ok(self.after)
    }

    /// The next change, waiting for it.
    pub async fn next(&mut self) -> Result<Change, ClientError> {
        let result = self.read().await;
        if result.is_err() {
            self.close();
        }
        result
    }

    async fn read(&mut self) -> Result<Change, ClientError> {
        self.connect().await?;
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Err(self.ended("the stream is closed"));
            };
            let event = match stream.next().await.map(|e| e.map_err(ReadError::from)) {
                Some(Ok(event)) => event,
                None => return Err(self.ended("the registry ended the stream")),
                Some(Err(ReadError::Body(e))) => return Err(self.ended(&root_cause(&*e))),
                Some(Err(e @ ReadError::Idle(_))) => return Err(self.ended(&e.to_string())),
                Some(Err(e)) => return Err(ClientError::Decode(e.to_string())),
            };
            if event.event.as_deref() == Some("resync") {
                return Err(self.ended("the registry closed the stream: too far behind"));
            }
            let (Some(id), Some(data)) = (event.id, event.data) else {
                continue;
            };
            let revision = id
                .trim()
                .parse::<i64>()
                .map_err(|_| ClientError::Decode(format!("event id {id:?} is not a revision")))?;
            let data = serde_json::from_str(&data)
                .map_err(|e| ClientError::Decode(format!("event {revision}: {e}")))?;
            self.after = Some(revision);
            return Ok(Change {
                revision,
                kind: event.event.unwrap_or_else(|| "message".into()),
                data,
            });
        }
    }

    fn ended(&self, reason: &str) -> ClientError {
        ClientError::Unreachable {
            url: self.client.base_url().to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn close(&mut self) {
        self.stream = None;
    }
}
