//! What the gateway asks of the registry besides the fleet itself: each service's routing
//! policy, and recording a rollback. Also the rollback alerts to webhooks.

use std::time::Duration;

use mcp_fleet_discovery::{Backoff, ClientError, RegistryClient};
use mcp_fleet_model::Version;
use serde_json::Value;

use crate::routing::Policy;

/// `service`'s policy: `Ok(None)` when it has none.
pub(crate) async fn policy(
    registry: &RegistryClient,
    service: &str,
) -> Result<Option<Policy>, ClientError> {
    Ok(registry.routing(service).await?.as_ref().map(Policy::from))
}

/// Records the rollback of `version` of `service`, trying a few times while the registry
/// cannot be reached or answers 5xx.
pub(crate) async fn record_rollback(
    registry: &RegistryClient,
    service: &str,
    version: &Version,
    reason: &str,
) {
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(3_200));
    for attempt in 1..=5 {
        match registry.rollback(service, version, reason).await {
            Ok(_) => return,
            Err(ClientError::Problem { status, detail, .. }) if (400..500).contains(&status) => {
                tracing::error!(%service, %version, status, %detail,
                    "the registry refused the rollback; it holds only in this gateway");
                return;
            }
            Err(e) => tracing::warn!(%service, attempt, error = %e,
                "recording the rollback failed; retrying"),
        }
        tokio::time::sleep(backoff.delay(attempt - 1)).await;
    }
    tracing::error!(%service, %version, "could not record the rollback in the registry");
}

/// POSTs `event` to `url`, retrying with backoff (100 ms doubling, with jitter) up to 8 times while the
/// receiver is unreachable or answers 5xx, 408 or 429.
pub(crate) async fn alert(http: reqwest::Client, url: String, event: Value) {
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    for attempt in 1..=8 {
        match http.post(&url).json(&event).send().await {
            Ok(res) if res.status().is_success() => return,
            Ok(res)
                if res.status().is_client_error()
                    && !matches!(res.status().as_u16(), 408 | 429) =>
            {
                tracing::warn!(%url, status = res.status().as_u16(), "alert refused; dropped");
                return;
            }
            Ok(res) => {
                tracing::debug!(%url, attempt, status = res.status().as_u16(), "alert failed");
            }
            Err(e) => tracing::debug!(%url, attempt, error = %e, "alert failed"),
        }
        tokio::time::sleep(backoff.delay(attempt - 1)).await;
    }
    tracing::warn!(%url, "alert undelivered after 8 attempts");
}
