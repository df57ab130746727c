//! One probe of one entry: an HTTP GET of its `healthUrl`, or MCP `initialize` + `ping` at
//! `<url>/mcp`, turned into an [`Outcome`] with a short reason when it is not healthy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fleet_model::{AuthType, Catalog, HealthCheckMode};
use mcp_fleet_store::HealthRow;

use super::cause::{Failure, human};
use super::damping::Outcome;
use super::mcp_probe::{self, McpProbe};
use super::ssrf::{AddressPolicy, probe_client};

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProbeResult {
    /// Healthy, degraded or down.
    pub(crate) outcome: Outcome,
    /// How long the probe took, answered or not.
    pub(crate) elapsed_ms: u32,
    /// How long the server took to answer (`latencyMs`); `None` when it never answered.
    pub(crate) latency_ms: Option<u32>,
    /// Why it is not healthy: a short cause (`lastError`) and the chain (`lastErrorDetail`).
    pub(crate) error: Option<Failure>,
    /// The server's catalog, when the probe was asked to list it: what it listed, or why the
    /// listing failed; `None` when not asked or the server did not answer.
    pub(crate) catalog: Option<Result<Catalog, String>>,
}

/// Runs probes with one guarded HTTP client (SSRF policy, no redirects).
#[derive(Clone)]
pub(crate) struct Prober {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    timeout: Duration,
    degraded_latency: Duration,
}

impl Prober {
    /// A prober with `timeout` per probe; slower successes than `degraded_latency` are degraded.
    pub(crate) fn new(
        policy: Arc<AddressPolicy>,
        timeout: Duration,
        degraded_latency: Duration,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: probe_client(policy.clone(), timeout)?,
            policy,
            timeout,
            degraded_latency,
        })
    }

    /// Probes `row` as its mode says; `None` for modes that are not probed (`ttl`, `none`).
    /// With `list`, also lists the server's catalog at `<url>/mcp`: in the probe's own session
    /// for MCP checks, in a session of its own after an HTTP check.
    pub(crate) async fn probe(&self, row: &HealthRow, list: bool) -> Option<ProbeResult> {
        match row.mode.resolve(row.health_url.is_some()) {
            HealthCheckMode::Http => {
                let url = row.health_url.as_ref().unwrap_or(&row.url);
                let mut result = self.http(url.url()).await;
                if list && result.outcome != Outcome::Down {
                    result.catalog = self.list(row.url.url()).await;
                }
                Some(result)
            }
            HealthCheckMode::Mcp => Some(self.mcp(row.url.url(), row.auth, list).await),
            _ => None,
        }
    }

    /// The catalog of the MCP server at `<url>/mcp`, whatever its health.
    async fn list(&self, url: &url::Url) -> Option<Result<Catalog, String>> {
        if self.policy.check_url(url).is_err() {
            return None;
        }
        mcp_probe::probe(self.client.clone(), url.as_str(), self.timeout, true)
            .await
            .catalog
    }

    fn timed(&self, started: Instant, outcome: Outcome, error: Option<Failure>) -> ProbeResult {
        self.took(started.elapsed(), outcome, error)
    }

    /// The result of a probe that reached `outcome` in `elapsed`.
    fn took(&self, elapsed: Duration, outcome: Outcome, error: Option<Failure>) -> ProbeResult {
        let elapsed_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        let latency_ms = error
            .as_ref()
            .is_none_or(|e| e.answered)
            .then_some(elapsed_ms);
        if outcome == Outcome::Healthy && elapsed > self.degraded_latency {
            let slow = format!(
                "slow: answered in {} (threshold {})",
                human(elapsed),
                human(self.degraded_latency)
            );
            let detail = format!(
                "answered in {elapsed_ms} ms, slower than --degraded-latency ({} ms)",
                self.degraded_latency.as_millis()
            );
            return ProbeResult {
                outcome: Outcome::Degraded,
                elapsed_ms,
                latency_ms,
                error: Some(Failure::new(slow, detail, true)),
                catalog: None,
            };
        }
        ProbeResult {
            outcome,
            elapsed_ms,
            latency_ms,
            error,
            catalog: None,
        }
    }

    fn refused(&self, started: Instant, refused: impl std::fmt::Display) -> ProbeResult {
        let cause = format!("refused: {refused}");
        let detail = format!("{cause} (the address policy; see --probe-allow-cidr)");
        self.timed(
            started,
            Outcome::Down,
            Some(Failure::new(cause, detail, false)),
        )
    }

    async fn http(&self, url: &url::Url) -> ProbeResult {
        let started = Instant::now();
        if let Err(refused) = self.policy.check_url(url) {
            return self.refused(started, refused);
        }
        let sent = tokio::time::timeout(self.timeout, self.client.get(url.clone()).send()).await;
        match sent {
            Err(_) => self.timed(
                started,
                Outcome::Down,
                Some(Failure::timed_out(
                    self.timeout,
                    format!(
                        "GET health check: no answer within {} ms",
                        self.timeout.as_millis()
                    ),
                )),
            ),
            Ok(Err(e)) => self.timed(
                started,
                Outcome::Down,
                Some(Failure::from_error("GET health check", &e, self.timeout)),
            ),
            Ok(Ok(res)) if res.status().is_success() => self.timed(started, Outcome::Healthy, None),
            Ok(Ok(res)) => {
                let status = res.status();
                self.timed(
                    started,
                    Outcome::Degraded,
                    Some(Failure::new(
                        format!("HTTP {}", status.as_u16()),
                        format!("GET health check: answered HTTP {status}"),
                        true,
                    )),
                )
            }
        }
    }

    async fn mcp(&self, url: &url::Url, auth: AuthType, list: bool) -> ProbeResult {
        let started = Instant::now();
        if let Err(refused) = self.policy.check_url(url) {
            return self.refused(started, refused);
        }
        let found = mcp_probe::probe(self.client.clone(), url.as_str(), self.timeout, list).await;
        let elapsed = found.elapsed;
        let mut result = match found.probe {
            McpProbe::Ok => self.took(elapsed, Outcome::Healthy, None),
            McpProbe::RpcError(e) => self.took(
                elapsed,
                Outcome::Degraded,
                Some(Failure::new(
                    format!("MCP error: {e}"),
                    format!("MCP error: {e}"),
                    true,
                )),
            ),
            // The registry holds no credentials: a server that wants them is up.
            McpProbe::AuthRejected(_) if auth != AuthType::None => {
                self.took(elapsed, Outcome::Healthy, None)
            }
            McpProbe::AuthRejected(code) => self.took(
                elapsed,
                Outcome::Degraded,
                Some(Failure::new(
                    format!("HTTP {code} (auth.type is none)"),
                    format!("MCP endpoint answered HTTP {code} but the entry's auth.type is none"),
                    true,
                )),
            ),
            McpProbe::Failed(failure) => self.took(elapsed, Outcome::Down, Some(failure)),
        };
        result.catalog = found.catalog;
        result
    }
}
