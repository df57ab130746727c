//! The `catalog` sample: a hard-coded product list and the MCP tools that search it.

use rmcp::{
    Json, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    schemars, tool, tool_handler, tool_router,
};
use serde::{Deserialize, Serialize};

/// One product. The inventory sample keys its stock by these SKUs.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct Product {
    /// Stock-keeping unit, the product's id.
    pub(crate) sku: &'static str,
    /// Display name.
    pub(crate) name: &'static str,
    /// One-line description.
    pub(crate) description: &'static str,
    /// Price in cents (USD).
    pub(crate) price_cents: u32,
    /// Category slug.
    pub(crate) category: &'static str,
}

const fn product(
    sku: &'static str,
    name: &'static str,
    description: &'static str,
    price_cents: u32,
    category: &'static str,
) -> Product {
    Product {
        sku,
        name,
        description,
        price_cents,
        category,
    }
}

/// The whole catalog.
pub(crate) const PRODUCTS: [Product; 15] = [
    product(
        "LAP-001",
        "Aero 14 Laptop",
        "Thin 14-inch laptop with 16 GB RAM and a 1 TB SSD.",
        129_900,
        "computers",
    ),
    product(
        "LAP-002",
        "Forge 16 Laptop",
        "16-inch workstation laptop with a discrete GPU.",
        219_900,
        "computers",
    ),
    product(
        "LAP-ACC-01",
        "Laptop Sleeve 15",
        "Padded neoprene sleeve for laptops up to 15 inches.",
        2_900,
        "accessories",
    ),
    product(
        "LAP-ACC-02",
        "Aluminium Laptop Stand",
        "Adjustable stand that raises a laptop to eye level.",
        4_900,
        "accessories",
    ),
    product(
        "MON-027",
        "Vista 27 Monitor",
        "27-inch 4K IPS monitor with USB-C power delivery.",
        44_900,
        "displays",
    ),
    product(
        "MON-034",
        "Vista 34 Ultrawide",
        "34-inch curved ultrawide monitor, 144 Hz.",
        69_900,
        "displays",
    ),
    product(
        "KEY-101",
        "Quiet Mechanical Keyboard",
        "Tenkeyless keyboard with silent linear switches.",
        11_900,
        "peripherals",
    ),
    product(
        "MOU-201",
        "Ergo Wireless Mouse",
        "Vertical wireless mouse with a rechargeable battery.",
        5_900,
        "peripherals",
    ),
    product(
        "HUB-301",
        "USB-C Dock",
        "Dock with HDMI, Ethernet, SD card and three USB-A ports.",
        8_900,
        "accessories",
    ),
    product(
        "HDP-401",
        "Studio Headphones",
        "Closed-back headphones with active noise cancelling.",
        24_900,
        "audio",
    ),
    product(
        "SPK-402",
        "Desk Speakers",
        "Pair of powered bookshelf speakers with Bluetooth.",
        17_900,
        "audio",
    ),
    product(
        "CAM-501",
        "Stream Webcam",
        "1080p webcam with autofocus and a privacy shutter.",
        7_900,
        "peripherals",
    ),
    product(
        "SSD-601",
        "Portable SSD 2 TB",
        "Pocket-sized USB-C solid-state drive, 2 TB.",
        15_900,
        "storage",
    ),
    product(
        "CHR-701",
        "Task Chair",
        "Mesh office chair with lumbar support.",
        32_900,
        "furniture",
    ),
    product(
        "DSK-702",
        "Standing Desk",
        "Electric sit-stand desk, 140 x 70 cm top.",
        54_900,
        "furniture",
    ),
];

/// Looks a product up by SKU (exact, case-sensitive: SKUs are ids).
pub(crate) fn find(sku: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.sku == sku)
}

/// Default and ceiling for `search_products`'s `limit`.
const DEFAULT_SEARCH_LIMIT: u32 = 10;
const MAX_SEARCH_LIMIT: u32 = 50;

/// Arguments of `search_products`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct SearchProductsParams {
    /// Text to look for, case-insensitively, in product names and descriptions. Empty lists all.
    query: String,
    /// Maximum number of products to return (default 10, at most 50).
    #[serde(default)]
    limit: Option<u32>,
}

/// Arguments of `get_product`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct GetProductParams {
    /// The product's SKU, e.g. "LAP-001".
    sku: String,
}

/// Result of `search_products`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct SearchResults {
    /// How many products matched before `limit` was applied.
    total_matches: usize,
    /// The matching products, in catalog order.
    products: Vec<Product>,
}

/// Matches `query` against names and descriptions; an empty query matches everything.
fn search(query: &str, limit: u32) -> SearchResults {
    let needle = query.trim().to_lowercase();
    let matches: Vec<Product> = PRODUCTS
        .iter()
        .filter(|p| {
            p.name.to_lowercase().contains(&needle)
                || p.description.to_lowercase().contains(&needle)
        })
        .copied()
        .collect();
    let total_matches = matches.len();
    let limit = usize::try_from(limit.min(MAX_SEARCH_LIMIT)).unwrap_or(usize::MAX);
    SearchResults {
        total_matches,
        products: matches.into_iter().take(limit).collect(),
    }
}

/// The `catalog` MCP server. Stateless: the catalog is a constant.
#[derive(Debug, Clone)]
pub(crate) struct CatalogServer {
    tool_router: ToolRouter<Self>,
}

impl CatalogServer {
    pub(crate) fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl CatalogServer {
    #[tool(
        description = "Search the product catalog by name or description (case-insensitive).",
        annotations(read_only_hint = true)
    )]
    fn search_products(
        &self,
        Parameters(SearchProductsParams { query, limit }): Parameters<SearchProductsParams>,
    ) -> Json<SearchResults> {
        Json(search(&query, limit.unwrap_or(DEFAULT_SEARCH_LIMIT)))
    }

    #[tool(
        description = "Get one product by its SKU.",
        annotations(read_only_hint = true)
    )]
    fn get_product(
        &self,
        Parameters(GetProductParams { sku }): Parameters<GetProductParams>,
    ) -> Result<Json<Product>, String> {
        find(&sku).copied().map(Json).ok_or_else(|| {
            format!("unknown sku {sku:?}: no such product; use search_products to find a SKU")
        })
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "catalog",
    version = "1.0.0",
    instructions = "A product catalog. Use search_products to find products, get_product for one SKU."
)]
impl ServerHandler for CatalogServer {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_is_case_insensitive_over_name_and_description() {
        let by_name = search("LAPTOP", 50);
        let skus: Vec<&str> = by_name.products.iter().map(|p| p.sku).collect();
        assert_eq!(skus, ["LAP-001", "LAP-002", "LAP-ACC-01", "LAP-ACC-02"]);

        let by_description = search("noise cancelling", 50);
        assert_eq!(by_description.products.len(), 1);
        assert_eq!(by_description.products[0].sku, "HDP-401");
    }

    #[test]
    fn search_applies_limit_but_reports_all_matches() {
        let r = search("laptop", 2);
        assert_eq!(r.total_matches, 4);
        assert_eq!(r.products.len(), 2);
        assert_eq!(search("", 1000).products.len(), PRODUCTS.len());
        assert_eq!(search("no such thing", 10).total_matches, 0);
    }

    #[test]
    fn skus_are_unique() {
        for (i, p) in PRODUCTS.iter().enumerate() {
            assert!(
                PRODUCTS[i + 1..].iter().all(|q| q.sku != p.sku),
                "{}",
                p.sku
            );
        }
    }
}
