//! Following the registry after connecting.

use std::sync::Arc;

use super::Shared;
use crate::watch::RegistryWatch;

/// Follows the registry with `watcher` until shutdown.
pub(super) async fn follow(shared: Arc<Shared>, mut watcher: Box<dyn RegistryWatch>) {
    let shutdown = shared.shutdown.clone();
    loop {
        let next = tokio::select! {
            next = watcher.next() => next,
            () = shutdown.cancelled() => return,
        };
        match next {
            Ok(entries) => {
                // New servers connect in the background; their tools appear when they do (at
                // once for those indexed from the registry's catalog).
                let catalogs = shared.catalogs(&entries).await;
                let _ = shared.reconcile(entries, catalogs);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the registry; keeping the current servers");
            }
        }
    }
}
