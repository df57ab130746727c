//! The gateway's shared state and its work: keeping the catalog current (and telling clients),
//! reading routing policies, forwarding calls, and judging canaries.
//!
//! Over 500 lines: the gateway's state and the tasks that keep it current share private fields; its tests are in tests/.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mcp_fleet_discovery::{
    AddressPolicy, CallToolResult, Discovery, DiscoveryError, RegistryClient, Tool, clip,
};
use mcp_fleet_model::Version;
use rmcp::service::Peer;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::GatewayError;
use crate::canary::{Canaries, Outcome};
use crate::catalog::{Catalog, Instance};
use crate::config::{FailureMode, GatewayConfig};
use crate::fast_call::{Sessions, Sticky};
use crate::metrics::{CallLabels, Metrics, UpstreamLabels, VersionLabels};
use crate::outlier::Outliers;
use crate::pins::{PinRead, Pins};
use crate::routing::{Policy, choose};
use crate::session_id::{Claims, MAX_PINS, Sealer, SessionKey};
use crate::session_store::SessionIds;
use crate::upstream::{alert, policy, record_rollback};

/// A rollback made by this gateway that the registry may not show yet.
#[derive(Debug, Clone)]
struct LocalRollback {
    version: Version,
    at: DateTime<Utc>,
}

/// Everything the gateway's sessions share.
pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    /// The upstreams: until the registry has answered, a discovery that knows no server (see
    /// `Gateway::start`); then the fleet's, made with the registry's address policy.
    discovery: RwLock<Discovery>,
    /// Whether the fleet's discovery is in place (the registry has answered once).
    attached: AtomicBool,
    catalog: RwLock<Arc<Catalog>>,
    pub(crate) policies: RwLock<HashMap<String, Arc<Policy>>>,
    local_rollbacks: Mutex<HashMap<String, LocalRollback>>,
    /// This replica's calls per service and version over the rollback window.
    pub(crate) canaries: Canaries,
    outliers: Mutex<Outliers>,
    pub(crate) metrics: Metrics,
    /// The tool hashes the registry trusts (`--pin-tool-hashes`).
    pub(crate) pins: Pins,
    peers: Mutex<Vec<Peer<RoleServer>>>,
    /// Open client sessions, for calls answered in front of rmcp (`fast_call`).
    pub(crate) sessions: Sessions,
    /// Seals and opens session ids (`session_store`).
    pub(crate) session_ids: SessionIds,
    turn: AtomicUsize,
    /// The registry, for routing policies, rollbacks and canary reports.
    pub(crate) registry: RegistryClient,
    /// Alert webhooks' client, under the same address policy as `discovery`.
    http: RwLock<reqwest::Client>,
    pub(crate) shutdown: CancellationToken,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("registry", &self.config.registry_url)
            .finish_non_exhaustive()
    }
}

/// What one attempt of a call came to.
enum Tried {
    /// The upstream answered with a result (which may be `isError`).
    Answered(CallToolResult),
    /// The caller's mistake (arguments that are not an object): no upstream's failure.
    Refused(DiscoveryError),
    /// The upstream failed.
    Failed(DiscoveryError),
    /// No answer within the call timeout.
    TimedOut,
}

/// A failed attempt's outcome in metrics: `unreachable` when nothing was sent.
fn failure_label(e: &DiscoveryError) -> &'static str {
    if e.not_sent() {
        "unreachable"
    } else {
        Outcome::Error.as_str()
    }
}

/// The alert webhooks' client: it obeys the address policy too (webhook names are checked as
/// they resolve).
fn alert_client(policy: &AddressPolicy) -> Result<reqwest::Client, GatewayError> {
    Ok(
        mcp_fleet_discovery::guard::client_builder(Arc::new(policy.clone()))
            .timeout(Duration::from_secs(10))
            .build()?,
    )
}

/// Why a call through the gateway failed: the caller's mistake or the upstream's.
fn mcp_error(e: &DiscoveryError, upstream: &str) -> ErrorData {
    match e {
        DiscoveryError::InvalidArguments { .. } => ErrorData::invalid_params(e.to_string(), None),
        _ => ErrorData::internal_error(
            format!("upstream {upstream}: {e}"),
            Some(json!({"upstream": upstream})),
        ),
    }
}

