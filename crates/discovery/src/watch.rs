//! Following the registry: a small trait for "tell me when the matching servers may have
//! changed", implemented on the registry's change feed (blocking `GET /servers` queries, the
//! default) and by plain polling (for registries without a feed, such as the seed's).

use std::time::Duration;

use futures::future::BoxFuture;
use mcp_fleet_model::Entry;

use crate::Backoff;
use crate::registry_client::{Blocking, ClientError, ListOptions, RegistryClient};

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

/// How long one blocking query of [`FeedWatch`] waits at the registry.
const FEED_WAIT: Duration = Duration::from_secs(30);

/// [`RegistryWatch`] on the registry's change feed: blocking `GET /servers?…&wait=<revision>`
/// queries with `If-None-Match`, so the registry answers as soon as the matching servers
/// change and the watcher costs one idle request per 30 s otherwise.
///
/// The first call answers at once (the listing now). A registry that sends no
/// `X-Registry-Revision` has no feed: it is then polled every `fallback_interval`. After an
/// error, the next call waits a while (doubling from 500 ms to `fallback_interval`) first.
#[derive(Debug, Clone)]
pub struct FeedWatch {
    client: RegistryClient,
    options: ListOptions,
    wait: Duration,
    fallback_interval: Duration,
    revision: Option<i64>,
    etag: Option<String>,
    polling: bool,
    failures: u32,
}

impl FeedWatch {
    /// Follows entries with any of `tags` (all entries when empty) on `client`'s feed.
    pub fn new(client: RegistryClient, tags: Vec<String>, fallback_interval: Duration) -> Self {
        Self {
            client,
            options: list_options(tags),
            wait: FEED_WAIT,
            fallback_interval,
            revision: None,
            etag: None,
            polling: false,
            failures: 0,
        }
    }

    /// How long each blocking query may wait at the registry (default 30 s, at most 5 min).
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(300));
        self
    }

    async fn next_listing(&mut self) -> Result<Vec<Entry>, ClientError> {
        if self.polling {
            tokio::time::sleep(self.fallback_interval).await;
            return self.client.list_all(&self.options).await;
        }
        loop {
            let wait = self.revision.map(|r| (r, self.wait));
            match self
                .client
                .list_blocking(&self.options, wait, self.etag.as_deref())
                .await?
            {
                Blocking::Unchanged { revision } => {
                    self.revision = revision.or(self.revision);
                }
                Blocking::Changed {
                    page,
                    revision,
                    etag,
                } => {
                    let Some(revision) = revision else {
                        tracing::info!(
                            registry = self.client.base_url(),
                            "the registry has no change feed; polling it every {:?}",
                            self.fallback_interval
                        );
                        self.polling = true;
                        return self.rest(page.servers, page.next_cursor).await;
                    };
                    self.revision = Some(revision);
                    // The ETag names the first page only: with more pages, wake on any change.
                    self.etag = etag.filter(|_| page.next_cursor.is_none());
                    return self.rest(page.servers, page.next_cursor).await;
                }
            }
        }
    }

    /// `first` and every page after `cursor`.
    async fn rest(
        &self,
        mut first: Vec<Entry>,
        cursor: Option<String>,
    ) -> Result<Vec<Entry>, ClientError> {
        if let Some(cursor) = cursor {
            let mut options = self.options.clone();
            options.cursor = Some(cursor);
            first.extend(self.client.list_all(&options).await?);
        }
        Ok(first)
    }
}

impl RegistryWatch for FeedWatch {
    fn next(&mut self) -> BoxFuture<'_, Result<Vec<Entry>, ClientError>> {
        Box::pin(async move {
            if self.failures > 0 {
                let first = Duration::from_millis(500);
                let backoff = Backoff::new(first, self.fallback_interval.max(first));
                tokio::time::sleep(backoff.delay(self.failures)).await;
            }
            let result = self.next_listing().await;
            self.failures = if result.is_ok() { 0 } else { self.failures + 1 };
            result
        })
    }
}
