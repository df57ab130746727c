//! The `inventory` sample: in-memory stock levels for the catalog's SKUs and tools to reserve them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rmcp::{
    Json, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    schemars, tool, tool_handler, tool_router,
};
use serde::{Deserialize, Serialize};

use crate::catalog;

/// Units on hand per SKU when a router is built; a SKU missing here starts at zero.
const INITIAL_STOCK: &[(&str, u32)] = &[
    ("LAP-001", 12),
    ("LAP-002", 3),
    ("LAP-ACC-01", 40),
    ("LAP-ACC-02", 25),
    ("MON-027", 8),
    ("MON-034", 2),
    ("KEY-101", 30),
    ("MOU-201", 55),
    ("HUB-301", 6),
    ("HDP-401", 14),
    ("SPK-402", 0),
    ("CAM-501", 21),
    ("SSD-601", 9),
    ("CHR-701", 4),
    ("DSK-702", 1),
];

/// Default `threshold` for `list_low_stock`: SKUs with fewer units than this are low.
const DEFAULT_LOW_STOCK_THRESHOLD: u32 = 5;

/// Stock levels shared by every MCP session of one router.
#[derive(Debug, Clone)]
pub(crate) struct Stock(Arc<Mutex<BTreeMap<&'static str, u32>>>);

impl Stock {
    /// Every catalog SKU at its initial level.
    pub(crate) fn seeded() -> Self {
        let levels = catalog::PRODUCTS
            .iter()
            .map(|p| {
                let units = INITIAL_STOCK
                    .iter()
                    .find(|(sku, _)| *sku == p.sku)
                    .map_or(0, |(_, n)| *n);
                (p.sku, units)
            })
            .collect();
        Self(Arc::new(Mutex::new(levels)))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, u32>> {
        // Every critical section leaves the map consistent, so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn level(&self, sku: &str) -> Result<StockLevel, String> {
        let stock = self.lock();
        let (&sku, &available) = stock.get_key_value(sku).ok_or_else(|| unknown_sku(sku))?;
        Ok(StockLevel::new(sku, available))
    }

    /// Takes `quantity` units of `sku` if that many are available; all or nothing.
    fn reserve(&self, sku: &str, quantity: u32) -> Result<Reservation, String> {
        if quantity == 0 {
            return Err("quantity must be at least 1".to_owned());
        }
        let mut stock = self.lock();
        let available = stock.get_mut(sku).ok_or_else(|| unknown_sku(sku))?;
        if quantity > *available {
            return Err(format!(
                "cannot reserve {quantity} of {sku}: only {available} available"
            ));
        }
        *available -= quantity;
        Ok(Reservation {
            sku: sku.to_owned(),
            reserved: quantity,
            remaining: *available,
        })
    }

    /// SKUs with fewer than `threshold` units, lowest first.
    fn low(&self, threshold: u32) -> LowStock {
        let mut items: Vec<StockLevel> = self
            .lock()
            .iter()
            .filter(|&(_, &n)| n < threshold)
            .map(|(&sku, &n)| StockLevel::new(sku, n))
            .collect();
        items.sort_by(|a, b| a.available.cmp(&b.available).then(a.sku.cmp(&b.sku)));
        LowStock { threshold, items }
    }
}

fn unknown_sku(sku: &str) -> String {
    format!("unknown sku {sku:?}: the inventory tracks only catalog SKUs such as \"LAP-001\"")
}

/// Arguments naming one SKU.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct SkuParams {
    /// The product's SKU, e.g. "LAP-001".
    sku: String,
}

/// Arguments of `reserve_stock`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct ReserveParams {
    /// The product's SKU, e.g. "LAP-001".
    sku: String,
    /// Units to reserve; at least 1 and at most what is available.
    quantity: u32,
}

/// Arguments of `list_low_stock`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct LowStockParams {
    /// List SKUs with fewer units than this (default 5).
    #[serde(default)]
    threshold: Option<u32>,
}

/// Units on hand for one SKU.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct StockLevel {
    /// The SKU.
    sku: String,
    /// The product's name, from the catalog.
    name: String,
    /// Units available to reserve.
    available: u32,
}

