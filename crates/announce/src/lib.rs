//! Announcing an MCP server to an mcp-fleet registry, in-process: register it, renew its TTL,
//! register it again when the registry forgets it (a `404` to a heartbeat: a registry restarted
//! on a fresh database, an entry removed by hand), and deregister it on shutdown.
//!
//! `mcp-fleet announce` does the same for a server in any language, run as its child.
//!
//! ```no_run
//! # async fn run() -> Result<(), mcp_fleet_announce::AnnounceError> {
//! let entry = serde_json::json!({
//!     "id": "search", "name": "Search", "url": "http://127.0.0.1:8080", "version": "1.0.0",
//! });
//! let announcement = mcp_fleet_announce::Announcer::new("http://127.0.0.1:4000", entry)?
//!     .start()
//!     .await?;
//! // … serve until asked to stop …
//! announcement.shutdown().await?;
//! # Ok(()) }
//! ```

mod error;
mod ready;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use mcp_fleet_model::{AuthType, Registration, ServerId, TTL_SECONDS};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::AnnounceError;

use crate::error::human;
use crate::registry::Registry;

/// The TTL of an entry whose registration names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// What to announce, and where: a registration checked as the registry checks it.
#[derive(Debug, Clone)]
pub struct Announcer {
    registry: Registry,
    body: Value,
    id: ServerId,
    mcp_url: String,
    auth_required: bool,
    ttl: Duration,
}

impl Announcer {
    /// An announcer of `registration` (the body of `POST /servers`) to the registry at
    /// `registry_url`. The entry heartbeats: its `ttlSeconds`, else [`DEFAULT_TTL`].
    pub fn new(registry_url: &str, registration: Value) -> Result<Self, AnnounceError> {
        let parsed =
            Registration::from_json(&registration, None).map_err(AnnounceError::Invalid)?;
        let ttl = parsed
            .ttl_seconds
            .map_or(DEFAULT_TTL, |s| Duration::from_secs(s.into()));
        let announcer = Self {
            registry: Registry::new(registry_url)?,
            body: registration,
            mcp_url: format!("{}/mcp", parsed.url.as_str().trim_end_matches('/')),
            auth_required: parsed.auth.kind != AuthType::None,
            id: parsed.id,
            ttl,
        };
        announcer.with_ttl(ttl)
    }

    /// Sends `Authorization: Bearer <token>` to the registry (an `mcpf_…` token or an OIDC JWT).
    pub fn with_token(mut self, token: &str) -> Self {
        self.registry.set_token(token);
        self
    }

    /// Sets the entry's TTL (`ttlSeconds`): whole seconds, 5 to 86,400. Heartbeats go out every
    /// third of it.
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self, AnnounceError> {
        let secs = ttl.as_secs();
        if ttl.subsec_nanos() != 0 || !TTL_SECONDS.contains(&secs) {
            return Err(AnnounceError::Ttl { given: human(ttl) });
        }
        if let Value::Object(body) = &mut self.body {
            body.insert("ttlSeconds".into(), secs.into());
        }
        self.ttl = ttl;
        Ok(self)
    }

    /// The entry's id.
    pub fn id(&self) -> &str {
        self.id.as_str()
    }

    /// The server's MCP endpoint, `<url>/mcp`.
    pub fn mcp_url(&self) -> &str {
        &self.mcp_url
    }

    /// The registry's base URL.
    pub fn registry_url(&self) -> &str {
        self.registry.url()
    }

    /// The entry's TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often the entry heartbeats: a third of its TTL, so one lost heartbeat does not
    /// expire it.
    pub fn heartbeat_interval(&self) -> Duration {
        self.ttl / 3
    }

    /// Waits until the server's MCP endpoint answers an `initialize` (polling, for at most
    /// `timeout`): a server registered before it listens would be probed `down` at once.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), AnnounceError> {
        ready::wait(
            &self.registry.http,
            &self.mcp_url,
            self.auth_required,
            timeout,
        )
        .await
    }

    /// Registers the entry once (`POST /servers`), without heartbeats.
    pub async fn register(&self) -> Result<(), AnnounceError> {
        self.registry.register(&self.body).await
    }

    /// Registers the entry and keeps it registered until [`Announcement::shutdown`] (or the
    /// announcement is dropped). A registry that cannot be reached now is tried again at every
    /// heartbeat; only a refusal (an invalid entry, missing credentials) is an error here.
    pub async fn start(self) -> Result<Announcement, AnnounceError> {
        let registered = match self.register().await {
            Ok(()) => {
                tracing::info!(id = %self.id, registry = %self.registry.url(), ttl = %human(self.ttl), "registered");
                true
            }
            Err(e) if e.is_refusal() => return Err(e),
            Err(e) => {
                tracing::warn!(
                    id = %self.id,
                    "not registered yet, trying again every {}: {e}",
                    human(self.heartbeat_interval())
                );
                false
            }
        };
        let announcer = Arc::new(self);
        let stop = CancellationToken::new();
        let task = tokio::spawn(keep_registered(
            Arc::clone(&announcer),
            registered,
            stop.clone(),
        ));
        Ok(Announcement {
            announcer,
            stop,
            task: Some(task),
        })
    }
}

