//! One module per subcommand family.

pub(crate) mod client;
pub(crate) mod demo;
pub(crate) mod gateway;
pub(crate) mod health;
pub(crate) mod route;
pub(crate) mod security;
pub(crate) mod serve;
pub(crate) mod token;
pub(crate) mod tools;

use anyhow::Context;
use clap::Args;

/// The registry's database, for commands that use it directly (`serve`, `token`,
/// `health-worker`).
#[derive(Debug, Args)]
pub(crate) struct DatabaseArg {
    /// Database: `sqlite://FILE` (created on first start) or `postgres://USER:PASS@HOST/DB`.
    #[arg(
        long,
        env = "MCP_FLEET_DATABASE_URL",
        default_value = "sqlite://mcp-fleet.db",
        hide_env_values = true
    )]
    pub(crate) database_url: String,
}

impl DatabaseArg {
    /// Opens (and migrates) the database.
    pub(crate) async fn store(&self) -> anyhow::Result<std::sync::Arc<dyn mcp_fleet_store::Store>> {
        open_database(&self.database_url).await
    }
}

/// Opens (and migrates) the database at `url`; the error names it without its password.
pub(crate) async fn open_database(
    url: &str,
) -> anyhow::Result<std::sync::Arc<dyn mcp_fleet_store::Store>> {
    mcp_fleet_store::connect(url)
        .await
        .with_context(|| format!("cannot open database {}", mcp_fleet_store::redact(url)))
}
