//! Index changes as a stream of deltas, in the shape linkerd's resolvers use:
//! `Reset` (here is everything), `Add` (added or changed), `Remove` (gone).

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::index::DiscoveredTool;

/// One change of the tool index.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexEvent {
    /// The whole index: replace whatever you hold. Sent first, and again when a subscriber
    /// fell too far behind to be sent the deltas it missed.
    Reset(Vec<DiscoveredTool>),
    /// Tools added, or changed (a server re-listed them, or went away or came back: see
    /// [`DiscoveredTool::available`]). Each replaces any tool of the same qualified name.
    Add(Vec<DiscoveredTool>),
    /// Qualified names no longer in the index (their server was dropped, or stopped listing
    /// them).
    Remove(Vec<String>),
}

/// The current index, for resets.
pub(crate) type Snapshot = Arc<dyn Fn() -> Vec<DiscoveredTool> + Send + Sync>;

/// The receiving end of [`Discovery::subscribe`](crate::Discovery::subscribe).
pub struct IndexUpdates {
    pub(crate) first: Option<Vec<DiscoveredTool>>,
    pub(crate) rx: broadcast::Receiver<IndexEvent>,
    pub(crate) snapshot: Snapshot,
}

impl std::fmt::Debug for IndexUpdates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexUpdates")
            .field("pending", &self.rx.len())
            .finish_non_exhaustive()
    }
}

impl IndexUpdates {
    /// The next change: first a [`IndexEvent::Reset`] with the current index, then deltas.
    /// `None` once the [`Discovery`](crate::Discovery) is gone.
    pub async fn next(&mut self) -> Option<IndexEvent> {
        if let Some(all) = self.first.take() {
            return Some(IndexEvent::Reset(all));
        }
        match self.rx.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "index subscriber lagged; sending a reset");
                // Start over from the current index: later deltas apply on top of it.
                self.rx = self.rx.resubscribe();
                Some(IndexEvent::Reset((self.snapshot)()))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