/// Heartbeats every third of the TTL; registers again when the registry answers `404` (or
/// while the first registration has not gone through). Ends when `stop` is cancelled.
async fn keep_registered(announcer: Arc<Announcer>, mut registered: bool, stop: CancellationToken) {
    let id = announcer.id.as_str();
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(announcer.heartbeat_interval()) => {}
        }
        let tick = async {
            if registered {
                match announcer.registry.heartbeat(id).await {
                    Ok(true) => return Ok(()),
                    Ok(false) => {
                        tracing::info!(
                            id = %id,
                            "the registry does not know this entry (restarted, or the entry was removed): registering it again"
                        );
                        registered = false;
                    }
                    Err(e) => return Err(e),
                }
            }
            announcer.register().await?;
            registered = true;
            tracing::info!(id = %id, registry = %announcer.registry.url(), "registered");
            Ok(())
        };
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = tick => outcome,
        };
        match outcome {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(id = %id, "the registry answers again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(
                    id = %id,
                    "heartbeat failed, trying again every {}: {e}",
                    human(announcer.heartbeat_interval())
                );
            }
            Err(e) => tracing::debug!(id = %id, "heartbeat failed again: {e}"),
        }
    }
}

/// A registered entry, kept registered by a background task until [`Announcement::shutdown`].
/// Dropping it stops the heartbeats and deregisters in the background, best effort.
#[derive(Debug)]
pub struct Announcement {
    announcer: Arc<Announcer>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Announcement {
    /// The entry's id.
    pub fn id(&self) -> &str {
        self.announcer.id()
    }

    /// Stops the heartbeats and deregisters the entry (`DELETE /servers/{id}`); `false` when
    /// the registry had no such entry.
    pub async fn shutdown(mut self) -> Result<bool, AnnounceError> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let removed = self.announcer.registry.deregister(self.id()).await?;
        tracing::info!(id = %self.id(), "deregistered");
        Ok(removed)
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        self.stop.cancel();
        if self.task.take().is_none() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let announcer = Arc::clone(&self.announcer);
            runtime.spawn(async move {
                if let Err(e) = announcer.registry.deregister(announcer.id()).await {
                    tracing::warn!(id = %announcer.id(), "could not deregister: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry() -> Value {
        json!({"id": "py-echo", "name": "Echo", "url": "http://127.0.0.1:9/", "version": "1.0.0"})
    }

    #[test]
    fn the_ttl_is_the_entrys_or_the_default_and_goes_into_the_body() {
        let a = Announcer::new("http://127.0.0.1:4000", entry()).expect("valid");
        assert_eq!(a.ttl(), DEFAULT_TTL);
        assert_eq!(a.heartbeat_interval(), Duration::from_secs(10));
        assert_eq!(a.body["ttlSeconds"], 30);
        assert_eq!(a.mcp_url(), "http://127.0.0.1:9/mcp");

        let mut body = entry();
        body["ttlSeconds"] = json!(6);
        let a = Announcer::new("http://127.0.0.1:4000", body).expect("valid");
        assert_eq!(a.heartbeat_interval(), Duration::from_secs(2));

        let a = a.with_ttl(Duration::from_secs(90)).expect("in range");
        assert_eq!(a.body["ttlSeconds"], 90);
    }

    #[test]
    fn bad_ttls_and_entries_are_refused_before_anything_is_sent() {
        let a = Announcer::new("http://127.0.0.1:4000", entry()).expect("valid");
        for ttl in [
            Duration::from_secs(4),
            Duration::from_secs(86_401),
            Duration::from_millis(5500),
        ] {
            let e = a.clone().with_ttl(ttl).expect_err("out of range");
            assert!(e.is_refusal(), "{e}");
        }
        let e = Announcer::new("http://127.0.0.1:4000", json!({"id": "Bad Id"})).expect_err("bad");
        assert!(e.to_string().contains("id: "), "{e}");
        let e = Announcer::new("localhost:4000", entry()).expect_err("no scheme");
        assert!(e.to_string().contains("localhost:4000"), "{e}");
    }
}
