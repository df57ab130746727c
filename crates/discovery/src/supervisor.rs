//! One task per server: connect, publish its tools, re-list them on `list_changed`, notice a
//! dead session, mark its tools unavailable and reconnect with exponential backoff and jitter.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcp_fleet_model::Entry;
use rmcp::model::Tool;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::connection::{Opener, Session, list_tools, ping, target};
use crate::direct::Direct;
use crate::discovery::Shared;
use crate::error::DiscoveryError;
use crate::index::{ServerMeta, ServerState, Signals};

pub use mcp_fleet_net::Backoff;

/// Least time between two liveness checks prompted by suspicions.
const SUSPECT_GAP: Duration = Duration::from_secs(1);

/// Why a connected session ended.
enum Ended {
    /// The supervisor was told to stop.
    Stopped,
    /// The session died.
    Lost(DiscoveryError),
}

/// Everything one supervisor needs.
pub(crate) struct Supervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) entry: Entry,
    pub(crate) meta: Arc<ServerMeta>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) stop: CancellationToken,
}

impl Supervisor {
    /// Runs until `stop`; reports the first connection attempt's outcome (the number of tools,
    /// or why it failed) on `first`.
    pub(crate) async fn run(self, first: oneshot::Sender<Result<usize, DiscoveryError>>) {
        let mut first = Some(first);
        let mut attempt: u32 = 0;
        loop {
            let opened = tokio::select! {
                opened = self.open() => opened,
                () = self.stop.cancelled() => return,
            };
            match opened {
                Ok((session, tools)) => {
                    attempt = 0;
                    tracing::debug!(server = %self.meta.id, tools = tools.len(), "connected");
                    let count = tools.len();
                    // Publish before reporting, so `connect` returns with the tools indexed.
                    self.publish(
                        ServerState::Ready,
                        Some((session.peer().clone(), session.direct.clone())),
                        Some(tools),
                    );
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Ok(count));
                    }
                    let ended = self.serve(&session).await;
                    let limit = self.shared.settings.ping_timeout();
                    match ended {
                        Ended::Stopped => {
                            session.close(limit).await;
                            return;
                        }
                        Ended::Lost(e) => {
                            tracing::info!(server = %self.meta.id, error = %e, "session lost; reconnecting");
                            self.publish(self.unavailable(&e), None, None);
                            // The server is gone: closing may take until the limit.
                            tokio::spawn(session.close(limit));
                        }
                    }
                }
                Err(e) => {
                    if attempt == 0 && matches!(e, DiscoveryError::Refused { .. }) {
                        tracing::warn!(server = %self.meta.id, error = %e,
                            "the address policy refuses this server: it is not connected to");
                    }
                    tracing::debug!(server = %self.meta.id, error = %e, attempt, "connect failed");
                    self.publish(self.unavailable(&e), None, None);
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
            let delay = self.shared.settings.backoff.delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    async fn open(&self) -> Result<(Session, Vec<Tool>), DiscoveryError> {
        let tokens =
            self.shared
                .tokens
                .source_for(&self.entry)
                .map_err(|e| DiscoveryError::Auth {
                    server: self.meta.id.clone(),
                    reason: e.to_string(),
                })?;
        let settings = &self.shared.settings;
        let opener = Opener {
            http: &self.shared.http,
            calls: self.shared.calls.as_ref(),
            client_name: &settings.client_name,
            client_version: &settings.client_version,
            timeout: settings.connect_timeout,
            request_timeout: settings.call_timeout,
            policy: &settings.policy,
        };
        opener.open(&self.meta, tokens, self.signals.clone()).await
    }

    /// Serves a connected session until it dies or the supervisor stops.
    async fn serve(&self, session: &Session) -> Ended {
        let settings = &self.shared.settings;
        let target = target(&self.meta);
        // Every call's response stream ends by asking the retry policy, which signals a
        // suspicion: check at most once per `SUSPECT_GAP`, deferring the rest, so a busy
        // session is not pinged after every call.
        let mut last_check = tokio::time::Instant::now();
        let mut deferred: Option<tokio::time::Instant> = None;
        let mut keepalive = settings.keepalive.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let tick = async {
                match keepalive.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let later = async {
                match deferred {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => return Ended::Stopped,
                () = self.signals.tools_changed.notified() => {
                    let listed = tokio::time::timeout(
                        settings.connect_timeout,
                        list_tools(session.peer(), &target),
                    )
                    .await;
                    match listed {
                        Ok(Ok(tools)) => {
                            tracing::debug!(server = %self.meta.id, tools = tools.len(), "tool list changed");
                            self.publish(ServerState::Ready, Some((session.peer().clone(), session.direct.clone())), Some(tools));
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(server = %self.meta.id, error = %e, "re-listing tools failed");
                            if let Err(e) = self.check(session).await {
                                return Ended::Lost(e);
                            }
                        }
                        Err(_) => {
                            if let Err(e) = self.check(session).await {
                                return Ended::Lost(e);
                            }
                        }
                    }
                }
                () = self.signals.suspect.notified() => {
                    let now = tokio::time::Instant::now();
                    if now >= last_check + SUSPECT_GAP {
                        last_check = now;
                        if let Err(e) = self.check(session).await {
                            return Ended::Lost(e);
                        }
                    } else if deferred.is_none() {
                        deferred = Some(last_check + SUSPECT_GAP);
                    }
                }
                () = later => {
                    deferred = None;
                    last_check = tokio::time::Instant::now();
                    if let Err(e) = self.check(session).await {
                        return Ended::Lost(e);
                    }
                }
                () = tick => {
                    last_check = tokio::time::Instant::now();
                    if let Err(e) = self.check(session).await {
                        return Ended::Lost(e);
                    }
                }
            }
        }
    }

    /// Whether the session is alive: a `ping` answered, even with an error, says it is.
    async fn check(&self, session: &Session) -> Result<(), DiscoveryError> {
        let limit = self.shared.settings.ping_timeout();
        match ping(session.peer(), &target(&self.meta), limit).await {
            Ok(()) | Err(DiscoveryError::Rpc { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn unavailable(&self, e: &DiscoveryError) -> ServerState {
        ServerState::Unavailable {
            reason: e.cause(),
            since: SystemTime::now(),
        }
    }

    fn publish(
        &self,
        state: ServerState,
        link: Option<(rmcp::service::Peer<rmcp::RoleClient>, Option<Arc<Direct>>)>,
        tools: Option<Vec<Tool>>,
    ) {
        self.shared
            .publish(&self.stop, &self.meta, &self.signals, state, link, tools);
    }
}
