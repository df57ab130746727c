//! One task per server: connect, publish its tools, re-list them on `list_changed` (on
//! 2026-07-28 heard over `subscriptions/listen` where the server offers it) and when a listing
//! used past its `ttlMs`, notice a dead session, mark its tools unavailable and reconnect with
//! exponential backoff and jitter.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use mcp_fleet_model::Entry;
use rmcp::model::{ServerNotification, Tool};
use rmcp::service::Subscription;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::connection::{Era, Listing, Opener, Session, list_tools, ping, target};
use crate::direct::Direct;
use crate::discovery::Shared;
use crate::error::DiscoveryError;
use crate::index::{ServerMeta, ServerState, Signals};

pub use mcp_fleet_net::Backoff;

/// Least time between two liveness checks prompted by suspicions.
const SUSPECT_GAP: Duration = Duration::from_secs(1);

/// Least time a 2026-07-28 listing counts as fresh, whatever its `ttlMs` (rmcp's servers say
/// `0`): a busy host would otherwise re-list on every call.
const LEAST_FRESH: Duration = Duration::from_millis(250);

/// How long a listing with `ttl` (see [`Listing`]) is reused before it is read again, `None`
/// for until the server says it changed: so a session-based listing, and a `ttlMs` of `0` while
/// a `subscriptions/listen` stream tells of changes.
fn freshness(ttl: Option<Duration>, subscribed: bool) -> Option<Duration> {
    match ttl {
        None => None,
        Some(ttl) if ttl.is_zero() && subscribed => None,
        Some(ttl) => Some(ttl.max(LEAST_FRESH)),
    }
}

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
    /// Indexed from the registry's catalog: connect only once a call wakes it.
    pub(crate) idle: bool,
}

impl Supervisor {
    /// Runs until `stop`; reports the first connection attempt's outcome (the number of tools,
    /// or why it failed) on `first`, when given. An idle one first waits for a call to wake it.
    pub(crate) async fn run(self, first: Option<oneshot::Sender<Result<usize, DiscoveryError>>>) {
        let mut first = first;
        if self.idle {
            tokio::select! {
                () = self.signals.wake.notified() => {
                    tracing::debug!(server = %self.meta.id, "first call; connecting");
                }
                () = self.stop.cancelled() => return,
            }
        }
        let mut attempt: u32 = 0;
        let mut era = Era::Unknown;
        loop {
            let opened = tokio::select! {
                opened = self.open(era) => opened,
                () = self.stop.cancelled() => return,
            };
            match opened {
                Ok((
                    session,
                    Listing {
                        tools,
                        ttl,
                        private,
                    },
                    subscription,
                )) => {
                    attempt = 0;
                    era = session.era;
                    self.signals.listed(freshness(ttl, subscription.is_some()));
                    self.signals
                        .private_listing
                        .store(private, Ordering::Relaxed);
                    tracing::debug!(server = %self.meta.id, tools = tools.len(), "connected");
                    let count = tools.len();
                    // Publish before reporting, so `connect` returns with the tools indexed.
                    self.publish(
                        ServerState::Ready,
                        Some((session.peer().clone(), session.direct.clone())),
                        Some(tools.clone()),
                    );
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Ok(count));
                    }
                    let ended = self.serve(&session, tools, subscription).await;
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
                    // Probe again next time: the server may have been replaced.
                    era = Era::Unknown;
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

    async fn open(
        &self,
        era: Era,
    ) -> Result<(Session, Listing, Option<Subscription>), DiscoveryError> {
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
        opener
            .open(&self.meta, tokens, self.signals.clone(), era)
            .await
    }

    /// Serves a connected session, whose tools were last listed as `listed`, with its
    /// `subscriptions/listen` stream if it has one, until it dies or the supervisor stops.
    async fn serve(
        &self,
        session: &Session,
        mut listed: Vec<Tool>,
        mut subscription: Option<Subscription>,
    ) -> Ended {
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
            let heard = async {
                match subscription.as_mut() {
                    Some(sub) => sub.next().await,
                    None => std::future::pending().await,
                }
            };
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
                heard = heard => {
                    match heard {
                        Ok(Some(ServerNotification::ToolListChangedNotification(_))) => {
                            self.signals.tools_changed.notify_one();
                        }
                        Ok(Some(_)) => {}
                        // The server ended it, or it broke: the old way from here (re-listing
                        // when a listing is used stale), and a liveness check.
                        Ok(None) | Err(_) => {
                            tracing::debug!(server = %self.meta.id, "subscriptions/listen ended");
                            subscription = None;
                            self.signals.listed(freshness(Some(Duration::ZERO), false));
                            self.signals.suspect.notify_one();
                        }
                    }
                }
                () = self.signals.tools_changed.notified() => {
                    let relisted = tokio::time::timeout(
                        settings.connect_timeout,
                        list_tools(session.peer(), session.is_modern(), &target),
                    )
                    .await;
                    match relisted {
                        Ok(Ok(Listing { tools, ttl, private })) => {
                            self.signals.listed(freshness(ttl, subscription.is_some()));
                            self.signals.private_listing.store(private, Ordering::Relaxed);
                            // A listing that only got old changes nothing: no new index.
                            if tools != listed {
                                tracing::debug!(server = %self.meta.id, tools = tools.len(), "tool list changed");
                                self.report_tool_change();
                                listed.clone_from(&tools);
                                self.publish(ServerState::Ready, Some((session.peer().clone(), session.direct.clone())), Some(tools));
                            }
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

    /// Tells the registry the server's tools changed, so that its catalog follows: in the
    /// background, once, never failing the session.
    fn report_tool_change(&self) {
        if !self.shared.settings.report_tool_changes {
            return;
        }
        let registry = self.shared.registry.clone();
        let id = self.meta.id.clone();
        tokio::spawn(async move {
            match registry.refresh_tools(&id).await {
                Ok(_) => tracing::debug!(server = %id, "registry listed the server again"),
                Err(error) => {
                    tracing::debug!(server = %id, %error, "registry did not list the server again");
                }
            }
        });
    }

    /// Whether the session is alive: a `ping` (`server/discover` on 2026-07-28) answered, even
    /// with an error, says it is.
    async fn check(&self, session: &Session) -> Result<(), DiscoveryError> {
        let settings = &self.shared.settings;
        let limit = settings.ping_timeout();
        let checked = ping(
            session,
            &settings.client_name,
            &settings.client_version,
            &target(&self.meta),
            limit,
        )
        .await;
        match checked {
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
