//! One probe of one entry: an HTTP GET of its `healthUrl`, or MCP `initialize` + `ping` at
//! `<url>/mcp`, turned into an [`Outcome`] with a short reason when it is not healthy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fleet_model::{AuthType, HealthCheckMode};
use mcp_fleet_store::HealthRow;

use super::damping::Outcome;
use super::mcp_probe::{self, McpProbe};
use super::ssrf::{AddressPolicy, probe_client, refused_by_policy};

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeResult {
    /// Healthy, degraded or down.
    pub(crate) outcome: Outcome,
    /// How long it took.
    pub(crate) latency_ms: u32,
    /// Why it is not healthy (short, for `lastError`).
    pub(crate) error: Option<String>,
}

/// Runs probes with one guarded HTTP client (SSRF policy, no redirects).
#[derive(Clone)]
pub(crate) struct Prober {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    timeout: Duration,
    degraded_latency: Duration,
}

/// The innermost error message, cut to one short line.
fn reason(e: &(dyn std::error::Error + 'static)) -> String {
    if let Some(refused) = refused_by_policy(e) {
        return format!("refused: {refused}");
    }
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    short(&cur.to_string())
}

fn short(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    line.chars().take(200).collect()
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
    pub(crate) async fn probe(&self, row: &HealthRow) -> Option<ProbeResult> {
        match row.mode.resolve(row.health_url.is_some()) {
            HealthCheckMode::Http => {
                let url = row.health_url.as_ref().unwrap_or(&row.url);
                Some(self.http(url.url()).await)
            }
            HealthCheckMode::Mcp => Some(self.mcp(row.url.url(), row.auth).await),
            _ => None,
        }
    }

    fn timed(&self, started: Instant, outcome: Outcome, error: Option<String>) -> ProbeResult {
        let elapsed = started.elapsed();
        let latency_ms = u32::try_from(elapsed.as_millis()).unwrap_or(u32::MAX);
        if outcome == Outcome::Healthy && elapsed > self.degraded_latency {
            return ProbeResult {
                outcome: Outcome::Degraded,
                latency_ms,
                error: Some(format!(
                    "slow: answered in {latency_ms} ms (threshold {} ms)",
                    self.degraded_latency.as_millis()
                )),
            };
        }
        ProbeResult {
            outcome,
            latency_ms,
            error,
        }
    }

    async fn http(&self, url: &url::Url) -> ProbeResult {
        let started = Instant::now();
        if let Err(refused) = self.policy.check_url(url) {
            return self.timed(started, Outcome::Down, Some(format!("refused: {refused}")));
        }
        let sent = tokio::time::timeout(self.timeout, self.client.get(url.clone()).send()).await;
        match sent {
            Err(_) => self.timed(
                started,
                Outcome::Down,
                Some(format!("timed out after {} ms", self.timeout.as_millis())),
            ),
            Ok(Err(e)) if e.is_timeout() => self.timed(
                started,
                Outcome::Down,
                Some(format!("timed out after {} ms", self.timeout.as_millis())),
            ),
            Ok(Err(e)) => self.timed(started, Outcome::Down, Some(reason(&e))),
            Ok(Ok(res)) if res.status().is_success() => self.timed(started, Outcome::Healthy, None),
            Ok(Ok(res)) => {
                let status = res.status();
                self.timed(
                    started,
                    Outcome::Degraded,
                    Some(format!("health check answered HTTP {status}")),
                )
            }
        }
    }

    async fn mcp(&self, url: &url::Url, auth: AuthType) -> ProbeResult {
        let started = Instant::now();
        if let Err(refused) = self.policy.check_url(url) {
            return self.timed(started, Outcome::Down, Some(format!("refused: {refused}")));
        }
        match mcp_probe::probe(self.client.clone(), url.as_str(), self.timeout).await {
            McpProbe::Ok => self.timed(started, Outcome::Healthy, None),
            McpProbe::RpcError(e) => self.timed(
                started,
                Outcome::Degraded,
                Some(short(&format!("MCP error: {e}"))),
            ),
            // The registry holds no credentials: a server that wants them is up.
            McpProbe::AuthRejected(_) if auth != AuthType::None => {
                self.timed(started, Outcome::Healthy, None)
            }
            McpProbe::AuthRejected(code) => self.timed(
                started,
                Outcome::Degraded,
                Some(format!(
                    "MCP endpoint answered HTTP {code} but the entry's auth.type is none"
                )),
            ),
            McpProbe::Failed(e) => self.timed(started, Outcome::Down, Some(short(&e))),
        }
    }
}
