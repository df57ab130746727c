//! What the gateway asks of the registry besides the fleet itself: each service's routing
//! policy, and recording a rollback. Also the rollback alerts to webhooks.

use std::time::Duration;

use mcp_fleet_model::Version;
use serde_json::{Value, json};

use crate::routing::Policy;

/// The registry's routing endpoints.
#[derive(Debug, Clone)]
pub(crate) struct RoutingClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl RoutingClient {
    pub(crate) fn new(base: &str, token: Option<String>) -> Result<Self, reqwest::Error> {
        Ok(Self {
            token,
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .connect_timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// `service`'s policy: `Ok(None)` when it has none.
    pub(crate) async fn policy(&self, service: &str) -> Result<Option<Policy>, String> {
        let url = format!("{}/services/{service}/routing", self.base);
        let res = self
            .authorized(self.http.get(&url))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match res.status().as_u16() {
            404 => Ok(None),
            200 => {
                let doc: Value = res.json().await.map_err(|e| e.to_string())?;
                Policy::from_json(&doc)
                    .map(Some)
                    .ok_or_else(|| format!("GET {url}: not a routing document"))
            }
            status => Err(format!("GET {url} answered {status}")),
        }
    }

    /// Records the rollback of `version` of `service`, trying a few times.
    pub(crate) async fn rollback(&self, service: &str, version: &Version, reason: &str) {
        let url = format!("{}/services/{service}/routing/rollback", self.base);
        let body = json!({"version": version.to_string(), "reason": reason});
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=5 {
            match self
                .authorized(self.http.post(&url))
                .json(&body)
                .send()
                .await
            {
                Ok(res) if res.status().is_success() => return,
                Ok(res) if res.status().is_client_error() => {
                    tracing::error!(%service, %version, status = res.status().as_u16(),
                        "the registry refused the rollback; it holds only in this gateway");
                    return;
                }
                Ok(res) => tracing::warn!(%service, attempt, status = res.status().as_u16(),
                    "recording the rollback failed; retrying"),
                Err(e) => tracing::warn!(%service, attempt, error = %e,
                    "recording the rollback failed; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        tracing::error!(%service, %version, "could not record the rollback in the registry");
    }
}

/// POSTs `event` to `url`, retrying with backoff (100 ms doubling) up to 8 times while the
/// receiver is unreachable or answers 5xx, 408 or 429.
pub(crate) async fn alert(http: reqwest::Client, url: String, event: Value) {
    let mut delay = Duration::from_millis(100);
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
                tracing::debug!(%url, attempt, status = res.status().as_u16(), "alert failed")
            }
            Err(e) => tracing::debug!(%url, attempt, error = %e, "alert failed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
    tracing::warn!(%url, "alert undelivered after 8 attempts");
}
