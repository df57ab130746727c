//! Three sample MCP servers (catalog, inventory, analytics) over in-memory data, and how they announce themselves.
//!
//! Each sample serves MCP over Streamable HTTP at `/mcp` and a liveness probe at `GET /health`.
//! [`start`] runs one on a listener; [`RunningSample::announce`] keeps it registered with a registry
//! (`mcp-fleet-announce`).

mod analytics;
mod catalog;
mod inventory;
pub mod schema;
mod serve;

pub use serve::{RunningSample, SampleError, start};

use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Which sample server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// Product catalog: `search_products`, `get_product`.
    Catalog,
    /// Stock levels for the catalog's products: `check_stock`, `reserve_stock`, `list_low_stock`.
    Inventory,
    /// Event counters: `record_event`, `summary`, `top_events`.
    Analytics,
}

impl Sample {
    /// Every sample, in a stable order.
    pub const ALL: [Sample; 3] = [Sample::Catalog, Sample::Inventory, Sample::Analytics];

    /// The registry id (a slug) this sample registers under.
    pub fn id(self) -> &'static str {
        match self {
            Sample::Catalog => "catalog",
            Sample::Inventory => "inventory",
            Sample::Analytics => "analytics",
        }
    }

    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Sample::Catalog => "Product Catalog",
            Sample::Inventory => "Inventory",
            Sample::Analytics => "Analytics",
        }
    }

    /// What the server does, as registered.
    pub fn description(self) -> &'static str {
        match self {
            Sample::Catalog => "Search and look up products in a small hard-coded catalog.",
            Sample::Inventory => "Check and reserve stock for the catalog's products.",
            Sample::Analytics => "Record numeric events and summarise them.",
        }
    }

    /// Capability tags, as registered.
    pub fn tags(self) -> &'static [&'static str] {
        match self {
            Sample::Catalog => &["products", "catalog"],
            Sample::Inventory => &["inventory", "products"],
            Sample::Analytics => &["analytics"],
        }
    }

    /// The names of the tools this sample serves, in listing order.
    pub fn tool_names(self) -> &'static [&'static str] {
        match self {
            Sample::Catalog => &["search_products", "get_product"],
            Sample::Inventory => &["check_stock", "reserve_stock", "list_low_stock"],
            Sample::Analytics => &["record_event", "summary", "top_events"],
        }
    }

    /// The registration body this server announces (seed fields: id, name, description, url,
    /// version "1.0.0", tags, auth {"type":"none"}, healthUrl = <base>/health; the announcer adds
    /// its `ttlSeconds`).
    ///
    /// `base_url` is the server root (`http://127.0.0.1:PORT`) and becomes the entry's `url`:
    /// clients reach MCP at `<url>/mcp`, as the seed's discovery client does.
    pub fn registration(self, base_url: &str) -> serde_json::Value {
        let base = base_url.trim_end_matches('/');
        json!({
            "id": self.id(),
            "name": self.name(),
            "description": self.description(),
            "url": base,
            "version": SAMPLE_VERSION,
            "tags": self.tags(),
            "auth": { "type": "none" },
            "healthUrl": format!("{base}/health"),
        })
    }

    /// An axum Router serving /mcp (rmcp streamable HTTP) and /health for this sample.
    ///
    /// Cancelling `shutdown` ends the sample's open MCP sessions and streams. Each call builds a
    /// fresh data set, shared by every MCP session of the returned router.
    pub fn router(self, shutdown: CancellationToken) -> axum::Router {
        serve::router(self, shutdown)
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// The version every sample reports, to the registry and in its MCP server info.
const SAMPLE_VERSION: &str = "1.0.0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_has_the_seed_fields() {
        let body = Sample::Inventory.registration("http://127.0.0.1:4100/");
        assert_eq!(
            body,
            json!({
                "id": "inventory",
                "name": "Inventory",
                "description": "Check and reserve stock for the catalog's products.",
                "url": "http://127.0.0.1:4100",
                "version": "1.0.0",
                "tags": ["inventory", "products"],
                "auth": { "type": "none" },
                "healthUrl": "http://127.0.0.1:4100/health",
            })
        );
    }

    #[test]
    fn registrations_pass_the_registry_validation() {
        for sample in Sample::ALL {
            let body = sample.registration("http://127.0.0.1:4100");
            let parsed = mcp_fleet_model::Registration::from_json(&body, None);
            let parsed = match parsed {
                Ok(r) => r,
                Err(e) => panic!("{sample}: {e:?}"),
            };
            assert_eq!(parsed.id.as_str(), sample.id());
            let tags: Vec<&str> = parsed.tags.iter().map(|t| t.as_str()).collect();
            assert_eq!(tags, sample.tags());
        }
    }

    #[test]
    fn ids_are_distinct_slugs() {
        let ids: Vec<&str> = Sample::ALL.iter().map(|s| s.id()).collect();
        assert_eq!(ids, ["catalog", "inventory", "analytics"]);
        for id in ids {
            assert!(id.bytes().all(|b| b.is_ascii_lowercase()), "{id}");
        }
    }
}