impl Inner {
    /// A gateway that knows no upstream yet: [`Inner::attach`] gives it the fleet.
    pub(crate) fn new(
        config: GatewayConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, GatewayError> {
        let mut registry = RegistryClient::new(&config.registry_url)?;
        if let Some(token) = &config.registry_token {
            registry = registry.with_token(token.clone());
        }
        // Never connected: it stands in for the fleet's until the registry's policy is known.
        let idle = Discovery::builder(config.registry_url.clone()).build()?;
        let http = alert_client(&config.address_policy)?;
        let key = config.session_key.clone().unwrap_or_else(|| {
            tracing::info!(
                "no --session-key: session ids are sealed with a random key of this process, so \
                 sessions will not survive a change of replica or a restart"
            );
            SessionKey::random()
        });
        let session_ids = SessionIds::new(Sealer::new(&key, config.session_ttl));
        Ok(Self {
            outliers: Mutex::new(Outliers::new(config.outlier)),
            config,
            discovery: RwLock::new(idle),
            attached: AtomicBool::new(false),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            policies: RwLock::new(HashMap::new()),
            local_rollbacks: Mutex::new(HashMap::new()),
            canaries: Canaries::default(),
            metrics: Metrics::new(),
            pins: Pins::default(),
            peers: Mutex::new(Vec::new()),
            sessions: Sessions::default(),
            session_ids,
            turn: AtomicUsize::new(0),
            registry,
            http: RwLock::new(http),
            shutdown,
        })
    }

    /// Puts the fleet's `discovery` (connected) in place, with the alert client made under the
    /// same address `policy`.
    pub(crate) fn attach(
        &self,
        discovery: Discovery,
        policy: &AddressPolicy,
    ) -> Result<(), GatewayError> {
        let http = alert_client(policy)?;
        *self.http.write().unwrap_or_else(|e| e.into_inner()) = http;
        *self.discovery.write().unwrap_or_else(|e| e.into_inner()) = discovery;
        self.attached.store(true, Ordering::Release);
        Ok(())
    }

    /// The upstreams' discovery (cheap to clone).
    pub(crate) fn discovery(&self) -> Discovery {
        self.discovery
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `tools/list`'s answer.
    pub(crate) fn list_tools(&self) -> Result<Arc<Vec<Tool>>, ErrorData> {
        if self.config.failure_mode == FailureMode::FailClosed {
            if !self.attached.load(Ordering::Acquire) {
                return Err(ErrorData::internal_error(
                    "the registry has not answered yet (the gateway runs fail-closed)",
                    None,
                ));
            }
            // The servers' states as they are now, not as at the catalog's last rebuild: a
            // state can change with no change of tools (a new upstream failing its first
            // connect), and only tool changes rebuild the catalog.
            let mut unavailable: Vec<String> = self
                .discovery()
                .servers()
                .into_iter()
                .filter(|s| !s.state.is_usable())
                .map(|s| s.id)
                .collect();
            if !unavailable.is_empty() {
                unavailable.sort();
                return Err(ErrorData::internal_error(
                    format!(
                        "upstreams unavailable: {} (the gateway runs fail-closed)",
                        unavailable.join(", ")
                    ),
                    None,
                ));
            }
        }
        Ok(self.catalog().tools.clone())
    }

    /// The `ttlMs` of listings for sessionless clients.
    pub(crate) fn list_ttl_ms(&self) -> u64 {
        u64::try_from(self.config.list_ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Rebuilds the catalog from the discovery index (without the tools whose pins differ,
    /// under `--pin-tool-hashes`); `true` when the tool list changed.
    pub(crate) fn rebuild(&self) -> bool {
        let discovery = self.discovery();
        let mut tools = discovery.tools();
        let withheld = if self.config.pin_tool_hashes {
            let withheld = self.pins.withhold(&mut tools);
            self.metrics
                .tools_withheld
                .set(i64::try_from(withheld.len()).unwrap_or(i64::MAX));
            withheld
        } else {
            Vec::new()
        };
        let mut next = Catalog::build(&discovery.servers(), &tools, self.config.tool_names);
        next.withhold(withheld);
        let mut slot = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let changed = slot.tools != next.tools;
        let ids: HashSet<String> = next
            .services
            .values()
            .flatten()
            .map(|i| i.id.clone())
            .collect();
        *slot = Arc::new(next);
        drop(slot);
        self.outliers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id| ids.contains(id));
        changed
    }

    /// The versions a new session is pinned to, for the services with a routing policy (at
    /// most [`MAX_PINS`]), drawn from `seed` as its first call would draw them.
    pub(crate) fn pins_for_new_session(
        &self,
        seed: u64,
    ) -> std::collections::BTreeMap<String, String> {
        let catalog = self.catalog();
        let policies = self
            .policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let now = Instant::now();
        let outliers = self.outliers.lock().unwrap_or_else(|e| e.into_inner());
        let mut pins = std::collections::BTreeMap::new();
        for (service, policy) in &policies {
            if pins.len() >= MAX_PINS {
                break;
            }
            let Some(instances) = catalog.services.get(service) else {
                continue;
            };
            let candidates: Vec<(&Instance, ())> = instances
                .iter()
                .filter(|i| i.available)
                .map(|i| (i, ()))
                .collect();
            let mut version = None;
            choose(
                &candidates,
                Some(policy),
                &mut version,
                |id| outliers.is_ejected(id, now),
                0,
                Claims::roll(seed, service),
            );
            if let Some(version) = version {
                pins.insert(service.clone(), version.to_string());
            }
        }
        pins
    }

    /// A new session's peer, to tell of catalog changes.
    pub(crate) fn add_peer(&self, peer: Peer<RoleServer>) {
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(peer);
    }

    /// Sends `notifications/tools/list_changed` to every open session.
    pub(crate) async fn announce(&self) {
        self.metrics.list_changed.inc();
        let peers: Vec<Peer<RoleServer>> = {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        let sends = peers.iter().map(|p| async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), p.notify_tool_list_changed()).await;
        });
        futures::future::join_all(sends).await;
    }

    /// Follows the discovery index: rebuilds after each burst of changes (once `debounce` has
    /// passed without another, or after ten times that at most) and tells clients when the
    /// tools changed.
    pub(crate) async fn follow_index(self: Arc<Self>) {
        let mut updates = self.discovery().subscribe();
        let quiet = self.config.debounce;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                next = updates.next() => if next.is_none() { return },
            }
            let burst_end = tokio::time::Instant::now() + quiet * 10;
            loop {
                let wait =
                    quiet.min(burst_end.saturating_duration_since(tokio::time::Instant::now()));
                match tokio::time::timeout(wait, updates.next()).await {
                    Ok(Some(_)) if tokio::time::Instant::now() < burst_end => {}
                    Ok(None) => return,
                    _ => break,
                }
            }
            // A new service's pins are read before its tools are offered.
            self.refresh_pins(PinRead::New).await;
            let changed = self.rebuild();
            self.refresh_policies().await;
            if changed {
                self.announce().await;
            }
        }
    }

