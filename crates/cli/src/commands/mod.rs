//! One module per subcommand family.

pub(crate) mod announce;
pub(crate) mod catalog;
pub(crate) mod client;
pub(crate) mod completions;
pub(crate) mod credentials;
pub(crate) mod demo;
pub(crate) mod diff;
pub(crate) mod gateway;
pub(crate) mod health;
pub(crate) mod import;
pub(crate) mod route;
pub(crate) mod security;
pub(crate) mod serve;
pub(crate) mod token;
pub(crate) mod tools;
pub(crate) mod version;
pub(crate) mod watch;

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
    /// Opens (and migrates) an existing database: a `sqlite://` file that is not there is an
    /// error naming the path looked at, not a new empty database (`token ls` run in the wrong
    /// directory would otherwise report a fresh, open registry). Only `serve` creates it.
    pub(crate) async fn store(&self) -> anyhow::Result<std::sync::Arc<dyn mcp_fleet_store::Store>> {
        if let Some(file) = sqlite_file(&self.database_url)
            && !file.exists()
        {
            let looked_at = std::path::absolute(&file).unwrap_or(file);
            anyhow::bail!(
                "no database at {} (from --database-url {}); run this where the registry's \
                 database is, or point --database-url at it (`serve` creates it on first start)",
                looked_at.display(),
                self.database_url
            );
        }
        open_database(&self.database_url).await
    }

    /// Opens (and migrates) the database, creating a `sqlite://` file that is not there.
    pub(crate) async fn store_creating(
        &self,
    ) -> anyhow::Result<std::sync::Arc<dyn mcp_fleet_store::Store>> {
        open_database(&self.database_url).await
    }
}

/// The file a `sqlite:` URL names; `None` for other URLs and in-memory databases.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// Opens (and migrates) the database at `url`; the error names it without its password.
pub(crate) async fn open_database(
    url: &str,
) -> anyhow::Result<std::sync::Arc<dyn mcp_fleet_store::Store>> {
    mcp_fleet_store::connect(url)
        .await
        .with_context(|| format!("cannot open database {}", mcp_fleet_store::redact(url)))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::sqlite_file;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite://mcp-fleet.db"),
            Some(PathBuf::from("mcp-fleet.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/r.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/r.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