impl StockLevel {
    fn new(sku: &str, available: u32) -> Self {
        Self {
            sku: sku.to_owned(),
            name: catalog::find(sku).map_or_else(String::new, |p| p.name.to_owned()),
            available,
        }
    }
}

/// Result of `reserve_stock`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct Reservation {
    /// The SKU reserved.
    sku: String,
    /// Units taken.
    reserved: u32,
    /// Units still available afterwards.
    remaining: u32,
}

/// Result of `list_low_stock`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(transform = crate::schema::standard_formats)]
pub(crate) struct LowStock {
    /// The threshold applied.
    threshold: u32,
    /// SKUs below it, lowest stock first.
    items: Vec<StockLevel>,
}

/// The `inventory` MCP server; clones share one [`Stock`].
#[derive(Debug, Clone)]
pub(crate) struct InventoryServer {
    stock: Stock,
    tool_router: ToolRouter<Self>,
}

impl InventoryServer {
    pub(crate) fn new(stock: Stock) -> Self {
        Self {
            stock,
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl InventoryServer {
    #[tool(
        description = "Units available for one SKU.",
        annotations(read_only_hint = true)
    )]
    fn check_stock(
        &self,
        Parameters(SkuParams { sku }): Parameters<SkuParams>,
    ) -> Result<Json<StockLevel>, String> {
        self.stock.level(&sku).map(Json)
    }

    #[tool(
        description = "Reserve units of a SKU, lowering its available stock. Fails without change if fewer are available.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false
        )
    )]
    fn reserve_stock(
        &self,
        Parameters(ReserveParams { sku, quantity }): Parameters<ReserveParams>,
    ) -> Result<Json<Reservation>, String> {
        self.stock.reserve(&sku, quantity).map(Json)
    }

    #[tool(
        description = "SKUs whose available stock is below a threshold (default 5), lowest first.",
        annotations(read_only_hint = true)
    )]
    fn list_low_stock(
        &self,
        Parameters(LowStockParams { threshold }): Parameters<LowStockParams>,
    ) -> Json<LowStock> {
        Json(
            self.stock
                .low(threshold.unwrap_or(DEFAULT_LOW_STOCK_THRESHOLD)),
        )
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "inventory",
    version = "1.0.0",
    instructions = "Stock levels for catalog SKUs. check_stock reads, reserve_stock takes units, list_low_stock finds shortages."
)]
impl ServerHandler for InventoryServer {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_seeded_sku_is_in_the_catalog() {
        for (sku, _) in INITIAL_STOCK {
            assert!(catalog::find(sku).is_some(), "{sku}");
        }
    }

    #[test]
    fn reserve_is_all_or_nothing() {
        let stock = Stock::seeded();
        // (sku, quantity, expected remaining or error fragment)
        let cases: &[(&str, u32, Result<u32, &str>)] = &[
            ("LAP-002", 0, Err("at least 1")),
            ("LAP-002", 4, Err("only 3 available")),
            ("NOPE-1", 1, Err("unknown sku")),
            ("LAP-002", 2, Ok(1)),
            ("LAP-002", 2, Err("only 1 available")),
            ("LAP-002", 1, Ok(0)),
        ];
        for (sku, quantity, expected) in cases {
            let got = stock.reserve(sku, *quantity);
            match (got, expected) {
                (Ok(r), Ok(remaining)) => assert_eq!(r.remaining, *remaining, "{sku} x{quantity}"),
                (Err(e), Err(fragment)) => assert!(e.contains(fragment), "{e}"),
                (got, expected) => panic!("{sku} x{quantity}: got {got:?}, want {expected:?}"),
            }
        }
        assert_eq!(stock.level("LAP-002").map(|l| l.available), Ok(0));
    }

    #[test]
    fn low_stock_is_sorted_lowest_first() {
        let low = Stock::seeded().low(3);
        let skus: Vec<&str> = low.items.iter().map(|i| i.sku.as_str()).collect();
        assert_eq!(skus, ["SPK-402", "DSK-702", "MON-034"]);
    }
}