    /// Reads every service's routing policy (and tool pins) again, every `policy_refresh`.
    pub(crate) async fn follow_policies(self: Arc<Self>) {
        loop {
            self.refresh_policies().await;
            self.apply_pins(PinRead::All).await;
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.policy_refresh) => {}
            }
        }
    }

    pub(crate) async fn refresh_policies(&self) {
        let services: Vec<String> = self.catalog().services.keys().cloned().collect();
        let reads = services
            .iter()
            .map(|s| async move { (s, policy(&self.registry, s).await) });
        let results = futures::future::join_all(reads).await;
        let mut policies = self.policies.write().unwrap_or_else(|e| e.into_inner());
        let mut locals = self
            .local_rollbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        policies.retain(|s, _| services.contains(s));
        for (service, result) in results {
            match result {
                Ok(Some(mut policy)) => {
                    // Keep a rollback of ours until the registry shows it, unless the policy
                    // was set again since (an operator's deliberate choice).
                    if let Some(local) = locals.get(service) {
                        let caught_up = policy.weight(&local.version) == 0;
                        let reset = policy.updated_at.is_some_and(|t| t > local.at);
                        if caught_up || reset {
                            locals.remove(service);
                        } else {
                            policy = policy.without(&local.version);
                        }
                    }
                    policies.insert(service.clone(), Arc::new(policy));
                }
                Ok(None) => {
                    policies.remove(service);
                    locals.remove(service);
                }
                // Keep the last known policy while the registry cannot be read.
                Err(e) => tracing::debug!(%service, error = %e, "cannot read the routing policy"),
            }
        }
    }

    pub(crate) fn policy(&self, service: &str) -> Option<Arc<Policy>> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
            .cloned()
    }

    /// Forwards a call of gateway tool `name`; `sticky` is the session's version per service.
    ///
    /// A call whose instance could not be reached (nothing was sent) goes once more to another
    /// instance of the same version, as does a call of an idempotent tool whose connection
    /// broke after it was sent; both attempts share the call timeout. Each attempt counts for
    /// its instance (metrics, outlier ejection), the call's end for its version's canary window.
    pub(crate) async fn call(
        &self,
        sticky: &Sticky,
        name: &str,
        arguments: Value,
    ) -> Result<CallToolResult, ErrorData> {
        let catalog = self.catalog();
        let Some(offered) = catalog.by_name.get(name) else {
            if let Some(withheld) = catalog.withheld.get(name) {
                return Err(withheld.error(name));
            }
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}; tools/list lists the tools this gateway offers",
                    clip(name)
                ),
                None,
            ));
        };
        let service = offered.service.as_str();
        let candidates = catalog.instances_offering(service, &offered.tool);
        let policy = self.policy(service);
        let now = Instant::now();
        let chosen = {
            let outliers = self.outliers.lock().unwrap_or_else(|e| e.into_inner());
            let mut sessions = sticky.pins.lock().unwrap_or_else(|e| e.into_inner());
            let mut version = sessions.get(service).cloned();
            let chosen = choose(
                &candidates,
                policy.as_deref(),
                &mut version,
                |id| outliers.is_ejected(id, now),
                self.turn.fetch_add(1, Ordering::Relaxed),
                sticky.roll(service),
            );
            if let Some(v) = version {
                sessions.insert(service.to_owned(), v);
            }
            chosen
        };
        let Some((mut instance, upstream_name)) = chosen else {
            return Err(ErrorData::internal_error(
                format!(
                    "no instance of service {:?} offering {:?} is available",
                    clip(service),
                    clip(&offered.tool)
                ),
                Some(json!({"service": clip(service)})),
            ));
        };
        let version = instance.version.clone();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.call_timeout;
        let mut tried = self.attempt(upstream_name, &arguments, deadline).await;
        if let Tried::Failed(e) = &tried
            && (e.not_sent()
                || (offered.idempotent && matches!(e, DiscoveryError::Transport { .. })))
            && let Some((next, next_name)) = self.spare(&candidates, instance)
        {
            tracing::debug!(%service, upstream = %instance.id, to = %next.id, error = %e,
                "call failed; sending it to another instance");
            self.count(
                &catalog,
                service,
                &instance.id,
                version.as_ref(),
                failure_label(e),
                true,
            );
            instance = next;
            tried = self.attempt(next_name, &arguments, deadline).await;
        }
        let latency = started.elapsed();
        let (outcome, label, answer) = match tried {
            Tried::Answered(r) if r.is_error == Some(true) => {
                (Outcome::ToolError, Outcome::ToolError.as_str(), Ok(r))
            }
            Tried::Answered(r) => (Outcome::Ok, Outcome::Ok.as_str(), Ok(r)),
            Tried::Refused(e) => return Err(mcp_error(&e, &instance.id)),
            Tried::Failed(e) => (
                Outcome::Error,
                failure_label(&e),
                Err(mcp_error(&e, &instance.id)),
            ),
            Tried::TimedOut => (
                Outcome::Error,
                Outcome::Error.as_str(),
                Err(ErrorData::internal_error(
                    format!(
                        "upstream {}: no answer within {:?} (the gateway's call timeout)",
                        instance.id, self.config.call_timeout
                    ),
                    Some(json!({"upstream": instance.id})),
                )),
            ),
        };
        self.count(
            &catalog,
            service,
            &instance.id,
            version.as_ref(),
            label,
            outcome == Outcome::Error,
        );
        self.record(service, version.as_ref(), outcome, latency);
        answer
    }

    /// One call of `upstream_name` (the discovery library's name of the tool on an instance).
    async fn attempt(
        &self,
        upstream_name: &str,
        arguments: &Value,
        deadline: tokio::time::Instant,
    ) -> Tried {
        let discovery = self.discovery();
        let called = tokio::time::timeout_at(
            deadline,
            discovery.call_instance_tool_ref(upstream_name, arguments),
        )
        .await;
        match called {
            Ok(Ok(result)) => Tried::Answered(result),
            Ok(Err(e)) if !e.is_upstream() => Tried::Refused(e),
            Ok(Err(e)) => Tried::Failed(e),
            Err(_) => Tried::TimedOut,
        }
    }

    /// Where a call that failed on `failed` may go instead: another candidate of its version
    /// that is not ejected, taking turns (without moving the turn, so calls keep alternating).
    fn spare<'a>(
        &self,
        candidates: &[(&'a Instance, &'a str)],
        failed: &Instance,
    ) -> Option<(&'a Instance, &'a str)> {
        let now = Instant::now();
        let outliers = self.outliers.lock().unwrap_or_else(|e| e.into_inner());
        let spares: Vec<(&Instance, &str)> = candidates
            .iter()
            .copied()
            .filter(|(i, _)| {
                i.id != failed.id && i.version == failed.version && !outliers.is_ejected(&i.id, now)
            })
            .collect();
        drop(outliers);
        if spares.is_empty() {
            return None;
        }
        Some(spares[self.turn.load(Ordering::Relaxed) % spares.len()])
    }

    /// Counts one attempt on `instance` (`label` is its outcome in metrics) and feeds outlier
    /// ejection.
    fn count(
        &self,
        catalog: &Catalog,
        service: &str,
        instance: &str,
        version: Option<&Version>,
        label: &'static str,
        failed: bool,
    ) {
        self.metrics
            .calls
            .get_or_create(&CallLabels {
                service: service.to_owned(),
                version: version.map_or_else(|| "unknown".to_owned(), Version::to_string),
                upstream: instance.to_owned(),
                outcome: label,
            })
            .inc();
        let siblings: Vec<&str> = catalog
            .services
            .get(service)
            .map(|is| is.iter().map(|i| i.id.as_str()).collect())
            .unwrap_or_default();
        let ejected = self
            .outliers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(instance, &siblings, failed, Instant::now());
        if let Some(length) = ejected {
            tracing::warn!(%service, upstream = %instance, ?length, "ejected after consecutive errors");
            self.metrics
                .ejections
                .get_or_create(&UpstreamLabels {
                    service: service.to_owned(),
                    upstream: instance.to_owned(),
                })
                .inc();
        }
    }

    /// Records how a call ended: its latency, and its outcome in its version's canary window.
    fn record(
        &self,
        service: &str,
        version: Option<&Version>,
        outcome: Outcome,
        latency: Duration,
    ) {
        self.metrics
            .durations
            .get_or_create(&VersionLabels {
                service: service.to_owned(),
                version: version.map_or_else(|| "unknown".to_owned(), Version::to_string),
            })
            .observe(latency.as_secs_f64());

        let (Some(version), Some(policy)) = (version, self.policy(service)) else {
            return;
        };
        let Some(rule) = policy.rollback else {
            return;
        };
        // With reports, the canaries are judged on every replica's counts (`report.rs`).
        let judge_here = self.config.canary_report_interval.is_none();
        let verdict = self.canaries.record(
            service, version, &policy, &rule, outcome, latency, judge_here,
        );
        if let Some(verdict) = verdict {
            self.roll_back(service, &policy, verdict.canary, verdict.reason);
        }
    }

    /// Takes `canary` out of `service`'s routing here at once, then records it in the registry
    /// and alerts.
    pub(crate) fn roll_back(
        &self,
        service: &str,
        policy: &Policy,
        canary: Version,
        reason: String,
    ) {
        {
            let mut policies = self.policies.write().unwrap_or_else(|e| e.into_inner());
            // Another call may have rolled it back first.
            match policies.get(service) {
                Some(current) if current.weight(&canary) > 0 => {}
                _ => return,
            }
            policies.insert(service.to_owned(), Arc::new(policy.without(&canary)));
        }
        let at = Utc::now();
        self.local_rollbacks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                service.to_owned(),
                LocalRollback {
                    version: canary.clone(),
                    at,
                },
            );
        self.canaries.forget(service, &canary);
        self.announce_rollback(service, &canary, &reason, &policy.without(&canary), at);
        let registry = self.registry.clone();
        let service = service.to_owned();
        tokio::spawn(async move { record_rollback(&registry, &service, &canary, &reason).await });
    }

    /// Logs, counts and alerts a rollback of `canary` decided here, `after` which the policy is.
    pub(crate) fn announce_rollback(
        &self,
        service: &str,
        canary: &Version,
        reason: &str,
        after: &Policy,
        at: DateTime<Utc>,
    ) {
        tracing::warn!(%service, version = %canary, %reason, "canary rolled back");
        self.metrics
            .rollbacks
            .get_or_create(&VersionLabels {
                service: service.to_owned(),
                version: canary.to_string(),
            })
            .inc();
        let event = json!({
            "event": "rollback",
            "service": service,
            "version": canary.to_string(),
            "reason": reason,
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "weights": after.weights.iter()
                .map(|(v, w)| (v.to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
        });
        let http = self.http.read().unwrap_or_else(|e| e.into_inner()).clone();
        for url in &self.config.alert_webhooks {
            tokio::spawn(alert(http.clone(), url.clone(), event.clone()));
        }
    }
}
