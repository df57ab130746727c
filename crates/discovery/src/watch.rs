//! Following the registry: a small trait for "tell me when the matching servers may have
//! changed", and its implementation by polling `GET /servers` until the registry has a change
//! feed to replace it.

use std::time::Duration;

use futures::future::BoxFuture;
use mcp_fleet_model::Entry;

use crate::registry_client::{ClientError, ListOptions, RegistryClient};

/// A source of registry changes for [`Discovery::watch`](crate::DiscoveryBuilder::watch).
///
/// Each call waits until the matching servers may have changed and returns all of them (not a
/// delta): [`Discovery`](crate::Discovery) works out what was added, removed or changed. An
/// error is logged and the current servers are kept; the next call tries again.
pub trait RegistryWatch: Send + 'static {
    /// Waits for a possible change, then returns every matching entry, whatever its status.
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<Entry>, ClientError>>;
}

/// [`RegistryWatch`] by polling `GET /servers?tags=…&status=any` every `interval`.
#[derive(Debug, Clone)]
pub struct PollWatch {
    client: RegistryClient,
    options: ListOptions,
    interval: Duration,
}

impl PollWatch {
    /// Polls `client` for entries with any of `tags` (all entries when empty) every `interval`.
    pub fn new(client: RegistryClient, tags: Vec<String>, interval: Duration) -> Self {
        Self {
            client,
            options: list_options(tags),
            interval,
        }
    }
}

/// The listing discovery asks for: every status (it filters itself), the largest pages.
pub(crate) fn list_options(tags: Vec<String>) -> ListOptions {
    ListOptions {
        tags,
        status: Some("any".into()),
        limit: Some(1000),
        cursor: None,
    }
}

impl RegistryWatch for PollWatch {
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<Entry>, ClientError>> {
        Box::pin(async move {
            tokio::time::sleep(self.interval).await;
            self.client.list_all(&self.options).await
        })
    }
}
